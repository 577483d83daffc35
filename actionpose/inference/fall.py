"""``actionpose.FallDetector``: fall probability for one keypoint window, and a streaming detector
that turns per-frame poses into one debounced :class:`FallEvent` per fall.

The shipped model (``actionpose/assets/models/fall_body13.onnx`` + ``fall_body13.json``) is an ST-GCN
on body13 windows of 32 frames at 15 fps (2.1 s), input prepared by
:mod:`actionpose.inference.fall_prep`. The JSON sidecar carries the calibrated alert threshold and the
debounce settings; the model card (``fall_body13.md``) the cross-validated numbers.
"""
from __future__ import annotations

import io
import json
import os
import warnings
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, NamedTuple, Sequence

import numpy as np

from actionpose.errors import ActionposeError, where
from actionpose.inference.fall_aftermath import (LONG_LIE_MAX_S, WATCH_MAX_S, Watch, posture, upright_reference,
                                                 where_lying)
from actionpose.inference.fall_prep import (MAX_JITTER, MIN_STREAM_FPS, NORMALISED_ADVICE, UPSIDE_DOWN_ADVICE, PrepConfig, _grid_index,
                                            has_body, input_advice, jitter, prepare_window, prepare_windows,
                                            require_steady, resample, timing_advice, to_body13, TIME_SLACK_S)
from actionpose.skeleton import get_layout

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "models"
FALL_MODELS = {"fall": "fall_body13", "fall_body13": "fall_body13", "default": "fall_body13"}
INPUT_LAYOUTS = ("body13", "coco17", "coco13", "blazepose33")


@dataclass(frozen=True)
class FallConfig:
    """Decision settings stored beside the ONNX file (``<model>.json``)."""

    threshold: float = 0.5          # alert when the window probability reaches this
    min_hits: int = 2               # ... on this many consecutive evaluations (debounce)
    release: float = 0.3            # a person re-arms after prob stays below this ...
    rearm_s: float = 5.0            # ... for this many seconds (one event per fall, not per frame)
    hop_s: float = 1 / 15           # evaluate a person's window at most this often
    min_window_s: float = 1.0       # do not evaluate before this much history exists
    long_lie_s: float = 60.0        # after a fall: "still_down" when no recovery was seen this long after the alert
    recover_s: float = 3.0          # ... "recovered" once the person has been seen up this long
    hold_lost_s: float = 0.0        # a person missing from frames that keep coming: last pose held this long (0: off)
    prep: PrepConfig = field(default_factory=PrepConfig)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FallConfig":
        d = dict(d)
        prep_d = d.pop("prep", {}) or {}
        odd = sorted(set(prep_d) - set(PrepConfig.__dataclass_fields__))
        if odd:  # a sidecar from a newer actionpose: preparing its windows another way would be silently wrong
            raise ActionposeError(f"fall detector setting prep.{odd[0]}: unknown (known: "
                                  f"{', '.join(PrepConfig.__dataclass_fields__)}); is actionpose older than the model?")
        prep = PrepConfig(**prep_d)
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        cfg = cls(prep=prep, **known)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """One line naming the setting: a threshold of 2 or NaN never alarmed, -1 alarmed on walking,
        and a text value failed later inside numpy."""
        def number(name: str, lo: float, hi: float, lo_open: bool = False, hi_open: bool = False) -> None:
            v = getattr(self, name)
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) and \
                (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
            if not ok:
                raise ActionposeError(f"fall detector setting {name}={v!r}: must be a number in "
                                      f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}")
        number("threshold", 0, 1, lo_open=True, hi_open=True)
        number("release", 0, self.threshold)  # re-armed while still above the alert level: repeated alarms
        number("rearm_s", 0, 3600)
        number("hop_s", 0, 10, lo_open=True)
        number("min_window_s", 0, self.prep.frames / self.prep.fps, lo_open=True)
        number("long_lie_s", 0, LONG_LIE_MAX_S, lo_open=True)
        number("recover_s", 0, 60, lo_open=True)
        number("hold_lost_s", 0, 5)
        gap = self.prep.gap_fill
        if not isinstance(gap, int) or isinstance(gap, bool) or not 0 <= gap <= 8:
            raise ActionposeError(f"fall detector setting prep.gap_fill={gap!r}: must be a whole number in [0, 8]")
        if not isinstance(self.min_hits, int) or isinstance(self.min_hits, bool) or not 1 <= self.min_hits <= 100:
            raise ActionposeError(f"fall detector setting min_hits={self.min_hits!r}: must be a whole number in [1, 100]")


@dataclass
class FallResult:
    """One window's verdict. A window longer than the model's 2.13 s is read whole, as streaming it would be:
    every 2.13-s window in it, ending every ``hop_s``; ``prob`` is the highest of them, ``is_fall`` the
    streaming rule (``min_hits`` windows in a row at the threshold) and ``peak_time`` where that highest window
    ends, in seconds from the first frame."""

    prob: float
    is_fall: bool
    threshold: float
    frames_used: int  # distinct input frames the model read (resampled to 15 fps: at most 32 per 2.13 s)
    windows: int = 1  # 2.13-s windows scored
    peak_time: float | None = None  # seconds from the first frame to the end of the highest-scoring window
    fall_start: float | None = None  # a fall: where it began, seconds from the first frame (as a stream dates it)


class Verdict(NamedTuple):
    """One window's answer from :meth:`FallDetector.finish_scan`."""

    prob: float
    is_fall: bool
    peak_time: float | None  # split windows: where the highest-scoring 2.13-s window ends (s from the first frame)
    windows: int             # 2.13-s windows scored
    fall_start: float | None  # a fall: where it began (s from the first frame), as a stream dates it


@dataclass(frozen=True)
class ScanPlan:
    """Where one window's 2.13-s windows sit in a prepared batch (:meth:`FallDetector.prepare_scan`)."""

    rows: slice              # rows of the prepared batch
    ends: tuple[int, ...]    # each window's end (exclusive frame index) in the caller's window
    span: int                # frames per window (the caller's whole window when it is not split)
    fps: float
    split: bool = False      # a window longer than 2.13 s, scored as the 2.13-s windows in it


@dataclass
class FallEvent:
    """One event of one person. ``kind`` says which:

    * ``"fall"``: ``start_time`` is where the hip drop began inside the triggering window,
      ``detected_time`` the timestamp at which the alert was raised, ``confidence`` the peak probability
      over the debounce run.
    * ``"still_down"`` (at most once per fall): no recovery was seen ``long_lie_s`` after the fall's alert.
      ``start_time`` is the fall's alert time, ``detected_time`` this escalation's; ``confidence`` the share
      of the person's frames since the fall that looked down (0 when not seen since: a person lying on the
      floor is often missed by the pose detector, so the escalation is raised all the same).
    * ``"recovered"``: the person has been seen up for ``recover_s``. ``start_time`` is when they were first
      seen up again, ``detected_time`` when that was confirmed; ``confidence`` the share of up frames.

    Follow-ups belong to the same ``track_id`` as their fall (a tracker that gives a person a new id when
    they get up leaves the old one "still down": the safe error)."""

    track_id: int | str
    start_time: float
    detected_time: float
    confidence: float
    kind: str = "fall"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_fall_model(name_or_path: str | os.PathLike) -> Path:
    s = str(name_or_path)
    if s in FALL_MODELS:
        path = ASSETS / f"{FALL_MODELS[s]}.onnx"
        if not path.exists():
            raise where(path, f"shipped fall model {s!r} is missing from this installation")
        return path
    path = Path(s)
    if path.is_dir():
        path = path / "fall_body13.onnx"
    if not path.exists():
        raise ActionposeError(f"{s}: no such fall model; shipped names: {', '.join(sorted(FALL_MODELS))}")
    return path


class OnnxFallScorer:
    """Batch scorer: model-ready windows [N, T, 13, 2] + scores [N, T, 13] -> P(fall) [N].

    Wraps the shared :class:`~actionpose.inference.predictor.ActionPredictor` (one ONNX session, loaded
    once); the fall class index comes from the model's class list."""

    def __init__(self, path: Path, threads: int | None = None):
        from actionpose.inference.predictor import ActionPredictor

        self.predictor = ActionPredictor.from_path(path, threads=threads)
        classes = self.predictor.classes
        if "fall" not in classes:
            raise where(path, f"model classes {classes} have no 'fall' class")
        self.fall_index = classes.index("fall")
        c = self.predictor.config
        # The fall model's generic preprocessing (one person, one clip of exactly the window, joint stream,
        # no normalisation, score as third channel) reduces to a concatenation; doing that for the whole
        # batch at once skips a per-window Python loop. Checked against the generic path once here.
        self.direct = (c.num_clips == 1 and c.max_persons == 1 and c.stream == "joint" and c.norm == "none"
                       and c.with_score and self.predictor.coords == 2)
        if self.direct:
            rng = np.random.default_rng(0)
            kp = rng.normal(0, 1, (3, c.clip_len, 13, 2)).astype(np.float32)
            sc = rng.uniform(0, 1, (3, c.clip_len, 13)).astype(np.float32)
            self.direct = bool(np.array_equal(self(kp, sc), self._generic(kp, sc)))

    def _generic(self, kp: np.ndarray, sc: np.ndarray) -> np.ndarray:
        probs = self.predictor.predict(kp[:, None], sc[:, None])
        return probs[:, self.fall_index].astype(np.float64)

    def __call__(self, kp: np.ndarray, sc: np.ndarray) -> np.ndarray:
        if not (self.direct and kp.ndim == 4 and kp.shape[1] == self.predictor.clip_len and np.isfinite(kp).all()
                and np.isfinite(sc).all()):
            return self._generic(kp, sc)
        from actionpose.inference.predictor import _softmax

        x = np.concatenate([kp, sc[..., None]], axis=-1, dtype=np.float32)[:, None]  # [N, M=1, T, 13, 3]
        logits = self.predictor.run_clips(x)
        probs = _softmax(logits.reshape(len(x), 1, -1)).mean(axis=1).astype(np.float32)
        return probs[:, self.fall_index].astype(np.float64)


# 3D camera-space layouts: their third channel is depth, which the 2D fall model would read as a score
_DEPTH_LAYOUTS = ("ntu25", "kinect20", "kinect20_utd")


def _input_layout(layout: str) -> str:
    name = get_layout(layout).name
    if name in _DEPTH_LAYOUTS:
        raise ActionposeError(f"layout {name!r} holds 3D camera-space joints; the fall model takes 2D image "
                              f"keypoints ({', '.join(INPUT_LAYOUTS)}, or any 2D layout that names body13's joints)")
    return name


def _frames(window: Any) -> int:
    """A window's frame count for splitting; 0 for what has none (prepare_batch then says what is wrong)."""
    try:
        return len(window)
    except TypeError:
        return 0


MIN_FPS = MIN_STREAM_FPS  # predict and streams; docs/fall.md: "at 3 fps or more" (fall_video_1 subsampled: found at 3, missed at 2)


def _fps(fps: Any) -> float:
    try:
        f = float(fps)
    except (TypeError, ValueError):
        raise ActionposeError(f"fps: {fps!r} is not a number") from None
    if not (np.isfinite(f) and 0 < f <= 1000):
        raise ActionposeError(f"fps: {fps!r} must be a frame rate in (0, 1000]")
    if f < MIN_FPS:  # 1 fps was scored (0.86) with no word; streams refuse frames more than 1 s apart alike
        raise ActionposeError(f"fps: {fps!r} is below the {MIN_FPS:g} fps the fall detector needs (the fall in "
                              "fall_skeleton_1.npy was found at 3 fps and missed at 2)")
    return f


def _window(window: Any, scores: Any, where_: str = "") -> tuple[np.ndarray, np.ndarray | None]:
    """A window as float32 [T, V, 2] plus scores: a third channel is the score; anything else is refused
    here in words (numpy's own error for a ragged or text window is a traceback to the caller)."""
    try:
        w = np.asarray(window, dtype=np.float32)
    except (TypeError, ValueError):
        raise ActionposeError(f"{where_}keypoints: not a numeric [T, V, 2|3] array (ragged, or not numbers)") from None
    if w.ndim != 3 or w.shape[-1] not in (2, 3):
        raise ActionposeError(f"{where_}keypoints: shape {w.shape}, expected [T, V, 2] (x, y) or [T, V, 3] "
                              "(x, y, score)")
    if w.shape[-1] == 3:
        if scores is not None:
            raise ActionposeError(f"{where_}keypoints: a third (score) channel and separate scores were both given")
        w, scores = w[..., :2], score_channel(w[..., 2], where_)
    if scores is not None:
        try:
            scores = np.asarray(scores, dtype=np.float32)
        except (TypeError, ValueError):
            raise ActionposeError(f"{where_}scores: not a numeric [T, V] array") from None
    return w, scores


SCORE_MAX = 1.1  # confidences up to this are scores (AlphaPose's reach 1.04; taken as 1); above it, not a score


def score_channel(third: np.ndarray, where_: str = "") -> np.ndarray:
    """A window's or a frame's third channel as scores: it must be a confidence in [0, 1] (NaN, a missing joint,
    aside; up to :data:`SCORE_MAX` is taken as 1, since AlphaPose's scores overshoot 1 a little). BlazePose's
    [x, y, z] sent as three channels had its depth read as a score and a fall was missed. Shared by windows,
    streams and the service, so all refuse the same input in the same words."""
    third = np.asarray(third, dtype=np.float32)
    lo, hi = third.min(initial=0.0), third.max(initial=0.0)
    if not (lo >= 0 and hi <= SCORE_MAX):  # NaN fails both: then judged on the finite values only
        seen = third[np.isfinite(third)]
        if seen.size and not (seen.min() >= 0 and seen.max() <= SCORE_MAX):
            raise ActionposeError(f"{where_}keypoints: the third channel is a score in [0, 1]; got values from "
                                  f"{seen.min():.3g} to {seen.max():.3g} (a depth z? pass [x, y] only)")
        hi = seen.max(initial=0.0)
    return np.minimum(third, np.float32(1)) if hi > 1 else third


def _timestamp(value: Any) -> float:
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise ActionposeError(f"timestamp {value!r} is not a number of seconds") from None
    if not np.isfinite(t):
        raise ActionposeError(f"timestamp {value!r} is not finite")
    if abs(t) > 1e10:  # the service's bound too: a millisecond clock gave silent misses (the hop never fell due)
        raise ActionposeError(f"timestamp {value!r} is beyond 1e10 s (the year 2286): milliseconds? give seconds")
    return t


# Timestamps are compared with this slack: UNIX-time seconds (~1.7e9) carry only ~2.4e-7 s of float64
# resolution, so a 1e-9 slack made the scoring hop depend on the clock's origin.
_TIME_EPS = TIME_SLACK_S  # stream times are compared with this slack (fall_prep's timing advice too)
MAX_PEAKS = 10_000  # tracks whose best fall probability a detector keeps (FallDetector.peaks)
INPUT_CHECK_S = 1.0  # stream seconds between two checks of a person's input (normalised, upside down): ~0.1 ms each
MAX_FRAME_GAP_S = 1.0  # a stream whose frames keep coming further apart than this is refused (_check_spacing)
SPARSE_FRAMES = 5      # ... after this many such frames in a row (one long gap is a reconnect, not a bad clock)


def running_median(y: np.ndarray, k: int) -> np.ndarray:
    """Median over 2k+1 samples around each one along the last axis, the ends padded with the edge values.
    The numbers of ``scipy.signal.medfilt`` on the same padding (tested), without importing scipy.signal,
    which took ~0.8 s and was paid on the first alert of a process. The middle of the sorted 2k+1 values,
    not ``np.median`` (same numbers, a third less time on a 32-sample window)."""
    y = np.asarray(y)
    padded = np.concatenate([np.repeat(y[..., :1], k, -1), y, np.repeat(y[..., -1:], k, -1)], -1)
    return np.sort(np.lib.stride_tricks.sliding_window_view(padded, 2 * k + 1, axis=-1), axis=-1)[..., k]


def drop_start_index(y: np.ndarray, k: int) -> np.ndarray:
    """Per row of ``y`` [B, T] (upper-body image height; y grows downwards), the frame where its drop began:
    median-filtered over 2k+1 frames so pose glitches do not count, the first frame that has covered 80 % of
    the drop, then back to the last frame still within 10 % of the upright level before it; 0 for a row that
    does not move. One numpy pass for a whole batch: the service dates every alerting window of a batch at once
    (one window at a time took 74 us, 16 % of the server's time when every request was an alert)."""
    y = running_median(np.asarray(y, np.float64), k)
    n = y.shape[1]
    lo, hi = y.min(1, keepdims=True), y.max(1, keepdims=True)
    i80 = np.argmax(y >= lo + 0.8 * (hi - lo), axis=1)[:, None]
    before = np.arange(n)[None] <= i80
    top = np.where(before, y, np.inf).min(1, keepdims=True)
    upright = before & (y <= top + 0.1 * (hi - top))
    last = n - 1 - np.argmax(upright[:, ::-1], axis=1)
    return np.where((hi - lo)[:, 0] < 1e-6, 0, last)


def _smoothing_k(times: np.ndarray) -> int | None:
    """Half-width in frames of the ~0.2-s median filter for frames at ``times``; None under 5 frames (too few to
    date a drop: the window's first frame is taken)."""
    if len(times) < 5:
        return None
    return max(1, int(round(0.1 / max(float(np.median(np.diff(times))), 1e-3))))


def hip_drop_start(kp: np.ndarray, times: np.ndarray) -> float:
    """Where the fall began inside a body13 window [T, V, 2] with frame ``times`` (:func:`drop_start_index` on
    the head + shoulders height, filtered over ~0.2 s)."""
    t = np.asarray(times, dtype=np.float64)
    k = _smoothing_k(t)
    return float(t[0]) if k is None else float(t[drop_start_index(kp[None, :, :3, 1].mean(2), k)[0]])


@dataclass
class _Due:
    """A person's window that fell due at frame ``time``, with its history as it was then (later frames
    of the same ``update_many`` call move the track's history on before the window is scored)."""

    tid: Any
    track: "_Track"
    time: float
    kps: np.ndarray
    scores: np.ndarray
    times: np.ndarray


@dataclass
class _Track:
    times: deque = field(default_factory=deque)
    kps: deque = field(default_factory=deque)
    scores: deque = field(default_factory=deque)
    last_eval: float = -np.inf
    hits: int = 0
    run_max: float = 0.0
    run_start: float | None = None
    armed: bool = True
    below_since: float | None = None
    advised: float = -np.inf  # stream time the input was last checked (:func:`input_advice`)
    seen_at: float = -np.inf  # the person's last real frame (later frames in ``times`` are held copies of it)


class FallDetector:
    """Fall detection on keypoint windows (``predict``) and on live per-person streams (``update``)."""

    def __init__(self, scorer: Any, config: FallConfig = FallConfig(), layout: str = "coco17",
                 source: str | None = None):
        self.scorer = scorer
        self.config = config
        self.layout = get_layout(layout).name
        self.source = source
        self._tracks: dict[Any, _Track] = {}
        self._watches: dict[Any, Watch] = {}  # fallen persons whose follow-up (still down / up again) is open
        self.last_time: float | None = None  # the newest frame's timestamp seen by update()
        self._sparse = 0  # frames in a row that came more than MAX_FRAME_GAP_S after the previous one
        self.windows_scored = 0  # by update() since reset(): 0 after a whole input means nothing could be checked
        # per track, the highest probability update() scored (how close a call came); the newest MAX_PEAKS tracks
        self.peaks: dict[Any, float] = {}
        # the input advice (UserWarning texts, without the "fall detector: " prefix) of the latest update() or
        # update_many(): the service answers a stream request with it, where warnings would cross threads
        self.advice: list[str] = []

    # --- construction ------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike = "fall", layout: str = "coco17",
                        threads: int | None = None, **overrides: Any) -> "FallDetector":
        """Shipped name (``fall``) or a path to ``.onnx`` (its ``.json`` sidecar is read when present);
        ``overrides`` replace sidecar settings, e.g. ``threshold=0.7``."""
        path = resolve_fall_model(name_or_path)
        side = path.with_suffix(".json")
        cfg: dict[str, Any] = {}
        if side.exists():
            try:
                cfg = json.loads(side.read_text()).get("detector", {})
            except json.JSONDecodeError as e:
                raise where(side, f"invalid JSON ({e})") from None
        unknown = sorted(set(overrides) - set(FallConfig.__dataclass_fields__) - {"prep"})
        if unknown:
            raise ActionposeError(f"from_pretrained: unknown setting(s) {', '.join(unknown)}; known: "
                                  f"{', '.join(k for k in FallConfig.__dataclass_fields__ if k != 'prep')}")
        if "threshold" in overrides and "release" not in overrides and isinstance(overrides["threshold"], (int, float)):
            # a lowered alert threshold (--threshold 0.2) takes the re-arm level down with it
            cfg["release"] = min(cfg.get("release", FallConfig.release), overrides["threshold"])
        cfg.update(overrides)
        return cls(OnnxFallScorer(path, threads=threads), FallConfig.from_dict(cfg), layout=layout, source=str(path))

    # --- one window --------------------------------------------------------------------------
    def prepare(self, window: np.ndarray, scores: np.ndarray | None = None, layout: str | None = None,
                fps: float = 30.0, times: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Window [T, V, 2|3] (a third channel is taken as the score) -> model input."""
        w, scores = _window(window, scores)
        if times is None:
            self._long_enough(len(w), _fps(fps))
        kp, sc = prepare_window(w, scores, _input_layout(layout or self.layout), times=times, fps=_fps(fps),
                                cfg=self.config.prep)
        require_steady(kp[None], sc[None], self.config.prep.score_min)
        return kp, sc

    def _long_enough(self, frames: int, fps: float, where_: str = "") -> None:
        """Refuse a window shorter than ``min_window_s``, the history a stream needs before it is scored.
        Why: one frame of someone lying down scored p = 0.99, a confident "fall" from no motion at all."""
        need = self.config.min_window_s
        if (frames - 1) / fps < need - _TIME_EPS:
            raise ActionposeError(f"{where_}keypoints: {frames} frame(s) at {fps:g} fps span {max(frames - 1, 0) / fps:.2f} s; "
                                  f"the fall model needs at least {need:g} s ({int(np.ceil(need * fps - 1e-6)) + 1} "
                                  f"frames at this rate; it reads the last "
                                  f"{self.config.prep.frames / self.config.prep.fps:.2f} s)")

    def prepare_batch(self, windows: Sequence[np.ndarray], scores: Sequence[np.ndarray | None] | None = None,
                      layout: str | None = None, fps: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`prepare` for several windows -> stacked model input [N, T', 13, 2], [N, T', 13].

        Windows of the same shape are prepared in one vectorised pass (identical numbers to
        :meth:`prepare`; a per-window Python loop was most of a micro-batch's preparation time)."""
        scores = scores if scores is not None else [None] * len(windows)
        groups: dict[tuple, list[int]] = {}
        arrays: list[tuple[np.ndarray, np.ndarray | None]] = []
        layout, fps = _input_layout(layout or self.layout), _fps(fps)
        for i, (w, s) in enumerate(zip(windows, scores)):
            w, s = _window(w, s, f"window {i}: " if len(windows) > 1 else "")
            self._long_enough(len(w), fps, f"window {i}: " if len(windows) > 1 else "")
            arrays.append((w, s))
            groups.setdefault((w.shape, None if s is None else np.shape(s)), []).append(i)
        n, cfg = len(arrays), self.config.prep
        kp_out = np.empty((n, cfg.frames, 13, 2), np.float32)
        sc_out = np.empty((n, cfg.frames, 13), np.float32)
        for (shape, sc_shape), idx in groups.items():
            if len(idx) == 1 or len(shape) != 3:
                for i in idx:
                    kp_out[i], sc_out[i] = prepare_window(arrays[i][0], arrays[i][1], layout or self.layout,
                                                          fps=fps, cfg=cfg)
                continue
            kp = np.stack([arrays[i][0] for i in idx])
            sc = None if sc_shape is None else np.stack([np.asarray(arrays[i][1], np.float32) for i in idx])
            kp_out[idx], sc_out[idx] = prepare_windows(kp, sc, layout or self.layout, fps=fps, cfg=cfg)
        require_steady(kp_out, sc_out, cfg.score_min)
        return kp_out, sc_out

    def predict(self, window: np.ndarray, scores: np.ndarray | None = None, layout: str | None = None,
                fps: float = 30.0) -> FallResult:
        """P(fall) for one window of one person; ``window`` [T, V, 2] or [T, V, 3] (x, y, score). The model reads
        2.13 s; a longer window is read whole, every 2.13-s window in it (:meth:`prepare_scan`, :class:`FallResult`).
        Input that looks wrong gets a ``UserWarning`` (:meth:`input_advice`)."""
        return self._predict_batch([window], [scores], layout, fps, stacklevel=3)[0]

    def span_frames(self, fps: float) -> int:
        """Frames of the caller's rate that cover the model's 2.13 s (64 at 30 fps): a longer window is split."""
        return int(np.ceil(self.config.prep.frames / self.config.prep.fps * fps - 1e-6))

    def prepare_scan(self, windows: Sequence[Any], scores: Sequence[Any] | None = None, layout: str | None = None,
                     fps: float = 30.0, row0: int = 0) -> tuple[np.ndarray, np.ndarray, list[ScanPlan]]:
        """:meth:`prepare_batch`, with each window longer than the model's 2.13 s split into every 2.13-s window
        in it, ending at its last frame and every ``hop_s`` before (what streaming the window scores).

        Why: the model reads 2.13 s, and a longer window used to be scored on its last 2.13 s alone - a
        6-s clip of a real fall scored 0.86, under the threshold, with the fall 3 s before its end. A split
        window whose parts cannot all be scored (nobody in the first seconds, a jittery stretch) keeps the
        parts that can; if none can, it is refused with the message of its last part, as before. ``row0``: where
        these rows will start in a batch the caller concatenates (the plans' rows count from it)."""
        scores = scores if scores is not None else [None] * len(windows)
        rate = _fps(fps)
        span = self.span_frames(rate)
        if all(_frames(w) <= span for w in windows):  # the common case (the service's 64-frame windows): no split
            kp, sc = self.prepare_batch(windows, scores, layout=layout, fps=fps)
            return kp, sc, [ScanPlan(slice(row0 + i, row0 + i + 1), (len(w),), len(w), rate)
                            for i, w in enumerate(windows)]
        kps, scs, plans, row = [], [], [], row0
        for i, (w, s) in enumerate(zip(windows, scores)):
            split = _frames(w) > span
            if not split:
                kp, sc = self.prepare_batch([w], [s], layout=layout, fps=fps)
                ends = (len(w),)
            else:
                ends = self._ends(len(w), span, rate)
                kp, sc, ends = self._prepare_parts(w, s, ends, span, layout, fps, f"window {i}: " if len(windows) > 1 else "")
            kps.append(kp)
            scs.append(sc)
            plans.append(ScanPlan(slice(row, row + len(ends)), ends, min(span, len(w)), rate, split))
            row += len(ends)
        return np.concatenate(kps), np.concatenate(scs), plans

    def _ends(self, frames: int, span: int, fps: float) -> tuple[int, ...]:
        """Where the 2.13-s windows of a longer window end: its last frame, then every ``hop_s`` of time before
        (rounded to frames; at 18 fps a whole-frame hop of 1 scored twice the windows streaming would)."""
        step = self.config.hop_s * fps
        back = {round(i * step) for i in range(int((frames - span) / step + 1e-9) + 1)}  # frames before the end
        return tuple(sorted(frames - b for b in back if frames - b >= span))

    def _prepare_parts(self, w: Any, s: Any, ends: tuple[int, ...], span: int, layout: str | None, fps: float,
                       where_: str) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
        parts = [w[e - span:e] for e in ends]
        part_scores = [None if s is None else s[e - span:e] for e in ends]
        try:
            kp, sc = self.prepare_batch(parts, part_scores, layout=layout, fps=fps)
            return kp, sc, ends
        except ActionposeError:
            pass
        kept, kps, scs, error = [], [], [], None
        for e, part, ps in zip(ends, parts, part_scores):  # which parts can be scored
            try:
                kp, sc = self.prepare_batch([part], [ps], layout=layout, fps=fps)
            except ActionposeError as err:
                error = err
                continue
            kept.append(e)
            kps.append(kp)
            scs.append(sc)
        if not kept:
            raise ActionposeError(f"{where_}{error}") from None
        return np.concatenate(kps), np.concatenate(scs), tuple(kept)

    def finish_scan(self, probs: np.ndarray, plans: Sequence[ScanPlan], kp: np.ndarray | None = None) -> list[Verdict]:
        """Per window a :class:`Verdict` from the probabilities of :meth:`prepare_scan`'s rows. One 2.13-s window:
        alert at the threshold, as ever. A split one: the streaming rule, ``min_hits`` windows in a row at the
        threshold (consecutive ends, one hop apart). With the prepared ``kp``, a fall also gets ``fall_start``:
        where the hip drop began (:func:`hip_drop_start`, as a stream dates its events) in the first window of the
        first run that raised it, in seconds from the window's first frame."""
        cfg, out, dated = self.config, [], []  # dated: (verdict index, plan, window j) of each fall to date
        for plan in plans:
            if not plan.split:  # one window (the service's usual request): no numpy unless it is a fall
                p1 = float(probs[plan.rows.start])
                if p1 >= cfg.threshold:
                    dated.append((len(out), plan, 0))
                out.append(Verdict(p1, p1 >= cfg.threshold, None, 1, None))
                continue
            p = np.asarray(probs[plan.rows], np.float64)
            k = int(np.argmax(p))
            hop, run, first = max(1, int(np.ceil(cfg.hop_s * plan.fps - 1e-9))), 0, None
            need = min(cfg.min_hits, len(p))
            for j, hit in enumerate(p >= cfg.threshold):  # the first run of hits one hop apart that is long enough
                run = (run + 1 if j > 0 and plan.ends[j] - plan.ends[j - 1] <= hop else 1) if hit else 0
                if run >= need and first is None:
                    first = j - run + 1
            if first is not None:
                dated.append((len(out), plan, first))
            out.append(Verdict(float(p[k]), first is not None, round((plan.ends[k] - 1) / plan.fps, 4), len(p), None))
        if dated and kp is not None:
            for (i, _, _), start in zip(dated, self._fall_starts(kp, [(plan, j) for _, plan, j in dated])):
                out[i] = out[i]._replace(fall_start=start)
        return out

    def _fall_starts(self, kp: np.ndarray, windows: list[tuple[ScanPlan, int]]) -> list[float]:
        """:func:`hip_drop_start` in window ``j`` of each ``(plan, j)``, all in one pass: the prepared rows are the
        model's 15-fps grid ending at that window's last frame (image y still grows downwards there)."""
        prep = self.config.prep
        grid = (np.arange(prep.frames) - (prep.frames - 1)) / prep.fps  # frame times before each window's end
        k = _smoothing_k(grid)
        if k is None:
            idx = np.zeros(len(windows), int)
        else:
            rows = [plan.rows.start + j for plan, j in windows]
            idx = drop_start_index(kp[rows, :, :3, 1].mean(2), k)
        return [round(max(0.0, (plan.ends[j] - 1) / plan.fps + float(grid[i])), 4) for (plan, j), i in zip(windows, idx)]

    def predict_batch(self, windows: Sequence[np.ndarray], scores: Sequence[np.ndarray | None] | None = None,
                      layout: str | None = None, fps: float = 30.0) -> list[FallResult]:
        """Several windows in one ONNX call. Input that looks wrong (normalised coordinates, a body upside
        down: :meth:`input_advice`) gets a Python ``UserWarning``."""
        return self._predict_batch(windows, scores, layout, fps, stacklevel=3)

    def _predict_batch(self, windows: Sequence[np.ndarray], scores: Sequence[np.ndarray | None] | None,
                       layout: str | None, fps: float, stacklevel: int) -> list[FallResult]:
        if scores is not None and len(scores) != len(windows):
            raise ActionposeError(f"scores: {len(scores)} entries for {len(windows)} windows; give one per window "
                                  "(None where a window has no scores)")
        if not len(windows):
            return []
        kp, sc, plans = self.prepare_scan(windows, scores, layout=layout, fps=fps)
        verdicts = self.finish_scan(self.score_prepared(kp, sc), plans, kp)
        for advice in dict.fromkeys(a for said in self.input_advice(windows, scores, layout) for a in said):
            warnings.warn("fall detector: " + advice, UserWarning, stacklevel=stacklevel)  # at the caller's line
        thr, prep = self.config.threshold, self.config.prep
        return [FallResult(prob=v.prob, is_fall=v.is_fall, threshold=thr, windows=v.windows, peak_time=v.peak_time,
                           fall_start=v.fall_start,
                           frames_used=len({e - plan.span + int(i) for e in plan.ends
                                            for i in _grid_index(plan.span, plan.fps, prep.fps, prep.frames)}))
                for v, plan in zip(verdicts, plans)]

    def input_advice(self, windows: Sequence[np.ndarray], scores: Sequence[np.ndarray | None] | None = None,
                     layout: str | None = None) -> list[list[str]]:
        """Per window, what looks wrong with it (:func:`fall_prep.input_advice`): coordinates normalised to
        [0, 1], or a body upside down (y pointing up). Not refused - valid input can look the same - but
        said: either gave wrong answers without a word. One vectorised pass per window shape."""
        scores = scores if scores is not None else [None] * len(windows)
        layout = _input_layout(layout or self.layout)
        arrays = [_window(w, s) for w, s in zip(windows, scores)]
        out: list[list[str]] = [[] for _ in arrays]
        groups: dict[tuple, list[int]] = {}
        for i, (w, s) in enumerate(arrays):
            groups.setdefault((w.shape, s is None), []).append(i)
        for (_, no_scores), idx in groups.items():
            sc = None if no_scores else np.stack([arrays[i][1] for i in idx])
            for i, said in zip(idx, input_advice(np.stack([arrays[i][0] for i in idx]), sc, layout,
                                                 self.config.prep.score_min)):
                out[i] = said
        return out

    def score_prepared(self, kp: np.ndarray, sc: np.ndarray) -> np.ndarray:
        return np.asarray(self.scorer(kp, sc), dtype=np.float64)

    # --- streaming ---------------------------------------------------------------------------
    def reset(self) -> None:
        self._tracks.clear()
        self.peaks.clear()
        self.windows_scored = 0  # it kept counting across inputs: 45, 90, 135 for one clip run three times
        self._watches.clear()
        self.last_time = None
        self._sparse = 0

    def open_follow_ups(self) -> list[dict[str, Any]]:
        """The fallen persons not seen up again yet (neither ``recovered`` nor dropped): ``track_id``,
        ``fall_time`` (the alert), ``still_down_sent``, ``frames_judged`` and ``down_share``. Why: a file that
        ends before ``long_lie_s`` has passed said only "fall", not that the person was still down."""
        return [{"track_id": tid, "fall_time": w.fall_time, "still_down_sent": w.still_down_sent,
                 "frames_judged": w.seen, "down_share": round(w.down / w.seen, 4) if w.seen else None}
                for tid, w in self._watches.items()]

    def tick(self, now: float) -> list[FallEvent]:
        """The follow-ups due by stream time ``now`` although no frame came: a ``still_down`` for a fallen person
        whose camera went silent. Why: follow-ups are judged at frames, so a camera that stopped sending after a
        fall (unplugged, its app killed, the network down) never escalated: the person on the floor got no
        ``still_down`` until frames came again. Call it on a clock while frames do not come (the service does,
        on the server's clock); nothing else changes, and later frames are taken as before."""
        t = _timestamp(now)
        if self.last_time is None or t <= self.last_time:
            return []
        return self._follow_up(t)

    def silent_due(self) -> float | None:
        """The stream time at which :meth:`tick` would raise the next ``still_down``; None when none is pending."""
        due = [w.fall_time + self.config.long_lie_s for w in self._watches.values() if not w.still_down_sent]
        return min(due) if due else None

    @property
    def track_ids(self) -> list[Any]:
        """The persons with recent history (seen within the last window)."""
        return list(self._tracks)

    _STATE_MAGIC = b"APFALL2\n"

    def state_bytes(self) -> bytes:
        """The streaming state (each person's recent keypoints and debounce state) as bytes, so a
        service can keep it in its database: it then survives restarts and is shared by every worker.
        A JSON header and the raw float arrays behind it - no pickle, so loading it runs no code, and
        0.18 ms to save / 0.09 ms to load two 90-frame tracks where an ``.npz`` (the first format, still
        read) took 1.24 / 0.89 ms: a service saves and loads it on every stream request."""
        meta, blobs = [], []
        for tid, tr in self._tracks.items():
            if not tr.times:
                continue
            if not isinstance(tid, (str, int, np.integer)) or isinstance(tid, bool):
                raise ActionposeError(f"track_id {tid!r}: only str or int track ids can be saved")
            kps, scores = np.stack(tr.kps).astype("<f4"), np.stack(tr.scores).astype("<f4")
            meta.append({"id": tid.item() if isinstance(tid, np.integer) else tid, "n": len(tr.times),
                         "kps": list(kps.shape[1:]), "scores": list(scores.shape[1:]),
                         "last_eval": tr.last_eval if np.isfinite(tr.last_eval) else None, "hits": tr.hits,
                         "run_max": tr.run_max, "run_start": tr.run_start, "armed": tr.armed,
                         "below_since": tr.below_since, "seen_at": tr.seen_at})
            blobs += [np.asarray(tr.times, "<f8").tobytes(), kps.tobytes(), scores.tobytes()]
        watches = []
        for tid, w in self._watches.items():
            if not isinstance(tid, (str, int, np.integer)) or isinstance(tid, bool):
                raise ActionposeError(f"track_id {tid!r}: only str or int track ids can be saved")
            watches.append({"id": tid.item() if isinstance(tid, np.integer) else tid, **w.to_dict()})
        head = json.dumps({"version": 2, "last_time": self.last_time, "sparse": self._sparse, "tracks": meta,
                           "watches": watches}).encode()
        return self._STATE_MAGIC + len(head).to_bytes(4, "little") + head + b"".join(blobs)

    def load_state(self, data: bytes) -> None:
        """Replace the streaming state with one saved by :meth:`state_bytes` (either format)."""
        try:
            if data.startswith(self._STATE_MAGIC):
                head, tracks = self._load_raw(memoryview(data)[len(self._STATE_MAGIC):])
            else:
                head, tracks = self._load_npz(data)
        except Exception as e:  # noqa: BLE001 - any malformed byte string (EOFError, BadZipFile, ...) is one error
            raise ActionposeError(f"stream state: unreadable ({type(e).__name__}: {e})") from None
        last = head.get("last_time")
        if last is not None and not (isinstance(last, (int, float)) and np.isfinite(last)):
            raise ActionposeError(f"stream state: last_time {last!r} is not a finite number")
        sparse = head.get("sparse", 0)
        if not (isinstance(sparse, int) and not isinstance(sparse, bool) and 0 <= sparse < SPARSE_FRAMES):
            raise ActionposeError(f"stream state: sparse {sparse!r} is not a frame count")
        watches = {}
        for m in head.get("watches", []):  # absent in states saved before follow-ups existed
            if not isinstance(m, dict) or not isinstance(m.get("id"), (str, int)) or isinstance(m.get("id"), bool):
                raise ActionposeError("stream state: a fall follow-up has no valid track id")
            try:
                watches[m["id"]] = Watch.from_dict(m)
            except (ValueError, TypeError) as e:
                raise ActionposeError(f"stream state: track {m['id']!r}: {e}") from None
        self._tracks, self._watches, self.last_time, self._sparse = tracks, watches, last, sparse

    @staticmethod
    def _track(m: dict, times: np.ndarray, kps: np.ndarray, scores: np.ndarray) -> _Track:
        """One saved track, checked: a state that loads must also stream (a hand-made or damaged one failed
        only at the next ``update``, deep in the numpy code)."""
        n = len(times)
        if kps.shape != (n, 13, 2) or scores.shape != (n, 13) or not np.isfinite(times).all() \
                or np.any(np.diff(times) <= 0):
            raise ValueError(f"track {m.get('id')!r}: arrays do not form a body13 history")
        num = (int, float)
        if not (isinstance(m["hits"], int) and not isinstance(m["hits"], bool) and m["hits"] >= 0
                and isinstance(m["armed"], bool) and isinstance(m["run_max"], num)
                and all(m[k] is None or isinstance(m[k], num) for k in ("last_eval", "run_start", "below_since"))
                and isinstance(m.get("seen_at", 0.0), num) and np.isfinite(m.get("seen_at", 0.0))):
            raise ValueError(f"track {m.get('id')!r}: bad decision state")
        return _Track(times=deque(times.tolist()), kps=deque(kps), scores=deque(scores),
                      last_eval=-np.inf if m["last_eval"] is None else m["last_eval"], hits=m["hits"],
                      run_max=m["run_max"], run_start=m["run_start"], armed=m["armed"], below_since=m["below_since"],
                      seen_at=float(m.get("seen_at", times[-1])))  # states saved before it: the last frame was seen

    @classmethod
    def _load_raw(cls, buf: memoryview) -> tuple[dict, dict]:
        size = int.from_bytes(buf[:4], "little")
        head = json.loads(bytes(buf[4:4 + size]))
        pos, tracks = 4 + size, {}
        for m in head["tracks"]:
            n = int(m["n"])
            parts = []
            for dtype, shape in (("<f8", (n,)), ("<f4", (n, *m["kps"])), ("<f4", (n, *m["scores"]))):
                count = int(np.prod(shape))
                arr = np.frombuffer(buf, dtype, count, pos).reshape(shape).copy()
                pos += arr.nbytes
                parts.append(arr)
            tracks[m["id"]] = cls._track(m, *parts)
        if pos != len(buf):
            raise ValueError(f"{len(buf) - pos} bytes left over")
        return head, tracks

    @classmethod
    def _load_npz(cls, data: bytes) -> tuple[dict, dict]:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            head = json.loads(str(z["meta"]))
            tracks = {m["id"]: cls._track(m, z[f"times{i}"], z[f"kps{i}"], z[f"scores{i}"])
                      for i, m in enumerate(head["tracks"])}
        return head, tracks

    def update(self, frame_keypoints: Any, timestamp: float, layout: str | None = None) -> list[FallEvent]:
        """Add one frame and return the events raised at this frame (usually none): falls, and after a fall
        whether that person is still down or up again (:class:`FallEvent` ``kind``).

        ``frame_keypoints``: one person as [V, 2|3], or several as ``{track_id: [V, 2|3]}`` or a list of
        objects/dicts with ``track_id``, ``keypoints`` [V, 2] and ``scores`` [V] (pose frontend frames).
        Timestamps are seconds and must increase per person. Persons not seen for a window's length
        are forgotten."""
        return self.update_many([(frame_keypoints, timestamp)], layout=layout, _one=True)

    def update_many(self, frames: Iterable[tuple[Any, float]], layout: str | None = None,
                    _one: bool = False) -> list[FallEvent]:
        """:meth:`update` for consecutive ``(frame_keypoints, timestamp)`` pairs: the same decisions and
        events, but every window that falls due in them is scored in one ONNX call instead of one call per
        frame (a service request of 15 frames x 2 persons: 8 calls -> 1). The windows are prepared from
        each frame's own history and the alert logic steps through them in frame order, so only the
        batching differs. A refused frame raises :class:`ActionposeError` after the frames before it have
        counted; their events are on the error as ``events``."""
        due: list[_Due] = []
        seen: list[tuple[float, dict]] = []  # this call's frames: time, {track: (kp13, sc13)} (for the follow-ups)
        self.advice = []
        layout = _input_layout(layout or self.layout)
        i = -1
        try:
            for i, (frame_keypoints, timestamp) in enumerate(frames):
                t = _timestamp(timestamp)
                self._check_spacing(t)
                self._ingest(frame_keypoints, t, layout, due, seen)
        except ActionposeError as e:
            if not _one:  # which of the frames (update() with its one frame keeps the message as it was)
                e.args = (f"frame {i}: {e}",)
            e.events = self._decide(due, seen)
            raise
        return self._decide(due, seen)

    def _check_spacing(self, t: float) -> None:
        """Refuse a stream whose frames keep arriving more than :data:`MAX_FRAME_GAP_S` apart.

        Why: a clock in milliseconds (``performance.now()``, ``uptimeMillis``) put frames ~33 "seconds"
        apart, so no window ever held two frames, nothing was scored and a fall was missed without a
        word. One long gap is normal (a camera reconnecting, nobody in view); :data:`SPARSE_FRAMES` of
        them in a row is a stream a fall cannot be seen in."""
        if self.last_time is not None and t > self.last_time:
            gap = t - self.last_time
            self._sparse = self._sparse + 1 if gap > MAX_FRAME_GAP_S else 0
            if self._sparse >= SPARSE_FRAMES:
                self._sparse = 0
                raise ActionposeError(
                    f"timestamp {t}: {SPARSE_FRAMES} frames in a row came more than {MAX_FRAME_GAP_S:g} s apart "
                    f"(the last {gap:.3g} s): timestamps must be seconds (a millisecond clock?), and a fall needs "
                    f"frames at {MIN_FPS:g} fps or more")

    def _ingest(self, frame_keypoints: Any, timestamp: float, layout: str, due: list[_Due],
                seen: list[tuple[float, dict]]) -> None:
        """Add one frame to the tracks; a person whose window falls due goes to ``due``."""
        persons = list(_persons(frame_keypoints))
        cfg = self.config
        span = cfg.prep.frames / cfg.prep.fps + 0.5
        checked = []
        for tid, kp, sc in persons:  # the whole frame is checked before any track changes
            kp13, sc13 = to_body13(kp[None], None if sc is None else sc[None], layout)
            tr = self._tracks.get(tid)
            if tr is not None and tr.times and timestamp <= tr.times[-1]:
                raise ActionposeError(f"timestamp {timestamp} is not after the previous one ({tr.times[-1]}) "
                                      f"for track {tid}")
            checked.append((tid, kp13, sc13))
        self.last_time = timestamp if self.last_time is None else max(self.last_time, timestamp)
        seen.append((timestamp, {tid: (kp13, sc13) for tid, kp13, sc13 in checked}))
        present = {tid for tid, _, _ in checked}
        held = [(tid, None, None) for tid, tr in self._tracks.items() if tid not in present and tr.times
                and tr.times[-1] < timestamp and timestamp - tr.seen_at <= cfg.hold_lost_s + _TIME_EPS]
        for tid, kp13, sc13 in checked + held:
            tr = self._tracks.setdefault(tid, _Track())
            if kp13 is None:  # lost from frames that keep coming: the last pose held (FallConfig.hold_lost_s)
                kp, sc = tr.kps[-1], tr.scores[-1]
            else:
                tr.seen_at, kp, sc = timestamp, kp13[0], sc13[0]
            tr.times.append(timestamp)
            tr.kps.append(kp)
            tr.scores.append(sc)
            while tr.times and tr.times[0] < timestamp - span:
                tr.times.popleft(), tr.kps.popleft(), tr.scores.popleft()
            if timestamp - tr.times[0] >= cfg.min_window_s - _TIME_EPS and timestamp - tr.last_eval >= cfg.hop_s - _TIME_EPS:
                tr.last_eval = timestamp
                kps, scs, times = np.stack(tr.kps), np.stack(tr.scores), np.array(tr.times)
                # a window in which nothing was seen is not scored: no evidence, and the model reads its all-zero
                # body as a fall (zeros for "nobody there" raised an alarm). Judged on the frames the model
                # would see (prepare_window refuses the same windows); unseen frames inside a window with a
                # person in it still count, as gaps the preparation fills.
                shown = resample(times, cfg.prep.fps, frames=cfg.prep.frames)
                if has_body(kps[shown], scs[shown], cfg.prep.score_min):
                    due.append(_Due(tid, tr, timestamp, kps, scs, times))
                    if timestamp - tr.advised >= INPUT_CHECK_S - _TIME_EPS:
                        tr.advised = timestamp
                        said = input_advice(kps[None], scs[None], "body13", cfg.prep.score_min)[0] + timing_advice(times)
                        for advice in said:
                            warnings.warn("fall detector: " + advice, UserWarning, stacklevel=4)  # update's caller
                        self.advice.extend(a for a in said if a not in self.advice)
        for tid in [t for t, tr in self._tracks.items() if tr.times and tr.times[-1] < timestamp - span]:
            del self._tracks[tid]

    def _decide(self, due: list[_Due], seen: list[tuple[float, dict]]) -> list[FallEvent]:
        """Score the due windows in one ONNX call, then step through this call's frames in order: each
        fallen person's posture, the follow-ups due, then the alert logic of the windows due at that frame.
        The same events and times as :meth:`update` frame by frame. (Follow-ups used to be read from the
        track's 2.6 s history after the batch: a 256-frame request lost the rest, and a person who got up and
        walked away got a false still_down; found by probing the service.)"""
        cfg, out = self.config, []
        scored: dict[float, list[tuple[_Due, float]]] = {}
        for d, prob in self._score_due(due):
            scored.setdefault(d.time, []).append((d, prob))
        for t, persons in seen:  # per frame, as update() one frame at a time would
            for tid, (kp13, sc13) in persons.items():  # a fallen person's frame: still down, or up again?
                w = self._watches.get(tid)
                if w is not None:
                    hip_x, length = where_lying(kp13, sc13, cfg.prep.score_min)
                    w.add(t, float(posture(kp13, sc13, w.ref, cfg.prep.score_min)[0]), cfg.recover_s,
                          float(hip_x[0]), float(length[0]))
            out += self._follow_up(t)  # a recovery re-arms the alarm before this frame's windows are judged
            for d, prob in scored.pop(t, []):
                ev = self._step(d, prob)
                if ev is not None:  # followed from the next frame on
                    out.append(ev)
                    self._watch(d, ev)
        return out

    def _watch(self, due: _Due, fall: FallEvent) -> None:
        """Start following a fallen person, with the standing reference from the frames before the fall."""
        before = due.times < fall.start_time
        score_min = self.config.prep.score_min
        w = Watch(fall.start_time, fall.detected_time,  # a new fall replaces an old follow-up
                  upright_reference(due.kps[before], due.scores[before], score_min))
        hip_x, length = where_lying(due.kps, due.scores, score_min)
        placed = np.flatnonzero(np.isfinite(hip_x) & ~before)
        if len(placed):  # where the body was when the alert was raised, until a down frame says otherwise
            w.lay_x = float(hip_x[placed[-1]])
            w.lay_len = float(length[placed[-1]]) if np.isfinite(length[placed[-1]]) else None
        self._watches[due.tid] = w

    def _follow_up(self, now: float) -> list[FallEvent]:
        """Follow-up events due at stream time ``now``: recovered, or still down ``long_lie_s`` after the alert.
        A recovered person's alarm is armed again at once: a second fall right after getting up was not
        alerted while the re-arm rule (``rearm_s`` below ``release``) still held (found by probing)."""
        if not self._watches:
            return []
        cfg, out = self.config, []
        for tid, w in list(self._watches.items()):
            rec = w.recovery(cfg.recover_s)
            if rec is not None:
                out.append(FallEvent(tid, rec[0], now, round(rec[1], 4), kind="recovered"))
                del self._watches[tid]
                tr = self._tracks.get(tid)
                if tr is not None:
                    tr.armed, tr.below_since, tr.hits = True, None, 0
                continue
            if not w.still_down_sent and now - w.fall_time >= cfg.long_lie_s - _TIME_EPS:
                if w.getting_up(now, cfg.recover_s):
                    continue  # a recovery under way: confirmed, or not, within recover_s + 1 s
                w.still_down_sent = True
                out.append(FallEvent(tid, w.fall_time, now, round(w.down / w.seen, 4) if w.seen else 0.0,
                                     kind="still_down"))
            if now - w.fall_time > WATCH_MAX_S:
                del self._watches[tid]
        return out

    def _score_due(self, due: list[_Due]) -> list[tuple[_Due, float]]:
        """Score the due windows in one call: ``(window, probability)`` of the steady ones, in frame order."""
        if not due:
            return []
        # prepared even when an evaluation replays recorded scores: the jitter gate decides which windows
        # were scored, so the replayed calls line up with the recorded ones
        prepped = [prepare_window(d.kps, d.scores, "body13", times=d.times, cfg=self.config.prep) for d in due]
        kp, sc = np.stack([p[0] for p in prepped]), np.stack([p[1] for p in prepped])
        steady = jitter(kp, sc, self.config.prep.score_min) <= MAX_JITTER  # jumping joints: no evidence
        if not steady.all():
            due, kp, sc = [d for d, ok in zip(due, steady) if ok], kp[steady], sc[steady]
            if not due:
                return []
        self.windows_scored += len(due)
        return [(d, float(p)) for d, p in zip(due, self.score_prepared(kp, sc))]

    def _step(self, due: _Due, prob: float) -> FallEvent | None:
        cfg, tid, tr, now = self.config, due.tid, due.track, due.time
        self.peaks[tid] = max(self.peaks.pop(tid, 0.0), prob)  # re-inserted: the dict runs oldest to newest track
        if len(self.peaks) > MAX_PEAKS:  # a stream whose tracker hands out a new id every few seconds grew it forever
            del self.peaks[next(iter(self.peaks))]
        if not tr.armed:
            if prob < cfg.release:
                tr.below_since = now if tr.below_since is None else tr.below_since
                if now - tr.below_since >= cfg.rearm_s:
                    tr.armed, tr.below_since = True, None
            else:
                tr.below_since = None
            return None
        if prob >= cfg.threshold:
            if tr.hits == 0:
                tr.run_start = hip_drop_start(due.kps, due.times)  # the history as it was at this window
                tr.run_max = 0.0
            tr.hits += 1
            tr.run_max = max(tr.run_max, prob)
            if tr.hits >= cfg.min_hits:
                tr.armed, tr.hits, tr.below_since = False, 0, None
                return FallEvent(track_id=tid, start_time=float(tr.run_start), detected_time=float(now),
                                 confidence=float(tr.run_max))
        else:
            tr.hits = 0
        return None

    def run_sequence(self, keypoints: np.ndarray, times: np.ndarray, scores: np.ndarray | None = None,
                     layout: str | None = None, track_id: Any = 0) -> list[FallEvent]:
        """Stream a whole single-person sequence [T, V, 2] through :meth:`update` (fresh state)."""
        n = len(keypoints)
        if len(times) != n or (scores is not None and len(scores) != n):  # zip-like loops dropped the rest
            raise ActionposeError(f"run_sequence: {n} keypoint frames but {len(times)} times"
                                  + ("" if scores is None else f" and {len(scores)} score frames") + "; give one per frame")
        self.reset()
        events: list[FallEvent] = []
        for i, t in enumerate(times):
            frame = keypoints[i] if scores is None else np.concatenate([keypoints[i], scores[i][:, None]], -1)
            events += self.update({track_id: frame}, float(t), layout=layout)
        self.reset()
        return events


NORMALISED_WARNING = "fall detector: " + NORMALISED_ADVICE  # the UserWarnings' texts (the CLI says them itself)
UPSIDE_DOWN_WARNING = "fall detector: " + UPSIDE_DOWN_ADVICE


_PERSON_KEYS = {"track_id", "keypoints", "scores", "bbox", "box", "score"}  # what frontends put in a person dict


def _persons(frame: Any) -> Iterable[tuple[Any, np.ndarray, np.ndarray | None]]:
    """Normalise the accepted frame forms to (track_id, [V, 2], [V] | None)."""
    if frame is None:
        return
    if isinstance(frame, np.ndarray) or (isinstance(frame, (list, tuple)) and frame and
                                         not isinstance(frame[0], (dict,)) and not hasattr(frame[0], "keypoints")):
        items: Iterable[tuple[Any, Any]] = [(0, frame)]
    elif isinstance(frame, Mapping):
        items = frame.items()
    else:
        items = []
        frame = list(frame)
        for p in frame:
            get = p.get if isinstance(p, Mapping) else (lambda k, d=None, p=p: getattr(p, k, d))
            if isinstance(p, Mapping) and (set(p) - _PERSON_KEYS or "keypoints" not in p):
                # {"kpts": ...} gave "shape ()", {"id": 3, ...} silently became track 0
                raise ActionposeError(f"frame: a person is a dict with 'keypoints' [V, 2|3] and optional 'track_id' "
                                      f"and 'scores'; got keys {sorted(map(str, p))}")
            tid = get("track_id")
            if tid is None:
                if len(frame) > 1:  # two people under one id mixed their poses into one track
                    raise ActionposeError("frame: several persons but one has no track_id; give each person its "
                                          "own track_id (a tracker's id)")
                tid = 0
            try:
                hash(tid)
            except TypeError:
                raise ActionposeError(f"frame: track_id {tid!r} is not a number or string") from None
            kp, sc = np.asarray(get("keypoints"), dtype=np.float32), get("scores")
            if sc is not None:
                if kp.ndim == 2 and kp.shape[1] == 3:  # the third channel was dropped without a word (windows refuse it)
                    raise ActionposeError(f"frame keypoints for track {tid}: a third (score) channel and separate "
                                          "scores were both given")
                kp = np.concatenate([kp[..., :2], np.asarray(sc, np.float32)[:, None]], -1)
            items.append((tid, kp))
        ids = [t for t, _ in items]
        if len(set(ids)) != len(ids):
            dup = next(t for t in ids if ids.count(t) > 1)
            raise ActionposeError(f"frame: track_id {dup!r} appears twice in one frame (two people would be mixed "
                                  "into one track)")
    for tid, arr in items:
        try:
            a = np.asarray(arr, dtype=np.float32)
        except (TypeError, ValueError):
            raise ActionposeError(f"frame keypoints for track {tid}: not a numeric [V, 2|3] array") from None
        if a.ndim != 2 or a.shape[1] not in (2, 3):
            raise ActionposeError(f"frame keypoints for track {tid}: shape {a.shape}, expected [V, 2] or [V, 3]")
        # a depth z as the third channel was refused in windows but read as a score in streams, and a fall missed
        yield tid, a[:, :2], (score_channel(a[:, 2], f"frame: track {tid!r}: ") if a.shape[1] == 3 else None)
