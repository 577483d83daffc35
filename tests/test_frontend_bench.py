"""`actionpose bench frontend` helpers: per-segment agreement, the PCK@0.05 frame rule, resized references."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from actionpose.bench.frontend import agreement, frame_agreement, parse_segments, resized_copy
from actionpose.errors import ActionposeError
from actionpose.pose import FramePoses, Person

FIX = Path(__file__).parent / "fixtures" / "pose"


def _frame(kps):
    persons = [] if kps is None else [Person(0, kps, np.ones(len(kps), np.float32), np.zeros(4, np.float32))]
    return FramePoses(0, 0.0, persons)


def test_parse_segments():
    assert parse_segments("0-4,5-9,8-", 12) == [("0-4", range(0, 5)), ("5-9", range(5, 10)), ("8-11", range(8, 12))]
    assert parse_segments(None, 5) == []
    for bad in ("a-b", "5-2", "-3"):
        with pytest.raises(ActionposeError, match="--segments"):
            parse_segments(bad, 10)


def test_frame_agreement_counts_visible_landmarks_within_5_percent():
    ref = np.zeros((33, 3), np.float32)
    ref[:, 0], ref[:, 1], ref[:, 2] = np.linspace(0, 100, 33), np.linspace(0, 200, 33), 1.0  # box 100 x 200
    ref[30:, 2] = 0.2  # three landmarks MediaPipe calls invisible: not counted
    ours = ref[:, :2].copy()
    ours[:5] += [0, 8.5]  # within 0.05 x the visible box (181 px tall) = 9.05 px
    ours[5:10] += [0, 9.6]  # just outside
    assert frame_agreement(_frame(ours), ref) == (30 - 5, 30)
    assert frame_agreement(_frame(None), ref) == (0, 30)  # we found nobody: all misses
    assert frame_agreement(_frame(ours), None) == (0, 0)  # MediaPipe found nobody: not counted
    frac, n = agreement([_frame(ours), _frame(None)], [ref, ref], frames=range(0, 1))
    assert (frac, n) == (25 / 30, 30)


def test_resized_copy_scales_the_reference(tmp_path):
    gt = np.load(FIX / "skier_8f_gt.npy")[..., :2]  # [8,17,2] on 320x212 frames
    gt[0, 0] = 0  # a missing point stays missing
    path, scaled = resized_copy(str(FIX / "skier_8f.mp4"), (160, 106), gt, str(tmp_path))
    cap = cv2.VideoCapture(path)
    ok, img = cap.read()
    assert ok and img.shape[:2] == (106, 160)
    np.testing.assert_allclose(scaled[1], gt[1] * [0.5, 0.5], atol=1e-4)
    assert (scaled[0, 0] == 0).all()
