"""A predict request's JSON body straight to a numpy window, without building Python lists.

Why: a 64-frame COCO-17 window is ~2,200 numbers in ~1,100 nested lists. orjson + ``np.fromiter``
spent ~0.3 ms per request building and walking those lists, the largest single cost of a JSON request
on the event loop. simdjson parses the body and copies the nested numbers into one flat buffer
(~0.04 ms); the nesting itself is checked on the raw bytes (their brackets and commas against the
regular layout of the shape), so a ragged window can never be silently re-flowed into a regular one. Anything unusual returns
``None`` and the caller's pydantic path explains the problem with its exact messages.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional

import numpy as np
import simdjson



_STRUCTURE_ONLY = bytes(c for c in range(256) if c not in b"[],")  # translate() deletes everything else


@lru_cache(maxsize=64)
def _regular(t: int, v: int, c: int) -> bytes:
    """The brackets and commas of a regular ``[T][V][C]`` array, e.g. ``[[[,],[,]]]`` for (1, 2, 2)."""
    joint = b"[" + b"," * (c - 1) + b"]"
    frame = b"[" + b",".join([joint] * v) + b"]"
    return b"[" + b",".join([frame] * t) + b"]"


def nested_shape(body: bytes) -> Optional[tuple[int, int, int]]:
    """``(T, V, C)`` when the only array in ``body`` is one regular ``[T][V][C]`` array (every frame V
    joints, every joint C values), else None. Only valid for bodies whose strings hold no brackets
    or commas, which the caller guarantees by checking every key and string value first.

    Why this way: a regular array's brackets and commas are fully determined by its shape, so the
    body's structure characters (one C-level ``translate``, ~10 us for a 64-frame window) are read
    for a candidate shape and compared byte for byte with the regular layout of that shape; a ragged,
    too deep or too shallow array cannot equal it. Numbers are not counted here: a joint ``[]`` and
    ``[5]`` look alike, so the caller checks the value count against the shape."""
    s = body.translate(None, _STRUCTURE_ONLY).strip(b",")  # top-level commas sit outside the array
    if not s.startswith(b"[[[") or not s.endswith(b"]]]"):
        return None
    c = s.index(b"]") - 2                 # commas in the first joint + 1
    joint_len = c + 1                     # "[" + (c - 1) commas + "]"
    frame_len = s.index(b"]]") + 2 - 1    # the first frame: s[1 : its closing "]]" + 1]
    v, rest = divmod(frame_len - 1, joint_len + 1)
    t, rest2 = divmod(len(s) - 1, frame_len + 1)
    if c < 1 or v < 1 or t < 1 or rest or rest2:
        return None
    return (t, v, c) if s == _regular(t, v, c) else None


def window_from_json(body: bytes, allowed_keys: set[str], allowed_layouts: set[str]
                     ) -> Optional[tuple[np.ndarray, str, float]]:
    """``(keypoints [T, V, C] float64, layout, fps)`` for a plain, well-formed predict body; None for
    anything else (invalid JSON, unknown or repeated keys, scores, odd types, ragged or non-numeric
    keypoints) so the caller can fall back to full validation."""
    try:
        doc = simdjson.Parser().parse(body)  # a fresh parser: a document must not outlive its parser's reuse
    except (ValueError, RuntimeError):  # simdjson: ValueError for bad JSON, RuntimeError for 64-bit overflow
        return None
    try:
        if not isinstance(doc, simdjson.Object):
            return None
        keys = list(doc.keys())
        names = set(keys)
        # membership in ``names``, not ``doc.get(name, default)``: a missing key costs simdjson an internal
        # exception (~3 us each)
        layout, fps = doc["layout"] if "layout" in names else None, doc["fps"] if "fps" in names else 30.0
        if (len(names) != len(keys) or not names <= allowed_keys or layout not in allowed_layouts
                or type(fps) not in (int, float) or not 0 < fps <= 240
                or ("scores" in names and doc["scores"] is not None)):
            return None
        shape = nested_shape(body)
        kp = doc.get("keypoints")
        if shape is None or not isinstance(kp, simdjson.Array):
            return None
        flat = np.frombuffer(kp.as_buffer(of_type="d"), np.float64)
        if flat.size != shape[0] * shape[1] * shape[2]:
            return None
        return flat.reshape(shape), layout, float(fps)
    except (TypeError, ValueError, KeyError, RuntimeError):
        return None
    finally:
        del doc
