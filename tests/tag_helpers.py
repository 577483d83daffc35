"""Test-only stand-ins for tagging tests: a rule-based predictor and synthetic tracked sequences.

Never shipped: the real tagger runs exported ONNX models (actionpose.inference.predictor).
"""
from __future__ import annotations

import numpy as np

from actionpose.data.format import SkeletonDataset, make_annotation, save_dataset
from actionpose.skeleton import get_layout


class StandInPredictor:
    """Classifies a window by where the head stays: x < 100 -> 'left', 100..200 -> 'right', else nothing.

    It reads joint 0 of the body13 layout, so it also checks that the tagger maps the pose layout
    onto the model layout by joint name.
    """

    layout = "body13"
    classes = ["left", "right", "other"]
    clip_len = 16

    def __init__(self, left_below: float = 100, right_below: float = 200, steady_px: float = 5):
        self.calls = []
        self.bounds, self.steady_px = (left_below, right_below), steady_px

    def predict(self, keypoint, keypoint_score=None):
        kp = np.asarray(keypoint)
        assert kp.ndim == 5 and kp.shape[1:] == (1, self.clip_len, 13, 2), kp.shape
        self.calls.append(kp.shape[0])
        head = kp[:, 0, :, 0, 0]
        x, steady = head.mean(1), head.std(1) < self.steady_px  # a window mixing two positions is uncertain
        a, b = self.bounds
        out = np.full((len(x), 3), 0.1)
        out[steady & (x < a), 0] = 0.8
        out[steady & (x >= a) & (x < b), 1] = 0.8
        return out


def person_track(xs: list[tuple[float, float]], fps: float, layout: str = "coco17") -> np.ndarray:
    """A [T, V, 2] track whose head (nose) x follows (x, seconds) pieces; other joints hang below it."""
    lay = get_layout(layout)
    frames = []
    for x, dur in xs:
        frames += [x] * int(round(dur * fps))
    kp = np.zeros((len(frames), lay.num_joints, 2), np.float32)
    for j in range(lay.num_joints):
        kp[:, j, 0] = np.asarray(frames) + (j % 3)
        kp[:, j, 1] = 50 + 10 * j
    return kp


def two_person_pickle(path, fps: float = 30.0) -> None:
    """Person 0: left 3 s, nothing 2 s, right 3 s. Person 1 (absent for 2 s): right 4 s, then gone."""
    a = person_track([(50, 3), (250, 2), (150, 3)], fps)
    b = person_track([(150, 4)], fps)
    T, V = a.shape[:2]
    kp = np.zeros((2, T, V, 2), np.float32)
    sc = np.zeros((2, T, V), np.float32)
    kp[0], sc[0] = a, 1.0
    s0 = int(2 * fps)
    kp[1, s0:s0 + len(b)], sc[1, s0:s0 + len(b)] = b, 0.9
    ann = make_annotation("two_people", 0, kp, sc, img_shape=(240, 320), fps=fps)
    save_dataset(SkeletonDataset([ann], "coco17", ["any"], split={"test": ["two_people"]}, meta={"fps": fps}), path)
