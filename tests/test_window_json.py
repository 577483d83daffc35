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
