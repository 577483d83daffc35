"""PYSKL-style skeleton transforms in plain numpy, shared by training and inference.

Every sample is an annotation-like dict with ``keypoint`` ``[M, T, V, C]`` (and optionally
``keypoint_score`` ``[M, T, V]``). :func:`preprocess` is the *inference-time* pipeline — the exact
function the ONNX predictor calls — so training and deployment cannot drift apart. Training adds
random augmentation (:func:`augment`) between normalisation and stream computation, and random
instead of centred temporal sampling.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from actionpose.errors import ActionposeError
from actionpose.skeleton import Layout, get_layout

STREAMS = ("joint", "bone", "joint_motion", "bone_motion")
NORMS = ("sequence", "axis", "none")
ALIGNS = ("none", "body")


@dataclass(frozen=True)
class PreprocessConfig:
    """Everything inference needs to reproduce training's input; stored in the ONNX metadata."""

    layout: str
    clip_len: int = 64
    num_clips: int = 1
    stream: str = "joint"
    norm: str = "sequence"
    max_persons: int = 2
    with_score: bool = False
    align: str = "none"

    def __post_init__(self) -> None:
        if self.stream not in STREAMS:
            raise ActionposeError(f"preprocess.stream: {self.stream!r}; allowed values: {', '.join(STREAMS)}")
        if self.norm not in NORMS:
            raise ActionposeError(f"preprocess.norm: {self.norm!r}; allowed values: {', '.join(NORMS)}")
        if self.align not in ALIGNS:
            raise ActionposeError(f"preprocess.align: {self.align!r}; allowed values: {', '.join(ALIGNS)}")
        for key in ("clip_len", "num_clips", "max_persons"):
            if int(getattr(self, key)) < 1:
                raise ActionposeError(f"preprocess.{key}: must be >= 1, got {getattr(self, key)}")
        get_layout(self.layout)

    def in_channels(self, coords: int) -> int:
        return coords + int(self.with_score)

    @classmethod
    def from_meta(cls, meta: dict[str, Any], **overrides: Any) -> "PreprocessConfig":
        """From a model's stored metadata (ONNX or checkpoint) or a config's ``preprocess`` section.
        A key a model does not store takes the field's default, which is what models exported before
        that key existed did, so old files keep their exact preprocessing."""
        v = {f.name: meta[f.name] for f in fields(cls) if f.name in meta} | overrides
        missing = [k for k in ("layout", "clip_len") if k not in v]
        if missing:
            raise ActionposeError(f"model metadata lacks {', '.join(missing)} (export it with `actionpose export`)")
        for key in ("clip_len", "num_clips", "max_persons"):
            if key in v:
                v[key] = int(v[key])
        if "with_score" in v:
            v["with_score"] = bool(v["with_score"])
        return cls(**v)


def preprocess_keys() -> tuple[str, ...]:
    """The metadata keys a model stores so every predictor reproduces its preprocessing."""
    return tuple(f.name for f in fields(PreprocessConfig))


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time randomness (all off = identity). Angles in radians, like PYSKL's RandomRot.

    ``view_rotate`` turns a 3D sequence about the vertical and horizontal axes *before* normalisation,
    as CTR-GCN does on NW-UCLA (+-60 degrees): a new camera position, not a distortion of the body, so
    combined with ``norm: axis`` the model sees every viewpoint fill the same box. Ignored for 2D.
    """

    rotate: float = 0.0
    view_rotate: float = 0.0
    scale: float = 0.0
    shear: float = 0.0
    flip: float = 0.0
    joint_drop: float = 0.0
    person_drop: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


# --- persons ---------------------------------------------------------------------------------
def select_persons(kp: np.ndarray, score: np.ndarray | None, max_persons: int):
    """Keep the ``max_persons`` persons with the most motion/score, zero-pad to exactly that many."""
    m = kp.shape[0]
    if m > max_persons:
        energy = (score.sum(axis=(1, 2)) if score is not None else np.abs(kp).sum(axis=(1, 2, 3)))
        keep = np.sort(np.argsort(-energy, kind="stable")[:max_persons])
        kp = kp[keep]
        score = score[keep] if score is not None else None
    elif m < max_persons:
        pad = max_persons - m
        kp = np.concatenate([kp, np.zeros((pad,) + kp.shape[1:], kp.dtype)], axis=0)
        if score is not None:
            score = np.concatenate([score, np.zeros((pad,) + score.shape[1:], score.dtype)], axis=0)
    return kp, score


# --- normalisation ---------------------------------------------------------------------------
def normalize_sequence(kp: np.ndarray) -> np.ndarray:
    """Centre and scale a whole sequence: pixels, [0, 1] image coordinates and metres look alike.

    The centre is the middle of the bounding box of all present joints over all frames and persons;
    the scale is half the largest side of that box (one factor for all axes, so shapes keep their
    aspect ratio). Missing joints (all-zero coordinates) stay exactly zero.
    """
    return _box_normalize(kp, per_axis=False)


def normalize_axes(kp: np.ndarray) -> np.ndarray:
    """Per-axis min-max of a whole sequence to [-1, 1] (CTR-GCN's NW-UCLA normalisation).

    Unlike :func:`normalize_sequence` every axis is stretched on its own, which removes the depth
    extent a camera position gives a body: the cross-view protocol's main nuisance. Missing joints stay
    zero; a flat axis is only centred.
    """
    return _box_normalize(kp, per_axis=True)


def _box_normalize(kp: np.ndarray, per_axis: bool) -> np.ndarray:
    kp = kp.astype(np.float32, copy=True)
    present = np.abs(kp).sum(-1) > 0  # [M, T, V]
    if not present.any():
        return kp
    pts = kp[present]
    lo, hi = pts.min(0), pts.max(0)
    half = (hi - lo) / 2
    if per_axis:
        half[half < 1e-6] = 1.0
    else:
        half = float(half.max()) if half.max() >= 1e-6 else 1.0
    kp[present] = (pts - (lo + hi) / 2) / half
    return kp


def align_body(kp: np.ndarray, layout: Layout) -> np.ndarray:
    """Turn a 3D sequence into the body's own frame: shoulders and hips along x, hips-to-shoulders
    along y, facing along z (the view-invariant pre-normalisation of 2s-AGCN / MS-G3D on NTU).

    Why: in a cross-view protocol most of the difference between cameras is which way the person
    faces them; once every sequence is expressed in its body frame, a camera the model never saw looks
    like the ones it did. The frame is the average over all frames of the best-visible person (robust to
    Kinect jitter, unlike the first frame alone) and one rotation about the hip centre is applied to
    everyone, so people keep their places relative to each other. Missing joints stay zero; a sequence
    without a frame showing both shoulders and both hips is returned unchanged.
    """
    if kp.shape[-1] != 3:
        raise ActionposeError(f"preprocess.align: 'body' needs 3D keypoints (x, y, z); got {kp.shape[-1]} coordinates")
    try:
        ls, rs, lh, rh = (layout.index(j) for j in ("left_shoulder", "right_shoulder", "left_hip", "right_hip"))
    except ActionposeError:
        raise ActionposeError(f"preprocess.align: 'body' needs left/right shoulder and hip joints; layout "
                              f"{layout.name} lacks them") from None
    present = np.abs(kp).sum(-1) > 0  # [M, T, V]
    torso = present[..., [ls, rs, lh, rh]].all(-1)  # [M, T]
    if not torso.any():
        return kp
    best = int(torso.sum(1).argmax())
    p, ok = kp[best], torso[best]
    hip = (p[ok, lh] + p[ok, rh]) / 2
    up = ((p[ok, ls] + p[ok, rs]) / 2 - hip).mean(0)
    across = ((p[ok, rs] - p[ok, ls]) + (p[ok, rh] - p[ok, lh])).mean(0)
    if np.linalg.norm(up) < 1e-6:
        return kp
    y = up / np.linalg.norm(up)
    x = across - (across @ y) * y  # square to the spine
    if np.linalg.norm(x) < 1e-6:
        return kp
    x = x / np.linalg.norm(x)
    rot = np.stack([x, y, np.cross(x, y)])  # rows: the body's axes; a proper rotation (det +1)
    out = (kp - hip.mean(0)) @ rot.T
    return np.where(present[..., None], out, 0.0).astype(np.float32)


def view_rotation(kp: np.ndarray, max_angle: float, rng: np.random.Generator) -> np.ndarray:
    """Rotate a 3D ``[M, T, V, 3]`` sequence about the x and y axes by up to ``max_angle`` radians."""
    if kp.shape[-1] != 3 or not max_angle:
        return kp
    ax, ay = rng.uniform(-max_angle, max_angle, 2)
    mat = _rotation(np.array([ax, ay, 0.0]), 3)
    present = np.abs(kp).sum(-1, keepdims=True) > 0
    centre = kp[present[..., 0]].mean(0) if present.any() else np.zeros(3, np.float32)
    out = (kp - centre) @ mat.T + centre
    return np.where(present, out, 0.0).astype(np.float32)


# --- temporal sampling -----------------------------------------------------------------------
def sample_indices(num_frames: int, clip_len: int, num_clips: int = 1, rng: np.random.Generator | None = None
                   ) -> np.ndarray:
    """PYSKL's ``UniformSampleFrames``: split the sequence into ``clip_len`` equal segments and take one
    frame from each. With ``rng`` the frame inside each segment is random (training); without it clip
    ``i`` of ``n`` takes the point at fraction ``(i + 0.5) / n`` of every segment (deterministic test
    clips). Short sequences repeat frames. Returns ``[num_clips, clip_len]``.
    """
    edges = np.linspace(0, num_frames, clip_len + 1)
    lo, width = edges[:-1], np.diff(edges)
    if rng is not None:
        frac = rng.random((num_clips, clip_len))
    else:
        frac = ((np.arange(num_clips) + 0.5) / num_clips)[:, None].repeat(clip_len, 1)
    idx = np.floor(lo[None] + frac * width[None]).astype(np.int64)
    return np.clip(idx, 0, num_frames - 1)


# --- streams ---------------------------------------------------------------------------------
def to_stream(x: np.ndarray, layout: Layout, stream: str) -> np.ndarray:
    """Joint / bone / motion features of ``[..., T, V, C]`` (PYSKL ``GenSkeFeat``)."""
    if stream not in STREAMS:
        raise ActionposeError(f"stream {stream!r}; allowed values: {', '.join(STREAMS)}")
    if stream.startswith("bone"):
        bone = np.zeros_like(x)
        child, parent = layout.bone_pairs[:, 0], layout.bone_pairs[:, 1]
        bone[..., child, :] = x[..., child, :] - x[..., parent, :]
        x = bone
    if stream.endswith("motion"):
        motion = np.zeros_like(x)
        motion[..., :-1, :, :] = x[..., 1:, :, :] - x[..., :-1, :, :]
        x = motion
    return x


# --- augmentation ----------------------------------------------------------------------------
def augment(kp: np.ndarray, cfg: AugmentConfig, layout: Layout, rng: np.random.Generator) -> np.ndarray:
    """Random rotation (about all axes in 3D, in-plane in 2D), scale, shear, flip and dropout."""
    kp = kp.copy()
    m, t, v, c = kp.shape
    present = np.abs(kp).sum(-1, keepdims=True) > 0
    mat = np.eye(c, dtype=np.float32)
    if cfg.rotate:
        angles = rng.uniform(-cfg.rotate, cfg.rotate, size=3 if c == 3 else 1)
        mat = _rotation(angles, c) @ mat
    if cfg.shear:
        sh = np.eye(c, dtype=np.float32) + rng.uniform(-cfg.shear, cfg.shear, (c, c)) * (1 - np.eye(c))
        mat = sh.astype(np.float32) @ mat
    if cfg.scale:
        mat = np.diag(1 + rng.uniform(-cfg.scale, cfg.scale, c)).astype(np.float32) @ mat
    kp = kp @ mat.T
    if cfg.flip and rng.random() < cfg.flip:
        kp = kp[:, :, layout.flip_index]
        kp[..., 0] = -kp[..., 0]
        present = present[:, :, layout.flip_index]
    if cfg.joint_drop:
        drop = rng.random((m, 1, v, 1)) < cfg.joint_drop
        kp = np.where(drop, 0.0, kp)
    if cfg.person_drop and m > 1:
        alive = np.abs(kp).sum(axis=(1, 2, 3)) > 0
        if alive.sum() > 1 and rng.random() < cfg.person_drop:
            kp[rng.choice(np.flatnonzero(alive))] = 0
    return np.where(present, kp, 0.0).astype(np.float32)


def _rotation(angles: np.ndarray, c: int) -> np.ndarray:
    def rz(a):
        return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    if c == 2:
        return rz(angles[0])[:2, :2].astype(np.float32)
    ax, ay, az = angles
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    return (rz(az) @ ry @ rx).astype(np.float32)


# --- the pipelines ---------------------------------------------------------------------------
def _check_input(kp: np.ndarray, score: np.ndarray | None, layout: Layout) -> None:
    if not isinstance(kp, np.ndarray) or kp.ndim != 4:
        raise ActionposeError(f"keypoint must be an array [M, T, V, C], got shape {getattr(kp, 'shape', None)}")
    if kp.shape[2] != layout.num_joints:
        raise ActionposeError(f"keypoint has {kp.shape[2]} joints but layout {layout.name} has "
                              f"{layout.num_joints}")
    if kp.shape[1] < 1:
        raise ActionposeError("keypoint has 0 frames")
    if score is not None and score.shape != kp.shape[:3]:
        raise ActionposeError(f"keypoint_score shape {score.shape} != keypoint shape {kp.shape[:3]}")


def prepare(kp: np.ndarray, score: np.ndarray | None, cfg: PreprocessConfig,
            aug: AugmentConfig | None = None, rng: np.random.Generator | None = None) -> np.ndarray:
    """One sequence ``[M, T, V, C]`` -> model input clips ``[num_clips, max_persons, clip_len, V, C']``.

    With ``rng`` the temporal sampling is random and ``aug`` is applied (training); without it the
    result is deterministic (validation, test and every inference path).
    """
    layout = get_layout(cfg.layout)
    kp = np.asarray(kp, dtype=np.float32)
    score = None if score is None else np.asarray(score, dtype=np.float32)
    _check_input(kp, score, layout)
    kp = np.nan_to_num(kp, nan=0.0, posinf=0.0, neginf=0.0)
    kp, score = select_persons(kp, score, cfg.max_persons)
    if cfg.align == "body":
        kp = align_body(kp, layout)
    if rng is not None and aug is not None and aug.view_rotate:
        kp = view_rotation(kp, aug.view_rotate, rng)
    if cfg.norm == "sequence":
        kp = normalize_sequence(kp)
    elif cfg.norm == "axis":
        kp = normalize_axes(kp)
    idx = sample_indices(kp.shape[1], cfg.clip_len, cfg.num_clips, rng)  # [nc, L]
    clips = kp[:, idx].transpose(1, 0, 2, 3, 4)  # [nc, M, L, V, C]
    if rng is not None and aug is not None:
        clips = np.stack([augment(c, aug, layout, rng) for c in clips])
    clips = to_stream(clips, layout, cfg.stream)
    if cfg.with_score:
        # without scores: 1 for a present joint, 0 for a missing one or a padded person
        sc = (np.abs(kp).sum(-1) > 0).astype(np.float32) if score is None else score
        clips = np.concatenate([clips, sc[:, idx].transpose(1, 0, 2, 3)[..., None]], axis=-1)
    return np.ascontiguousarray(clips, dtype=np.float32)


def preprocess(keypoint: np.ndarray, keypoint_score: np.ndarray | None, cfg: PreprocessConfig) -> np.ndarray:
    """Inference preprocessing of a batch ``[N, M, T, V, C]`` -> ``[N, num_clips, M', L, V, C']``."""
    keypoint = np.asarray(keypoint)
    if keypoint.ndim != 5:
        raise ActionposeError(f"keypoint must be an array [N, M, T, V, C], got shape {keypoint.shape}")
    if keypoint_score is not None:
        keypoint_score = np.asarray(keypoint_score)
        if keypoint_score.shape != keypoint.shape[:4]:
            raise ActionposeError(f"keypoint_score shape {keypoint_score.shape} != {keypoint.shape[:4]}")
    return np.stack([prepare(keypoint[i], None if keypoint_score is None else keypoint_score[i], cfg)
                     for i in range(keypoint.shape[0])])
