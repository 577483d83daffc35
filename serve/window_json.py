"""A predict request's JSON body straight to a numpy window, without building Python lists.

Why: a 64-frame COCO-17 window is ~2,200 numbers in ~1,100 nested lists. orjson + ``np.fromiter``
spent ~0.3 ms per request building and walking those lists, the largest single cost of a JSON request
on the event loop. simdjson parses the body and copies the nested numbers into one flat buffer
(~0.08 ms); the nesting itself is checked on the raw bytes with numpy (bracket depth and comma counts),
so a ragged window can never be silently re-flowed into a regular one. Anything unusual returns
``None`` and the caller's pydantic path explains the problem with its exact messages.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import simdjson

_OPEN, _CLOSE, _COMMA = ord("["), ord("]"), ord(",")


def nested_shape(body: bytes) -> Optional[tuple[int, int, int]]:
    """``(T, V, C)`` when the only arrays in ``body`` form one regular ``[T][V][C]`` array (every frame
    V joints, every joint C values), else None. Only valid for bodies whose strings hold no brackets
    or commas, which the caller guarantees by checking every key and string value first."""
    b = np.frombuffer(body, np.uint8)
    idx = np.flatnonzero((b == _OPEN) | (b == _CLOSE) | (b == _COMMA))
    ch = b[idx]
    is_open, is_comma = ch == _OPEN, ch == _COMMA
    level = np.cumsum(is_open.astype(np.int32) - (ch == _CLOSE))  # after each char; commas: enclosing level
    if not len(level) or level.max() != 3 or level[-1] != 0 or np.count_nonzero(is_open & (level == 1)) != 1:
        return None
    frames = np.flatnonzero(is_open & (level == 2))
    joint_open = is_open & (level == 3)
    joints = np.flatnonzero(joint_open)
    if not len(frames) or not len(joints) or joints[0] < frames[0]:
        return None
    per_joint = np.add.reduceat(is_comma & (level == 3), joints)  # commas inside each joint
    per_frame = np.add.reduceat(joint_open, frames)
    frame_commas = np.add.reduceat(is_comma & (level == 2), frames)
    c, v, t = int(per_joint[0]) + 1, int(per_frame[0]), len(frames)
    if ((per_joint != c - 1).any() or (per_frame != v).any() or (frame_commas != v - 1).any()
            or np.count_nonzero(is_comma & (level == 1)) != t - 1):
        return None
    return t, v, c


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
        layout, fps = doc.get("layout"), doc.get("fps", 30.0)
        if (len(set(keys)) != len(keys) or not set(keys) <= allowed_keys or layout not in allowed_layouts
                or type(fps) not in (int, float) or not 0 < fps <= 240 or doc.get("scores") is not None):
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
