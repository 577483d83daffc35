"""Per-exercise motion signals for repetition counting: joint angles and torso-relative heights.

Every signal is scale-free (degrees, or a height divided by the sequence's median torso length), so
the counter works at any distance from the camera and needs no pixel thresholds. Keypoints in any
layout that maps to ``body13`` by joint name are accepted; the signals only use body13 joints plus
the virtual mid-points of the hips/shoulders/ankles.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from actionpose.errors import ActionposeError
from actionpose.skeleton import get_layout, joint_map

SIDES = ("left", "right")


@dataclass(frozen=True)
class Signal:
    """One scalar signal per frame.

    ``kind`` is ``"angle"`` (degrees at ``joints[1]`` between ``joints[0]`` and ``joints[2]``),
    ``"height"`` (image-up position of ``joints[0]`` above ``joints[1]``, in torso lengths) or
    ``"bounce"`` (image-up position of ``joints[0]`` above its median, in torso lengths: jumps). Joint
    names may contain ``{s}`` (computed for the left and the right side, then averaged with the
    per-side scores as weights) or be virtual mid-points ``mid_hip``/``mid_shoulder``/``mid_ankle``.
    ``min_range`` is the smallest peak-to-peak movement that counts as a repetition (degrees or torso
    lengths): below it the person is holding still, not exercising.
    """

    name: str
    kind: str
    joints: tuple[str, ...]
    min_range: float


@dataclass(frozen=True)
class Exercise:
    """An exercise: its candidate signals (the most periodic one is used) and plausible rep durations."""

    name: str
    signals: tuple[Signal, ...]
    min_period_s: float = 0.5
    max_period_s: float = 8.0
    aliases: tuple[str, ...] = ()


ELBOW = Signal("elbow_angle", "angle", ("{s}_shoulder", "{s}_elbow", "{s}_wrist"), 25.0)
KNEE = Signal("knee_angle", "angle", ("{s}_hip", "{s}_knee", "{s}_ankle"), 25.0)
HIP = Signal("hip_angle", "angle", ("{s}_shoulder", "{s}_hip", "{s}_knee"), 25.0)
ARM_RAISE = Signal("arm_raise_angle", "angle", ("{s}_hip", "{s}_shoulder", "{s}_wrist"), 30.0)
LEG_SPREAD = Signal("leg_spread_angle", "angle", ("left_ankle", "mid_hip", "right_ankle"), 10.0)
WRIST_HEIGHT = Signal("wrist_height", "height", ("{s}_wrist", "{s}_shoulder"), 0.3)
SHOULDER_OVER_WRIST = Signal("shoulder_height", "height", ("{s}_shoulder", "{s}_wrist"), 0.3)
SHOULDER_OVER_HIP = Signal("torso_rise", "height", ("mid_shoulder", "mid_hip"), 0.3)
HIP_BOUNCE = Signal("hip_bounce", "bounce", ("mid_hip",), 0.06)

EXERCISES: dict[str, Exercise] = {}


def register_exercise(ex: Exercise) -> Exercise:
    """Add an exercise so ``RepCounter(exercise=name)`` and ``actionpose reps --exercise`` know it."""
    for key in (ex.name, *ex.aliases):
        EXERCISES[key] = ex
    return ex


for _ex in (
    Exercise("squat", (KNEE, HIP), aliases=("squats",)),
    Exercise("push_up", (ELBOW, SHOULDER_OVER_WRIST), aliases=("pushup", "push-up", "push_ups", "pushups")),
    Exercise("sit_up", (HIP, SHOULDER_OVER_HIP), aliases=("situp", "sit-up", "sit_ups", "situps")),
    Exercise("pull_up", (ELBOW, SHOULDER_OVER_WRIST), aliases=("pullup", "pull-up", "pull_ups", "pullups")),
    Exercise("jumping_jacks", (ARM_RAISE, LEG_SPREAD), min_period_s=0.3, max_period_s=4.0,
             aliases=("jumping_jack", "jump_jack", "jumpjacks", "jumping-jacks")),
    Exercise("bench_press", (ELBOW, WRIST_HEIGHT), aliases=("bench_pressing", "bench-press")),
    Exercise("curl", (ELBOW, WRIST_HEIGHT), aliases=("curls", "bicep_curl", "biceps_curl", "arm_curl")),
    Exercise("front_raise", (ARM_RAISE, WRIST_HEIGHT), aliases=("front_raises",)),
    Exercise("jump_rope", (HIP_BOUNCE,), min_period_s=0.2, max_period_s=2.0, aliases=("jumprope", "jump-rope")),
):
    register_exercise(_ex)


def exercise_names() -> list[str]:
    """Canonical exercise names (no aliases), in registration order."""
    return list(dict.fromkeys(ex.name for ex in EXERCISES.values()))


def find_exercise(label: str) -> Exercise | None:
    """The exercise a classifier label names (``pushup``, ``arm_curl``, ``squat`` ...), else None."""
    return EXERCISES.get(label.strip().lower().replace(" ", "_"))


def get_exercise(name: str) -> Exercise:
    # not text (RepCounter(5)) is unknown too: it was "'int' object has no attribute 'strip'"
    key = name.strip().lower().replace(" ", "_") if isinstance(name, str) else None
    if key not in EXERCISES:
        raise ActionposeError(f"unknown exercise {name!r}; known exercises: {', '.join(exercise_names())}")
    return EXERCISES[key]


def to_body13(keypoints: np.ndarray, scores: np.ndarray | None, layout: str) -> tuple[np.ndarray, np.ndarray]:
    """``[T, V, C]`` keypoints (+ ``[T, V]`` scores) in ``layout`` -> body13 ``[T, 13, C]``, ``[T, 13]``."""
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 3 or kp.shape[-1] not in (2, 3):
        raise ActionposeError(f"keypoints must be [T, V, 2|3] (frames, joints, coordinates), got shape {kp.shape}")
    lay = get_layout(layout)
    if kp.shape[1] != lay.num_joints:
        raise ActionposeError(f"keypoints have {kp.shape[1]} joints but layout {lay.name} has {lay.num_joints}")
    if scores is None:
        sc = np.ones(kp.shape[:2])
    else:
        sc = np.asarray(scores, dtype=np.float64)
        if sc.shape != kp.shape[:2]:
            raise ActionposeError(f"keypoint scores have shape {sc.shape}, expected {kp.shape[:2]} to match keypoints")
    idx = joint_map(lay, "body13")
    kp, sc = kp[:, idx], sc[:, idx]
    bad = ~np.isfinite(kp).all(-1)
    sc = np.where(bad, 0.0, np.nan_to_num(sc))
    return np.where(bad[..., None], 0.0, kp), sc


_BODY13 = get_layout("body13")
_MID = {"mid_hip": ("left_hip", "right_hip"), "mid_shoulder": ("left_shoulder", "right_shoulder"),
        "mid_ankle": ("left_ankle", "right_ankle")}


def _joint(kp: np.ndarray, sc: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    if name in _MID:
        a, b = (_BODY13.index(j) for j in _MID[name])
        # mean score: a mid-point is still usable when one side is occluded but estimated
        return (kp[:, a] + kp[:, b]) / 2, (sc[:, a] + sc[:, b]) / 2
    i = _BODY13.index(name)
    return kp[:, i], sc[:, i]


def _angle(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
    u, v = p0 - p1, p2 - p1
    nu, nv = np.linalg.norm(u, axis=-1), np.linalg.norm(v, axis=-1)
    cos = np.einsum("tc,tc->t", u, v) / np.maximum(nu * nv, 1e-12)
    ang = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    return np.where((nu > 0) & (nv > 0), ang, np.nan)


def torso_length(kp: np.ndarray, sc: np.ndarray, min_score: float) -> float:
    """Median shoulder-to-hip distance over confident frames: the sequence's scale unit."""
    s, ss = _joint(kp, sc, "mid_shoulder")
    h, hs = _joint(kp, sc, "mid_hip")
    d = np.linalg.norm(s - h, axis=-1)
    ok = (ss >= min_score) & (hs >= min_score) & (d > 0)
    return float(np.median(d[ok])) if ok.any() else float("nan")


def compute_signal(sig: Signal, kp: np.ndarray, sc: np.ndarray, min_score: float,
                   torso: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Raw per-frame signal (NaN where a needed joint is below ``min_score``) and its per-frame score."""
    sides = SIDES if any("{s}" in j for j in sig.joints) else ("",)
    values, weights = [], []
    for side in sides:
        pts, scs = zip(*(_joint(kp, sc, j.format(s=side)) for j in sig.joints))
        w = np.minimum.reduce(scs)
        if sig.kind == "angle":
            v = _angle(*pts)
        elif sig.kind == "bounce":
            y = np.where(w >= min_score, pts[0][:, 1], np.nan)
            unit = torso if torso is not None else torso_length(kp, sc, min_score)
            v = (np.nanmedian(y) - y) / unit if np.isfinite(y).any() and unit and np.isfinite(unit) \
                else np.full(len(w), np.nan)
        else:
            unit = torso if torso is not None else torso_length(kp, sc, min_score)
            # image y grows downwards: "height of a above b" is b.y - a.y
            v = (pts[1][:, 1] - pts[0][:, 1]) / unit if unit and np.isfinite(unit) else np.full(len(w), np.nan)
        ok = (w >= min_score) & np.isfinite(v)
        values.append(np.where(ok, v, 0.0))
        weights.append(np.where(ok, w, 0.0))
    wsum = np.sum(weights, axis=0)
    out = np.where(wsum > 0, np.sum(np.multiply(values, weights), axis=0) / np.maximum(wsum, 1e-12), np.nan)
    return out, np.max(weights, axis=0)
