"""Window scores -> smoothed scores -> hysteresis -> action segments (plus the metrics that judge them).

One implementation serves files and live streams: :class:`OnlineSegmenter` takes one window's class
probabilities at a time and emits a :class:`Segment` as soon as it is closed; the batch function
:func:`segment_windows` just feeds every window and flushes. Memory is constant per person (a few
windows of look-ahead for the centred smoothing plus one pending segment).

Decisions, and why:

* **smoothing**: a centred moving average over ``smooth`` windows removes one-window flickers; it
  costs ``smooth // 2`` windows of latency in live mode.
* **hysteresis**: a segment opens when a class reaches ``threshold`` and stays open while that class
  stays above ``threshold * exit_ratio``, so a score wobbling around the threshold gives one segment.
* **background**: below ``threshold`` nothing is tagged (no forced class).
* **merging**: segments shorter than ``min_duration_s`` are dropped, and two segments of the same label
  separated by at most ``max_gap_s`` become one, so one action gives one segment.
"""
from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Iterable, Sequence

import numpy as np

from actionpose.errors import ActionposeError

BACKGROUND = "background"


@dataclass
class SegmentConfig:
    """Everything that turns window scores into segments; defaults are the measured ones (docs/tagging.md)."""

    window_s: float = 1.5
    stride_s: float = 0.5
    threshold: float = 0.5
    exit_ratio: float = 0.6
    smooth: int = 5
    min_duration_s: float = 1.0
    max_gap_s: float = 1.0

    def validate(self) -> None:
        if not 0 < self.window_s <= 3600:
            raise ActionposeError(f"--window must be > 0 and at most 3600 seconds, got {self.window_s}")
        if not 0 < self.stride_s <= 3600:
            raise ActionposeError(f"--stride must be > 0 and at most 3600 seconds, got {self.stride_s}")
        if self.stride_s > self.window_s:
            raise ActionposeError(f"--stride ({self.stride_s} s) must not exceed --window ({self.window_s} s)")
        if not 0.0 < self.threshold <= 1.0:
            raise ActionposeError(f"--threshold must be in (0, 1], got {self.threshold}")
        if not 0.0 < self.exit_ratio <= 1.0:
            raise ActionposeError(f"exit_ratio must be in (0, 1], got {self.exit_ratio}")
        if not 0 <= self.min_duration_s < float("inf"):
            raise ActionposeError(f"--min-duration must be a finite number of seconds >= 0, got {self.min_duration_s}")
        if self.smooth < 1 or self.smooth % 2 == 0:
            raise ActionposeError(f"smooth must be an odd number of windows >= 1, got {self.smooth}")


@dataclass
class Segment:
    """One action of one person: ``[start_s, end_s)`` with the mean smoothed probability of ``label``
    (``score``) and its highest value (``peak``). Why both: hysteresis keeps a segment open while the
    probability stays above ``threshold * exit_ratio``, so the mean can end below the opening threshold;
    the peak shows the segment did reach it."""

    label: str
    start_s: float
    end_s: float
    score: float
    _n: int = field(default=1, repr=False, compare=False)
    reps: int | None = None  # repetitions inside the segment, for exercise labels (RepCounter)
    peak: float | None = None  # None: the score (a one-window segment, or a fall's confidence)

    def __post_init__(self) -> None:
        if self.peak is None:
            self.peak = self.score

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("_n")
        if d["reps"] is None:
            d.pop("reps")
        d["start_s"], d["end_s"], d["score"] = round(self.start_s, 3), round(self.end_s, 3), round(self.score, 4)
        d["peak"] = round(self.peak, 4)
        return d


class OnlineSegmenter:
    """Feed window probabilities in time order; closed segments come back from :meth:`push` and :meth:`flush`."""

    def __init__(self, classes: Sequence[str], config: SegmentConfig | None = None):
        self.classes = list(classes)
        self.cfg = config or SegmentConfig()
        self.cfg.validate()
        self._raw: deque[tuple[float, float, np.ndarray]] = deque()  # windows waiting for smoothing context
        self._next = 0  # index in _raw of the next window to smooth
        self._cur: Segment | None = None  # open segment (label may be BACKGROUND)
        self._cur_k = -1
        self._pending: Segment | None = None  # closed, valid, may still merge with a same-label successor
        self._now = 0.0

    # -- public --------------------------------------------------------------------------------------
    def push(self, t0: float, t1: float, probs: np.ndarray) -> list[Segment]:
        """Add the window covering ``[t0, t1)`` (its share of the timeline) with class ``probs``."""
        p = np.asarray(probs, dtype=np.float64).ravel()
        if p.shape[0] != len(self.classes):
            raise ActionposeError(f"model gave {p.shape[0]} scores but has {len(self.classes)} classes")
        self._raw.append((float(t0), float(t1), p))
        out: list[Segment] = []
        # window i is smoothed once `half` later windows are known (or at flush)
        while len(self._raw) - self._next > self.cfg.smooth // 2:
            out += self._step(self._smoothed())
        return out

    def flush(self, end_s: float | None = None) -> list[Segment]:
        """Close everything (end of video, person lost, Ctrl-C). ``end_s`` extends the last segment."""
        out: list[Segment] = []
        while self._next < len(self._raw):
            out += self._step(self._smoothed())
        if self._cur is not None and end_s is not None and self._cur.label != BACKGROUND:
            self._cur.end_s = max(self._cur.end_s, float(end_s))
        out += self._close_current()
        if self._pending is not None:
            out.append(self._pending)
            self._pending = None
        self._raw.clear()
        self._next = 0
        return out

    # -- internals -----------------------------------------------------------------------------------
    def _smoothed(self) -> tuple[float, float, np.ndarray]:
        """Centred moving average for window ``_next``; drops windows no longer needed (constant memory)."""
        half, i = self.cfg.smooth // 2, self._next
        lo, hi = max(0, i - half), min(len(self._raw), i + half + 1)
        p = np.mean([self._raw[j][2] for j in range(lo, hi)], axis=0)
        t0, t1, _ = self._raw[i]
        self._next += 1
        while self._next > half:  # the next window needs only `half` windows of left context
            self._raw.popleft()
            self._next -= 1
        return t0, t1, p

    def _step(self, window: tuple[float, float, np.ndarray]) -> list[Segment]:
        t0, t1, p = window
        self._now = t1
        cfg = self.cfg
        k = self._cur_k
        if k >= 0 and p[k] >= cfg.threshold * cfg.exit_ratio:
            new_k = k  # hysteresis: stay while above the exit level
        else:
            best = int(np.argmax(p))
            new_k = best if p[best] >= cfg.threshold else -1
        out: list[Segment] = []
        if self._cur is not None and new_k == k:
            seg = self._cur
            seg.end_s = t1
            if k >= 0:
                seg.score += (p[k] - seg.score) / (seg._n + 1)
                seg.peak = max(seg.peak, float(p[k]))
            seg._n += 1
        else:
            out += self._close_current()
            label = self.classes[new_k] if new_k >= 0 else BACKGROUND
            self._cur = Segment(label, t0, t1, float(p[new_k]) if new_k >= 0 else 0.0)
            self._cur_k = new_k
        out += self._release_pending()
        return out

    def _close_current(self) -> list[Segment]:
        seg, self._cur, self._cur_k = self._cur, None, -1
        if seg is None or seg.label == BACKGROUND or seg.duration_s < self.cfg.min_duration_s - 1e-9:
            return []
        pend = self._pending
        if pend is not None and pend.label == seg.label and seg.start_s - pend.end_s <= self.cfg.max_gap_s + 1e-9:
            n = pend._n + seg._n
            pend.score = (pend.score * pend._n + seg.score * seg._n) / n
            pend.peak = max(pend.peak, seg.peak)
            pend._n, pend.end_s = n, seg.end_s
            return []
        self._pending = seg
        return [pend] if pend is not None else []

    def _release_pending(self) -> list[Segment]:
        """Emit the pending segment once nothing can merge into it any more."""
        pend = self._pending
        if pend is None or self._now - pend.end_s <= self.cfg.max_gap_s:
            return []
        cur = self._cur
        if cur is not None and cur.label == pend.label and cur.start_s - pend.end_s <= self.cfg.max_gap_s:
            return []  # the open segment may still merge into it
        self._pending = None
        return [pend]


def window_cells(starts_s: Sequence[float], ends_s: Sequence[float]) -> list[tuple[float, float]]:
    """Split the timeline between overlapping windows: each window owns the span around its centre.

    Boundaries are midway between consecutive window centres; the first window owns back to its start
    and the last up to its end, so the cells tile ``[starts[0], ends[-1])`` without gaps or overlap.
    """
    centres = [(a + b) / 2 for a, b in zip(starts_s, ends_s)]
    cells = []
    for i, c in enumerate(centres):
        lo = starts_s[0] if i == 0 else (centres[i - 1] + c) / 2
        hi = ends_s[-1] if i == len(centres) - 1 else (c + centres[i + 1]) / 2
        cells.append((lo, hi))
    return cells


def segment_windows(starts_s: Sequence[float], ends_s: Sequence[float], probs: np.ndarray,
                    classes: Sequence[str], config: SegmentConfig | None = None) -> list[Segment]:
    """Batch form: windows ``[starts_s[i], ends_s[i])`` with ``probs[i]`` -> segments in time order."""
    seg = OnlineSegmenter(classes, config)
    out: list[Segment] = []
    for (lo, hi), p in zip(window_cells(starts_s, ends_s), np.asarray(probs)):
        out += seg.push(lo, hi, p)
    out += seg.flush()
    return out


# -- metrics ------------------------------------------------------------------------------------------
def segment_iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = max(a[1], b[1]) - min(a[0], b[0])
    return inter / union if union > 0 else 0.0


@dataclass
class SegmentMatch:
    """Segment-level detection scores at one IoU threshold (ActivityNet-style greedy matching)."""

    tp: int
    n_pred: int
    n_true: int
    boundary_errors_s: list[float]

    @property
    def precision(self) -> float:
        return self.tp / self.n_pred if self.n_pred else 0.0

    @property
    def recall(self) -> float:
        return self.tp / self.n_true if self.n_true else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def mean_boundary_error_s(self) -> float:
        return float(np.mean(self.boundary_errors_s)) if self.boundary_errors_s else float("nan")

    def __add__(self, other: "SegmentMatch") -> "SegmentMatch":
        return SegmentMatch(self.tp + other.tp, self.n_pred + other.n_pred, self.n_true + other.n_true,
                            self.boundary_errors_s + other.boundary_errors_s)


def match_segments(pred: Iterable[Segment], true: Iterable[Segment], iou: float = 0.5) -> SegmentMatch:
    """Greedy one-to-one matching, highest-score predictions first; a match needs the same label and IoU >= iou.

    Boundary error = mean of |start error| and |end error| over matched pairs, in seconds.
    """
    pred = sorted(pred, key=lambda s: -s.score)
    true = list(true)
    used = [False] * len(true)
    tp, errs = 0, []
    for p in pred:
        best, best_iou = -1, iou
        for j, t in enumerate(true):
            if used[j] or t.label != p.label:
                continue
            v = segment_iou((p.start_s, p.end_s), (t.start_s, t.end_s))
            if v >= best_iou:
                best, best_iou = j, v
        if best >= 0:
            used[best] = True
            tp += 1
            t = true[best]
            errs += [abs(p.start_s - t.start_s), abs(p.end_s - t.end_s)]
    return SegmentMatch(tp, len(pred), len(true), errs)


def labelled_fraction(segments: Iterable[Segment], label: str, start_s: float, end_s: float) -> float:
    """Fraction of ``[start_s, end_s)`` covered by segments with ``label`` (the "right label" time share)."""
    total = end_s - start_s
    if total <= 0:
        return 0.0
    cover = sum(max(0.0, min(s.end_s, end_s) - max(s.start_s, start_s)) for s in segments if s.label == label)
    return cover / total
