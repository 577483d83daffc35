"""Repetition counting from keypoint sequences: offline ``count`` and live ``update``.

Pipeline (see ``reps_signals`` and ``reps_period``): keypoints -> body13 -> the exercise's candidate
joint-angle / torso-relative signals -> the most periodic candidate (autocorrelation) -> smoothing
and local normalisation scaled by the estimated cycle length -> hysteresis cycles = repetitions.
No pixel thresholds anywhere, so the count does not depend on the distance to the camera.

    counter = RepCounter("squat", layout="coco17", fps=30)
    result = counter.count(keypoints, scores)          # [T, V, C] (+ [T, V])
    for kp, sc, t in stream:                            # live
        for ev in counter.update(kp, t, sc): print(ev)
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter1d

from actionpose.errors import ActionposeError
from actionpose.inference.reps_period import (AMPLITUDE_FRACTION, despike, estimate_period, fill_gaps,
                                              hysteresis_cycles, normalise)
from actionpose.inference.reps_signals import (EXERCISES, Exercise, Signal, compute_signal, exercise_names,
                                               get_exercise, to_body13, torso_length)
from actionpose.skeleton import get_layout

MIN_VALID_FRACTION = 0.5   # a signal needs its joints confidently seen in at least half the frames
CONFIRM_S = 0.5   # live: a rep is reported once it has ended at least this long ago


@dataclass(frozen=True)
class Rep:
    start_s: float
    end_s: float
    depth: float = 1.0   # how far the rep went into the active half, relative to the local range


@dataclass(frozen=True)
class RepEvent:
    """Emitted by :meth:`RepCounter.update` once per completed repetition."""

    count: int          # running total including this rep
    start_s: float
    end_s: float
    exercise: str


@dataclass
class RepResult:
    exercise: str
    count: int
    reps: list[Rep] = field(default_factory=list)
    signal: str = ""             # which signal was counted (e.g. "knee_angle")
    period_s: float = float("nan")  # typical cycle length (nan if under two cycles were seen)
    periodicity: float = 0.0     # autocorrelation at that period, in [-1, 1]
    fps: float = 30.0
    live_count: int | None = None   # events emitted by live ``update`` (set by ``finish``); may differ

    def to_dict(self) -> dict:
        d = asdict(self)
        d["period_s"] = None if not np.isfinite(self.period_s) else round(self.period_s, 3)
        d["periodicity"] = round(float(self.periodicity), 4)  # was printed with 17 digits
        d["reps"] = [{k: round(v, 3) for k, v in asdict(r).items()} for r in self.reps]
        return d


@dataclass
class _Candidate:
    exercise: Exercise
    signal: Signal
    values: np.ndarray
    period: float
    score: float


def pick_person(kp: np.ndarray, sc: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """[M, T, V, C] -> the most confidently seen person's [T, V, C]."""
    if kp.ndim != 4:
        return kp, sc
    if kp.shape[0] == 0:
        raise ActionposeError("keypoints hold no person (M = 0)")
    if sc is None:
        return kp[0], None
    sc = np.asarray(sc)
    if sc.shape != kp.shape[:3]:
        raise ActionposeError(f"keypoint scores have shape {sc.shape}, expected {kp.shape[:3]} to match keypoints")
    best = int(np.argmax(np.nan_to_num(sc).reshape(len(sc), -1).mean(1)))
    return kp[best], sc[best]


def _positive(value: float, name: str) -> float:
    """A finite positive number, or a one-line error naming the setting."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if not (np.isfinite(v) and v > 0):
        raise ActionposeError(f"{name} must be a finite positive number, got {value!r}")
    return v


class RepCounter:
    """Counts repetitions of one exercise (or the most periodic known one when ``exercise`` is None).

    ``layout`` names the keypoints' body layout (any that maps to body13: coco17, blazepose33,
    penn13, ntu25, ...). ``min_score`` masks joints the pose model is unsure about. Live use keeps
    the last ``window_s`` seconds.
    """

    def __init__(self, exercise: str | None = None, layout: str = "body13", fps: float = 30.0,
                 min_score: float = 0.3, window_s: float = 90.0):
        # None is auto mode; "" was too (silently), where the CLI refuses an empty --exercise
        self.exercises = [get_exercise(exercise)] if exercise is not None else [EXERCISES[n] for n in exercise_names()]
        self.exercise = self.exercises[0].name if exercise is not None else None
        self.layout = layout
        # checked here, not at the first analysis: live, that error was swallowed as "not enough frames yet" and a
        # whole stream of frames in another layout (17 joints to a blazepose33 counter) gave no event and no error
        self._num_joints = get_layout(layout).num_joints
        self.fps = _positive(fps, "fps")  # NaN and inf passed "not fps or fps <= 0", then failed inside scipy
        # numpy scalars too (np.float32(0.3) was refused as "got 0.30000001192092896"), not True / False
        if isinstance(min_score, bool) or not (isinstance(min_score, (int, float, np.integer, np.floating))
                                               and 0 <= min_score <= 1):
            raise ActionposeError(f"min_score must be between 0 and 1, got {min_score}")
        self.min_score = float(min_score)
        self.window_s = _positive(window_s, "window_s")
        self.reset()

    # ---------------------------------------------------------------- offline
    def count(self, keypoints: np.ndarray, scores: np.ndarray | None = None, fps: float | None = None,
              _fed: np.ndarray | None = None) -> RepResult:
        """Count repetitions in a whole ``[T, V, C]`` (or ``[M, T, V, C]``) sequence."""
        fps = self.fps if fps is None else _positive(fps, "fps")
        kp, sc = pick_person(np.asarray(keypoints), scores)
        kp, sc = to_body13(kp, sc, self.layout)
        n = len(kp)
        shortest = min(ex.min_period_s for ex in self.exercises)
        if n < 8 or n < shortest * fps:
            raise ActionposeError(f"sequence too short to hold one repetition: {n} frames "
                                  f"({n / fps:.2f} s at {fps:g} fps); need at least {max(8, int(np.ceil(shortest * fps)))}")
        cands = self._candidates(kp, sc, fps, _fed)
        if self._lock is not None:   # live auto mode: stay with the signal the first rep was counted on
            cands = [c for c in cands if (c.exercise.name, c.signal.name) == self._lock] or cands
        best = max(cands, key=lambda c: (c.score, -cands.index(c)))
        return self._count_candidate(best, fps)

    def _candidates(self, kp: np.ndarray, sc: np.ndarray, fps: float, fed: np.ndarray | None = None) -> list[_Candidate]:
        torso = torso_length(kp, sc, self.min_score)
        cands, missing = [], {}
        seen: dict[tuple[Signal, float, float], _Candidate] = {}
        for ex in self.exercises:
            for sig in ex.signals:
                key = (sig, ex.min_period_s, ex.max_period_s)
                if key in seen:
                    c = seen[key]
                    cands.append(_Candidate(ex, sig, c.values, c.period, c.score))
                    continue
                raw, _ = compute_signal(sig, kp, sc, self.min_score, torso)
                # live: of the frames that were fed (slots of a time gap are filled in, not counted against it)
                valid = np.isfinite(raw if fed is None else raw[fed]).mean()
                if valid < MIN_VALID_FRACTION:
                    missing[sig.name] = (valid, sig)
                    continue
                x = despike(fill_gaps(raw))
                p = estimate_period(x, ex.min_period_s * fps, ex.max_period_s * fps)
                score = p.score if _range(x) >= sig.min_range else -1.0
                seen[key] = c = _Candidate(ex, sig, x, p.period, score)
                cands.append(c)
        if not cands:
            # the best-seen signals first, three at most: every signal of every exercise made a 2.7-KB error line
            ranked = sorted(missing.items(), key=lambda item: -item[1][0])
            detail = "; ".join(f"{name} seen in {v:.0%} of frames (joints {_joint_names(s)})"
                               for name, (v, s) in ranked[:3]) + (f"; {len(ranked) - 3} more signals, seen less"
                                                                  if len(ranked) > 3 else "")
            what = self.exercise or "any known exercise"
            raise ActionposeError(f"missing joints needed for {what}: {detail}; need {MIN_VALID_FRACTION:.0%} "
                                  f"of frames with score >= {self.min_score:g} (occluded or out of view?)")
        return cands

    def _count_candidate(self, c: _Candidate, fps: float) -> RepResult:
        n = len(c.values)
        lo_lag, hi_lag = c.exercise.min_period_s * fps, c.exercise.max_period_s * fps
        period = c.period if np.isfinite(c.period) else float(np.clip(n / 2, lo_lag, hi_lag))
        # smoothing scale from the shortest plausible rep too: the autocorrelation may lock on to a
        # multiple of the cycle when reps are irregular (pauses), and over-smoothing would erase reps
        x = gaussian_filter1d(c.values, max(1.0, min(period / 10, lo_lag / 3)))
        full = _range(x)
        result = RepResult(c.exercise.name, 0, [], c.signal.name,
                           c.period / fps if np.isfinite(c.period) else float("nan"), max(c.score, 0.0), fps)
        if full < c.signal.min_range:
            return result   # holding still: zero is a valid count
        floor = max(c.signal.min_range, AMPLITUDE_FRACTION * full)
        # first pass on the globally normalised signal: its cycle spacing is a second, often better
        # period estimate when the set has pauses (autocorrelation then favours a multiple)
        lo, hi = np.percentile(x, [2, 98])
        first, _ = hysteresis_cycles((x - (lo + hi) / 2) / max(hi - lo, floor))
        if len(first) >= 3:
            period = float(np.clip(np.median(np.diff([cy.end for cy in first])), lo_lag, period))
        z = normalise(x, period, floor)
        # live, once the window slides: its first frame can fall mid-rep, and taking the rest side from it
        # swapped rest and active (every rep counted again half a cycle later); keep the side seen from the start
        rest = self._rest.get(c.signal.name) if self._trimmed else None
        cycles, rest = hysteresis_cycles(z, rest)
        if not self._trimmed and self._t:
            self._rest[c.signal.name] = rest
        min_len = max(2, 0.15 * min(period, hi_lag), 0.3 * lo_lag)
        reps = [Rep(cy.start / fps, cy.end / fps, round(cy.depth, 3)) for cy in cycles
                if cy.end - cy.start >= min_len and _swing(x, cy.start, cy.end) >= 0.5 * c.signal.min_range]
        result.reps, result.count = reps, len(reps)
        return result

    # ---------------------------------------------------------------- live
    def reset(self) -> None:
        """Forget the live stream (start a new set)."""
        self._kp: list[np.ndarray] = []
        self._sc: list[np.ndarray] = []
        self._t: list[float] = []
        self._emitted: list[Rep] = []
        self._total = 0
        self._since = 0
        self._lock: tuple[str, str] | None = None
        self._rest: dict[str, float] = {}   # live: rest side per signal, seen while the window held the start
        self._trimmed = False               # live: frames older than window_s were dropped

    def update(self, frame_kp: np.ndarray, t: float, frame_scores: np.ndarray | None = None) -> list[RepEvent]:
        """Add one frame (``[V, C]`` keypoints at time ``t`` seconds); return reps completed since last call.

        A repetition is reported once, when the signal has returned to its rest level. The counter
        re-analyses the recent window every ~0.1 s, so the cycle length adapts as the set goes on.
        """
        try:
            kp = np.asarray(frame_kp, dtype=np.float64)
        except (TypeError, ValueError) as e:  # was numpy's "could not convert string to float" traceback
            raise ActionposeError(f"frame keypoints must be numbers: {e}") from None
        if kp.ndim != 2:
            raise ActionposeError(f"frame keypoints must be [V, C], got shape {kp.shape}")
        # checked before the frame is kept: one frame of 17 joints among 33 was stored, and every later update and
        # finish failed inside numpy for the next 90 s
        if self._kp and kp.shape != self._kp[-1].shape:
            raise ActionposeError(f"frame keypoints: shape {kp.shape}, but this stream's frames are {self._kp[-1].shape}")
        if kp.shape[0] != self._num_joints or kp.shape[1] not in (2, 3):
            raise ActionposeError(f"frame keypoints: shape {kp.shape}, expected ({self._num_joints}, 2|3) for layout "
                                  f"{self.layout} (joints, x y [z])")
        sc = np.ones(kp.shape[0]) if frame_scores is None else np.asarray(frame_scores, dtype=np.float64)
        if sc.shape != (kp.shape[0],):
            raise ActionposeError(f"frame scores: shape {sc.shape}, expected ({kp.shape[0]},), one per joint")
        if not isinstance(t, (int, float, np.number)) or not np.isfinite(t):
            raise ActionposeError(f"frame time must be a finite number of seconds, got {t!r}")
        if self._t and t <= self._t[-1]:
            raise ActionposeError(f"frame time {t} is not after the previous frame ({self._t[-1]})")
        self._kp.append(kp)
        self._sc.append(sc)
        self._t.append(float(t))
        while self._t[-1] - self._t[0] > self.window_s:
            self._kp.pop(0), self._sc.pop(0), self._t.pop(0)
            self._trimmed = True
        self._since += 1
        if self._since < max(1, round(self._stream_fps() / 10)):
            return []
        self._since = 0
        return self._emit(self._analyse(final=False))

    def finish(self) -> tuple[list[RepEvent], RepResult]:
        """End of stream: emit reps that completed on the last frames; return them and the whole-window result.

        The result is the offline analysis of the buffered window (the better count: it sees every
        rep's context); ``result.live_count`` is how many events ``update`` emitted. Live events
        cannot be retracted, so on noisy input they can disagree.
        """
        res = self._analyse(final=True) if self._t else None  # no frames: "need at least one array to stack"
        if res is None:
            raise ActionposeError(f"stream too short to hold one repetition: {len(self._t)} frames")
        events = self._emit(res)
        res.live_count = self._total
        return events, res

    def buffered(self) -> tuple[np.ndarray, np.ndarray, float, float]:
        """What the whole-stream analysis sees: ``(keypoints [T, V, C], scores [T, V], time of the first
        frame, frame rate)``, e.g. for judging the form of the reps ``finish`` reported (their times count
        from the stream's start, so subtract the first frame's time to index these arrays)."""
        if not self._t:
            raise ActionposeError("no frames were added")
        kp, sc, _, fps = self._on_grid()
        return kp, sc, self._t[0], fps

    def _stream_fps(self) -> float:
        if len(self._t) < 2:
            return self.fps
        return (len(self._t) - 1) / max(self._t[-1] - self._t[0], 1e-6)

    def _on_grid(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """The buffered frames on a uniform time grid at the stream's typical frame interval: ``(keypoints,
        scores, which slots hold a fed frame, fps)``. Slots no frame was fed for (dropped frames, the person out of
        view for a while) have score 0 and are filled in like unseen joints. The frames were taken as evenly spaced:
        after a 20 s gap every later rep was reported 10 s early and, live, 5 reps of 19 were emitted twice."""
        kp, sc, t = np.stack(self._kp), np.stack(self._sc), np.asarray(self._t)
        if len(t) < 2:
            return kp, sc, np.ones(len(t), bool), self.fps
        # at most 4 slots per frame: a burst of near-equal timestamps must not make a grid of millions of slots
        dt = max(float(np.median(np.diff(t))), (t[-1] - t[0]) / (4 * len(t)))
        idx = np.round((t - t[0]) / dt).astype(int)
        gk, gs = np.zeros((idx[-1] + 1, *kp.shape[1:])), np.zeros((idx[-1] + 1, sc.shape[1]))
        fed = np.zeros(idx[-1] + 1, bool)
        gk[idx], gs[idx], fed[idx] = kp, sc, True
        return gk, gs, fed, 1.0 / dt

    def _analyse(self, final: bool) -> RepResult | None:
        kp, sc, fed, fps = self._on_grid()
        try:
            res = self.count(kp, sc, fps, _fed=fed)
        except ActionposeError:
            if final:
                raise
            return None   # not enough (visible) frames yet
        t0 = self._t[0]
        res.reps = [Rep(r.start_s + t0, r.end_s + t0, r.depth) for r in res.reps]
        if final and self._trimmed:
            # the window holds only the last window_s seconds: the whole stream's count is the reps emitted
            # before it plus the window's own analysis (it was the window's alone: 54 of 79 squats in 132 s)
            # (emitted reps up to the window's first rep: one that starts on the window's first frame has no
            # rest before it there, so the window alone misses it)
            first = res.reps[0].start_s if res.reps else float("inf")
            res.reps = [r for r in self._emitted if r.end_s <= first] + res.reps
            res.count = len(res.reps)
        if not final:
            # confirm a rep only after it has stayed a rep for a while: more context (the set's real
            # range of motion) turns early jitter back into non-reps, and emitted events are final
            res.reps = [r for r in res.reps if r.end_s < self._t[-1] - CONFIRM_S]
        return res

    def _emit(self, res: RepResult | None) -> list[RepEvent]:
        if res is None:
            return []
        out = []
        for r in res.reps:
            # reps never overlap: one that starts before the last emitted rep ended (allowing a
            # quarter of that rep for boundaries moving between analyses) is the same rep again
            if self._emitted:
                prev = self._emitted[-1]
                if r.end_s <= prev.end_s or r.start_s < prev.end_s - 0.25 * (prev.end_s - prev.start_s):
                    continue
            self._emitted.append(r)
            self._total += 1
            out.append(RepEvent(self._total, round(r.start_s, 3), round(r.end_s, 3), res.exercise))
        if out and self._lock is None and self.exercise is None:
            self._lock = (res.exercise, res.signal)
        return out


def _swing(x: np.ndarray, start: int, end: int) -> float:
    """Peak-to-peak movement around one rep (its span plus half of it on each side)."""
    pad = (end - start) // 2
    seg = x[max(0, start - pad): end + pad + 1]
    return float(seg.max() - seg.min())


def _joint_names(sig: Signal) -> str:
    return ", ".join(j.replace("{s}", "left|right") for j in sig.joints)


def _range(x: np.ndarray) -> float:
    """Robust peak-to-peak range (2nd to 98th percentile)."""
    lo, hi = np.percentile(x, [2, 98])
    return float(hi - lo)


def count_reps(keypoints: np.ndarray, scores: np.ndarray | None = None, *, exercise: str | None = None,
               layout: str = "body13", fps: float = 30.0, min_score: float = 0.3) -> RepResult:
    """One-call offline counting (see :class:`RepCounter`)."""
    return RepCounter(exercise, layout=layout, fps=fps, min_score=min_score).count(keypoints, scores)


__all__ = ["Rep", "RepCounter", "RepEvent", "RepResult", "count_reps", "exercise_names", "get_exercise"]
