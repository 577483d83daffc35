"""The predict body's fast JSON path: regular windows parse exactly, anything ragged or odd is refused."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("simdjson")
from serve.window_json import nested_shape, window_from_json  # noqa: E402

KEYS, LAYOUTS = {"layout", "fps", "keypoints", "scores"}, {"coco17", "body13"}


def body(keypoints, **extra) -> bytes:
    return json.dumps({"layout": "coco17", "keypoints": keypoints, **extra}).encode()


@pytest.mark.parametrize("shape", [(1, 1, 2), (64, 17, 2), (5, 13, 3), (2, 17, 3)])
def test_regular_windows_parse_exactly(shape):
    rng = np.random.default_rng(1)
    win = rng.normal(300, 50, shape).round(3)
    win[0, 0, 0] = 7  # an integer literal among floats
    out = window_from_json(body(np.where(win == 7, 7, win).tolist(), fps=25), KEYS, LAYOUTS)
    assert out is not None
    kp, layout, fps = out
    assert kp.shape == shape and np.array_equal(kp, win) and layout == "coco17" and fps == 25.0


@pytest.mark.parametrize("keypoints", [
    [[[1, 2, 3], [4]]],                 # ragged joints, same number count as [[1, 2], [3, 4]]
    [[[1, 2], [3, 4]], [[1, 2]]],       # ragged frames
    [[[1, 2], 3]],                      # a bare number among joints
    [[[1, 2], [3, 4]], 5],              # a bare number among frames
    [[[1, [2]], [3, 4]]],               # too deep
    [[1, 2], [3, 4]],                   # too shallow
    [[[], []]],                         # empty joints
    [[]],                               # empty frame
    [],                                 # no frames
    [[[1, True], [3, 4]]],              # not a number
    [[[1, "2"], [3, 4]]],
    [[[1, None], [3, 4]]],
])
def test_irregular_or_odd_keypoints_fall_back(keypoints):
    assert window_from_json(body(keypoints), KEYS, LAYOUTS) is None


@pytest.mark.parametrize("raw", [
    b'{"layout":"coco17","keypoints":[[[1,2]]],"scores":[[1]]}',          # scores: the full path
    b'{"layout":"nope","keypoints":[[[1,2]]]}',                           # unknown layout
    b'{"layout":"coco17","keypoints":[[[1,2]]],"extra":1}',               # unknown key
    b'{"layout":"coco17","layout":"body13","keypoints":[[[1,2]]]}',       # repeated key
    b'{"layout":"coco17","keypoints":[[[1,2]]],"fps":0}',                 # fps out of range
    b'{"layout":"coco17","keypoints":[[[1,2]]],"fps":"30"}',
    b'{"layout":"coco17","keypoints":[[[1,NaN]]]}',                       # NaN literal: explained later
    b'{"layout":"coco17","keypoints":[[[1,1e400]]]}',
    b'{"layout":"coco17","keypoints":[[[1,2]]]',                          # truncated
    b'[[[1,2]]]',
    b'',
    b'-9223372036854775809',                                              # 64-bit overflow (found by fuzzing)
    b'{"layout":"coco17","keypoints":[[[1,2]]],"fps":-9223372036854775809}',
    b'{"layout":"coco17","keypoints":[[[1,-9223372036854775809]]]}',
])
def test_other_bodies_fall_back(raw):
    assert window_from_json(raw, KEYS, LAYOUTS) is None


def test_nested_shape_counts_levels():
    assert nested_shape(b'{"k":[[[1,2],[3,4]],[[5,6],[7,8]],[[9,0],[1,2]]]}') == (3, 2, 2)
    assert nested_shape(b'{"k":[[[1,2,3]]]}') == (1, 1, 3)
    assert nested_shape(b'{"k":[[[1,2]]],"j":[[[1,2]]]}') is None  # two top-level arrays


def _regular_shape(obj) -> tuple[int, ...] | None:
    """The reference: the shape numpy finds for a regular 3-deep array of numbers, else None."""
    try:
        a = np.array(obj, dtype=float)
    except ValueError:  # ragged
        return None
    return a.shape if a.ndim == 3 and a.size else None


def test_nested_shape_matches_numpy_on_random_nestings():
    """Random nestings, most of them ragged, too deep or too shallow somewhere: the byte-level check
    agrees with numpy's own regularity check on every one."""
    rng = np.random.default_rng(7)

    def node(depth: int):
        if depth == 0 or rng.random() < 0.03:
            return round(float(rng.normal()), 2) if rng.random() > 0.02 else [1.5]
        n = int(rng.integers(1, 4))
        kids = [node(depth - 1) for _ in range(n)]
        if rng.random() < 0.7:  # make siblings alike so that many trees are regular
            kids = [kids[0]] * n
        return kids

    seen = {True: 0, False: 0}
    for _ in range(3000):
        obj = node(int(rng.integers(2, 5)))
        want = _regular_shape(obj)
        got = nested_shape(json.dumps({"layout": "coco17", "keypoints": obj, "fps": 30}).encode())
        assert got == want, obj
        seen[want is not None] += 1
    assert min(seen.values()) > 300  # both kinds really exercised
