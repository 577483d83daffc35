"""MediaPipe's ROI tracking for BlazePose: how the next frame's crop follows a person.

MediaPipe Pose (``mediapipe/modules/pose_landmark/pose_landmark_cpu.pbtxt``) never re-runs its detector
while it follows someone: each frame's landmark model also predicts two auxiliary landmarks (hip centre
and a scale/rotation point), and the next frame's rotated square ROI comes from them. Two details of that
loop matter for matching its output (measured in ``docs/frontend.md``):

* the auxiliary landmarks pass through a one-euro filter **always**, even with ``smooth_landmarks=False``
  (``pose_landmark_filtering.pbtxt``: min_cutoff 0.01, beta 10, derivate_cutoff 1, values scaled by the
  ROI size), so the crop stays still while the person does and follows fast motion with some lag;
* a frame whose pose-presence score is below 0.5 yields no landmarks, which resets the filter and sends
  the next frame back to the detector.

This module holds that per-person state; the landmark model itself is in ``estimators.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

AUX_MIN_CUTOFF, AUX_BETA, AUX_D_CUTOFF = 0.01, 10.0, 1.0
ROI_SCALE = 1.25
PRESENCE_THRESHOLD = 0.5
SOLUTION_RATE_HZ = 30.0  # MediaPipe's Python solution stamps frames 33333 us apart, whatever the video fps


def _alpha(cutoff: np.ndarray | float, rate: float) -> np.ndarray:
    tau = 1.0 / (2 * np.pi * np.asarray(cutoff, np.float64))
    return 1.0 / (1.0 + tau * rate)


@dataclass
class OneEuro:
    """MediaPipe's ``OneEuroFilter`` (util/filtering/one_euro_filter.cc), vectorised over values.

    ``value_scale`` (1 / object size in px) makes the speed term independent of how big the person is.
    """

    min_cutoff: float = AUX_MIN_CUTOFF
    beta: float = AUX_BETA
    d_cutoff: float = AUX_D_CUTOFF
    rate: float = SOLUTION_RATE_HZ
    x: np.ndarray | None = None  # last filtered value
    raw: np.ndarray | None = None  # last raw value
    dx: np.ndarray | None = None  # last filtered derivative

    def __call__(self, value: np.ndarray, value_scale: float = 1.0) -> np.ndarray:
        value = np.asarray(value, np.float64)
        if self.x is None:
            self.x, self.raw, self.dx = value.copy(), value.copy(), np.zeros_like(value)
            return value.copy()
        d = (value - self.raw) * value_scale * self.rate
        a_d = _alpha(self.d_cutoff, self.rate)
        self.dx = a_d * d + (1 - a_d) * self.dx
        a = _alpha(self.min_cutoff + self.beta * np.abs(self.dx), self.rate)
        self.x = a * value + (1 - a) * self.x
        self.raw = value.copy()
        return self.x.copy()


def alignment_roi(center: np.ndarray, scale_point: np.ndarray, scale: float = ROI_SCALE) -> np.ndarray:
    """MediaPipe's ``AlignmentPointsRectsCalculator`` + ``RectTransformationCalculator``: a square ROI
    centred on ``center`` with side ``2 |scale_point - center| * scale``, rotated so that the
    centre -> scale-point vector points up (target angle 90 degrees). Returns (cx, cy, side, theta)."""
    c, e = np.asarray(center, np.float64), np.asarray(scale_point, np.float64)
    theta = np.pi / 2 - np.arctan2(-(e[1] - c[1]), e[0] - c[0])
    theta = (theta + np.pi) % (2 * np.pi) - np.pi
    return np.array([c[0], c[1], 2 * np.hypot(*(e - c)) * scale, theta], np.float32)


@dataclass
class RoiState:
    """One followed person: the ROI for the next frame and the filter that produced it."""

    roi: np.ndarray  # (cx, cy, side, theta) in image px / radians
    aux_filter: OneEuro = field(default_factory=OneEuro)

    def update(self, aux_points: np.ndarray) -> "RoiState":
        """Next ROI from this frame's two auxiliary landmarks (image px), smoothed as MediaPipe does."""
        aux = np.asarray(aux_points, np.float64)[:2]
        object_scale = 2 * float(np.hypot(*(aux[1] - aux[0])))  # the unsmoothed ROI's side (no 1.25)
        smooth = self.aux_filter(aux, 1.0 / object_scale if object_scale > 1e-6 else 1.0)
        self.roi = alignment_roi(smooth[0], smooth[1])
        return self

    @classmethod
    def start(cls, aux_points: np.ndarray) -> "RoiState":
        return cls(np.zeros(4, np.float32)).update(aux_points)

    def copy(self) -> "RoiState":
        f = self.aux_filter
        return RoiState(self.roi.copy(), OneEuro(f.min_cutoff, f.beta, f.d_cutoff, f.rate,
                                                 *(None if v is None else v.copy() for v in (f.x, f.raw, f.dx))))
