"""Per-person action tagging: tracked keypoints -> sliding windows -> ONNX scores -> segments.

:class:`StreamTagger` is the one engine for files and live streams. It keeps, per track, only the last
window of frames (a bounded deque) and an :class:`~actionpose.inference.segments.OnlineSegmenter`, so
memory stays flat however long the input is. Windows that become ready in the same frame, across all
persons, go to the predictor in one batched call.

:func:`tag_video` is the convenience entry point (CLI, ``actionpose demo``): source in, :class:`TagResult`
out, optional JSON/CSV/overlay/timeline written atomically.
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence

import numpy as np

from actionpose.data.atomic import write_text_atomic
from actionpose.errors import ActionposeError, require_file, where
from actionpose.inference.segments import BACKGROUND, OnlineSegmenter, Segment, SegmentConfig
from actionpose.skeleton import can_map, get_layout, joint_map
# the registry's own list of what a mapping lacks: it honours aliases (coco17's nose is body13's head), which
# a plain comparison of joint names here did not, so a refusal listed 'head' as missing from coco17
from actionpose.skeleton.registry import missing_joints, name_list

SCHEMA_VERSION = 1
MIN_VISIBLE_FRACTION = 0.5  # a window with the person in fewer frames than this is scored as background
MIN_TRACK_S = 0.5  # tracks shorter than this are not scored at all (too little motion to classify)
MIN_JOINT_FRACTION = 0.5  # a window showing on average fewer of the model's joints is background: a pair of
# feet or a half-hidden passer-by was confidently tagged (situp on feet only, 0.9+ on 5-frame glimpses)
JOINT_SEEN_SCORE = 0.2
INTERRUPTED = "interrupted (Ctrl-C or SIGTERM): the result covers the frames before it"  # the warning of a stopped run


class Predictor(Protocol):
    layout: str
    classes: list[str]
    clip_len: int

    def predict(self, keypoint: np.ndarray, keypoint_score: np.ndarray | None) -> np.ndarray: ...


class ModelInputMismatch(ActionposeError):
    """The input cannot feed this model at all (not a source failing mid-way): never a partial result."""


@dataclass
class PersonPose:
    """One tracked person in one frame, in the frontend's layout (pixels)."""

    track_id: int
    keypoints: np.ndarray  # [V, 2] image pixels from a frontend, or [V, 3] from a 3D skeleton pickle
    scores: np.ndarray  # [V]
    box: np.ndarray | None = None


@dataclass
class TagResult:
    """What ``actionpose tag`` returns; ``to_dict`` is the documented JSON schema (docs/tagging.md)."""

    video: str
    fps: float
    model: str
    classes: list[str]
    duration_s: float = 0.0
    frames: int = 0
    persons: dict[int, list[Segment]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    config: SegmentConfig = field(default_factory=SegmentConfig)
    complete: bool = True  # False when interrupted or the source failed mid-way (partial result)
    interrupted: bool = False  # stopped by Ctrl-C (not written to the outputs; the warnings say it)
    best: dict[int, tuple[str, float]] = field(default_factory=dict)  # per person, the highest window score

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA_VERSION,
            "video": self.video,
            "fps": round(float(self.fps), 4),
            "model": self.model,
            "duration_s": round(self.duration_s, 3),
            "frames": self.frames,
            "complete": self.complete,
            "window_s": self.config.window_s,
            "stride_s": self.config.stride_s,
            "threshold": self.config.threshold,
            "persons": [{"track_id": int(tid), "segments": [s.to_dict() for s in segs]}
                        for tid, segs in sorted(self.persons.items())],
            "warnings": list(self.warnings),
        }

    def rows(self) -> list[dict[str, Any]]:
        """Flat rows (one per segment) for the CSV: the JSON's per-person segments with the video name."""
        return [{"video": self.video, "track_id": int(tid), **s.to_dict()}
                for tid, segs in sorted(self.persons.items()) for s in segs]

    def nobody(self) -> str:
        """Why no person is listed: nobody seen, or every track too short to tag (said as such: "no person
        detected" above seven warnings about persons seen for 0.2 s read as a contradiction)."""
        short = sum("visible for only" in w for w in self.warnings)
        return f"no person tagged: {short} track(s), each too short" if short else "no person detected"

    def summary(self, skip: tuple[str, ...] = ()) -> str:
        """A short human-readable table of who did what, when (warnings in ``skip`` are left out)."""
        lines = [f"{self.video}: {self.duration_s:.1f} s, {self.frames} frames @ {self.fps:.1f} fps, "
                 f"model {self.model}, {len(self.persons)} person(s)"
                 + ("" if self.complete else " [partial]")]
        for tid, segs in sorted(self.persons.items()):
            if not segs:  # the demo's two people printed just this: say how close the nearest call came
                near = self.best.get(tid)
                lines.append(f"  person {tid}: no action above threshold {self.config.threshold:g}"
                             + (f" for {self.config.min_duration_s:g} s or more" if self.config.min_duration_s else "")
                             + (f" (best single window: {near[0]} {near[1]:.2f})" if near else
                                " (no window showed enough of the person to be scored)"))
            for s in segs:
                lines.append(f"  person {tid}: {s.label:<16s} {s.start_s:7.2f} - {s.end_s:7.2f} s  "
                             f"score {s.score:.2f}" + ("" if s.reps is None else f"  reps {s.reps}"))
        if not self.persons:
            lines.append(f"  {self.nobody()}")
        lines += [f"  warning: {w}" for w in sorted(self.warnings, key=_by_person) if w not in skip]
        return "\n".join(lines)


_PERSON = re.compile(r"\bperson (\d+)\b")


def _by_person(warning: str) -> tuple[int, int]:
    """Warnings about persons in person order (they were in the order tracks closed: 8, 2, 10, 13, ...), whatever
    the wording: "person 6: 1 window(s) ..." and "... than person 5's track" were left in closing order."""
    m = _PERSON.search(warning)
    return (0, int(m.group(1))) if m else (1, 0)


CSV_FIELDS = ["video", "track_id", "label", "start_s", "end_s", "score", "peak", "reps"]
REP_HISTORY_S = 600.0  # longest exercise segment whose repetitions are counted (10 minutes)


def write_json(result: TagResult, path: str | Path) -> None:
    write_text_atomic(path, json.dumps(result.to_dict(), indent=2) + "\n")


def write_csv(result: TagResult, path: str | Path) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    w.writerows(result.rows())
    write_text_atomic(path, buf.getvalue())


def validate_result_dict(d: dict[str, Any]) -> None:
    """Check a tag JSON against the documented schema; raises ActionposeError naming the field."""
    def need(obj: dict, key: str, types: type | tuple, ctx: str) -> Any:
        if key not in obj:
            raise ActionposeError(f"{ctx}: missing field {key!r}")
        if not isinstance(obj[key], types) or isinstance(obj[key], bool) and types is not bool:
            raise ActionposeError(f"{ctx}.{key}: expected {types}, got {type(obj[key]).__name__}")
        return obj[key]

    need(d, "video", str, "result")
    if need(d, "fps", (int, float), "result") <= 0:
        raise ActionposeError("result.fps: must be > 0")
    need(d, "model", str, "result")
    for i, p in enumerate(need(d, "persons", list, "result")):
        ctx = f"persons[{i}]"
        need(p, "track_id", int, ctx)
        for j, s in enumerate(need(p, "segments", list, ctx)):
            sctx = f"{ctx}.segments[{j}]"
            need(s, "label", str, sctx)
            a, b = need(s, "start_s", (int, float), sctx), need(s, "end_s", (int, float), sctx)
            sc = need(s, "score", (int, float), sctx)
            if not 0 <= a < b:
                raise ActionposeError(f"{sctx}: need 0 <= start_s < end_s, got {a}, {b}")
            if not 0.0 <= sc <= 1.0:
                raise ActionposeError(f"{sctx}.score: {sc} not in [0, 1]")
            pk = need(s, "peak", (int, float), sctx)
            if not sc - 1e-4 <= pk <= 1.0:
                raise ActionposeError(f"{sctx}.peak: {pk} not in [score, 1]")
            if "reps" in s and (not isinstance(s["reps"], int) or isinstance(s["reps"], bool) or s["reps"] < 0):
                raise ActionposeError(f"{sctx}.reps: expected a count >= 0, got {s['reps']!r}")


# --------------------------------------------------------------------------------------------------
@dataclass
class _Track:
    first: int
    last: int
    frames: deque  # (frame_index, keypoints [V,2], scores [V]) in the model layout
    segmenter: OnlineSegmenter
    next_start: int
    windows: int = 0
    last_window: tuple[int, int] | None = None
    last_label: tuple[str, float] = (BACKGROUND, 0.0)
    history: deque | None = None  # (frame_index, keypoints, scores) for counting reps in closed segments
    partial_windows: int = 0  # windows scored as background because too little of the body was seen


class StreamTagger:
    """Frames in (any order-preserving source), closed segments out; constant memory per person.

    Window and stride are converted to frames with ``fps``. A track unseen for ``lost_after_s`` is
    finished (tail window scored, segmenter flushed) and forgotten.
    """

    def __init__(self, predictor: Predictor, source_layout: str, fps: float, config: SegmentConfig | None = None,
                 lost_after_s: float | None = None):
        self.cfg = config or SegmentConfig()
        self.cfg.validate()
        if not fps or not math.isfinite(fps) or fps <= 0:
            raise ActionposeError(f"frame rate must be > 0, got {fps}")
        self.predictor = predictor
        self.fps = float(fps)
        self.classes = list(predictor.classes)
        self.model_layout = get_layout(predictor.layout).name
        src = get_layout(source_layout).name
        if not can_map(src, self.model_layout):
            raise ActionposeError(f"model layout {self.model_layout!r} cannot be mapped from the pose layout "
                                  f"{src!r}: no joint for {name_list(missing_joints(src, self.model_layout))}")
        self.source_layout = src
        # 2D models tag video; 3D models (e.g. the Kinect-trained gestures model) tag 3D skeleton pickles.
        self.coords = int(getattr(predictor, "coords", 2))
        self._map = joint_map(src, self.model_layout)
        self.win_f = max(2, int(round(self.cfg.window_s * self.fps)))
        self.stride_f = max(1, int(round(self.cfg.stride_s * self.fps)))
        self.lost_f = int(round((lost_after_s if lost_after_s is not None else max(2.0, self.cfg.window_s)) * self.fps))
        self.tracks: dict[int, _Track] = {}
        self.warnings: list[str] = []
        self.last_frame = -1
        self.seen_tracks: set[int] = set()
        self.scored_tracks: set[int] = set()  # tracks long enough to get at least one window
        self.best: dict[int, tuple[str, float]] = {}  # per track, its highest window score and class
        # Exercise segments get a repetition count; the per-track history that needs is bounded
        # (REP_HISTORY_S), so memory stays flat however long the input runs.
        from actionpose.inference.reps_signals import find_exercise

        self.count_reps = self.model_layout == "body13" and any(find_exercise(c) for c in self.classes)
        self.history_f = int(REP_HISTORY_S * self.fps)

    # -- public --------------------------------------------------------------------------------------
    def push(self, index: int, persons: Iterable[PersonPose]) -> list[tuple[int, Segment]]:
        """Add one frame's persons; returns segments closed by it (for live printing)."""
        self.last_frame = index
        for p in persons:
            kp = np.asarray(p.keypoints, dtype=np.float32)
            if kp.shape[-1] != self.coords:
                raise ModelInputMismatch(f"model expects {self.coords}D keypoints but the input has {kp.shape[-1]}D "
                                      f"({'x, y' if kp.shape[-1] == 2 else 'x, y, z'}); use a model trained on "
                                      f"{kp.shape[-1]}D keypoints")
            sc = np.asarray(p.scores, dtype=np.float32) if p.scores is not None else np.ones(len(kp), np.float32)
            kp, sc = kp[self._map], sc[self._map]
            tid = int(p.track_id)
            tr = self.tracks.get(tid)
            if tr is None:
                tr = _Track(index, index, deque(maxlen=self.win_f), OnlineSegmenter(self.classes, self.cfg),
                            next_start=index, history=deque(maxlen=self.history_f) if self.count_reps else None)
                self.tracks[tid] = tr
                self.seen_tracks.add(tid)
            tr.last = index
            tr.frames.append((index, kp, sc))
            if tr.history is not None:
                tr.history.append((index, kp, sc))
        jobs = []
        for tid, tr in self.tracks.items():
            while tr.next_start + self.win_f - 1 <= index:
                jobs.append((tid, tr.next_start, tr.next_start + self.win_f))
                tr.next_start += self.stride_f
        out = self._run(jobs)
        for tid in [t for t, tr in self.tracks.items() if index - tr.last > self.lost_f]:
            out += self._finish_track(tid)
        return out

    def finish(self) -> list[tuple[int, Segment]]:
        """End of input (or Ctrl-C): score tail windows, close every open segment."""
        out: list[tuple[int, Segment]] = []
        for tid in list(self.tracks):
            out += self._finish_track(tid)
        return out

    def current_label(self, track_id: int) -> tuple[str, float]:
        tr = self.tracks.get(track_id)
        return tr.last_label if tr else (BACKGROUND, 0.0)

    # -- internals -----------------------------------------------------------------------------------
    def _finish_track(self, tid: int) -> list[tuple[int, Segment]]:
        tr = self.tracks[tid]
        jobs = []
        span = tr.last - tr.first + 1
        if tr.windows == 0:
            if span < max(2, MIN_TRACK_S * self.fps):
                self.warnings.append(f"person {tid} visible for only {span / self.fps:.2f} s "
                                     f"(< {MIN_TRACK_S} s); not tagged")
            else:
                if span < self.win_f:
                    self.warnings.append(f"window {self.cfg.window_s:g} s is longer than person {tid}'s track "
                                         f"({span / self.fps:.2f} s); scored it as one shorter window")
                jobs.append((tid, max(tr.first, tr.last + 1 - self.win_f), tr.last + 1))
        elif tr.last_window is not None and tr.last + 1 - tr.last_window[1] > self.stride_f / 2:
            # tail after the last full window: one more window aligned to the track's end
            jobs.append((tid, tr.last + 1 - self.win_f, tr.last + 1))
        out = self._run(jobs)
        if tr.partial_windows:
            self.warnings.append(f"person {tid}: {tr.partial_windows} window(s) showed under "
                                 f"{MIN_JOINT_FRACTION:.0%} of the body's joints; scored as background")
        end_s = (tr.last + 1) / self.fps
        out += [(tid, c) for c in (self._clamp(tr, s) for s in tr.segmenter.flush(end_s)) if c is not None]
        del self.tracks[tid]
        return out

    def _window(self, tr: _Track, start: int, end: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Keypoints [clip_len, V, 2] and scores for frames [start, end); None if the person is mostly absent."""
        got = [(i, k, s) for i, k, s in tr.frames if start <= i < end]
        if len(got) < MIN_VISIBLE_FRACTION * (end - start) or len(got) < 2:
            return None
        idx = np.array([g[0] for g in got])
        kps = np.stack([g[1] for g in got])
        scs = np.stack([g[2] for g in got])
        if (scs >= JOINT_SEEN_SCORE).mean() < MIN_JOINT_FRACTION:
            tr.partial_windows += 1
            return None
        # uniform sampling of clip_len frames over the window; absent frames take the nearest present one
        want = np.linspace(start, end - 1, int(self.predictor.clip_len))
        nearest = np.abs(idx[None, :] - want[:, None]).argmin(1)
        return kps[nearest], scs[nearest]

    def _run(self, jobs: list[tuple[int, int, int]]) -> list[tuple[int, Segment]]:
        if not jobs:
            return []
        inputs, probs = [], {}
        for n, (tid, a, b) in enumerate(jobs):
            w = self._window(self.tracks[tid], a, b)
            if w is not None:
                inputs.append((n, w))
        if inputs:
            kp = np.stack([w[0] for _, w in inputs])[:, None]  # [N, 1, T, V, 2]
            sc = np.stack([w[1] for _, w in inputs])[:, None]
            p = np.asarray(self.predictor.predict(kp, sc), dtype=np.float64)
            probs = {n: p[i] for i, (n, _) in enumerate(inputs)}
        out = []
        zero = np.zeros(len(self.classes))
        for n, (tid, a, b) in enumerate(jobs):
            tr = self.tracks[tid]
            half, centre = self.stride_f / 2, (a + b) / 2
            # this window owns the timeline from the previous window's cell end to halfway to the next
            lo = a if tr.last_window is None else sum(tr.last_window) / 2 + half
            hi = centre + half
            p = probs.get(n, zero)
            tr.windows += 1
            self.scored_tracks.add(tid)
            tr.last_window = (a, b)
            k = int(np.argmax(p))
            tr.last_label = (self.classes[k], float(p[k])) if p[k] >= self.cfg.threshold else (BACKGROUND, float(p[k]))
            # a window that could not be scored (p all zeros) is no "best guess": it named class 0 at 0.00 (probe)
            if n in probs and float(p[k]) > self.best.get(tid, ("", -1.0))[1]:
                self.best[tid] = (self.classes[k], float(p[k]))
            if hi > lo:
                out += [(tid, c) for c in (self._clamp(tr, s) for s in tr.segmenter.push(lo / self.fps, hi / self.fps, p))
                        if c is not None]
        return out

    def _clamp(self, tr: _Track, seg: Segment) -> Segment | None:
        """A segment never outlasts the person's last visible frame (smoothing can carry it past); one that
        is then shorter than ``--min-duration`` (or starts after that frame) is dropped, as the segmenter
        drops short ones: a 0.036 s 'bowl' began 0.47 s after its person was last seen."""
        last = (tr.last + 1) / self.fps
        if seg.start_s >= last:
            return None
        seg.end_s = min(seg.end_s, last)
        if seg.end_s - seg.start_s < max(tr.segmenter.cfg.min_duration_s, 1.0 / self.fps) - 1e-9:
            return None
        if tr.history:
            seg.reps = self._count_reps(tr, seg)
        return seg

    def _count_reps(self, tr: _Track, seg: Segment) -> int | None:
        """Repetitions of the segment's exercise in the person's keypoints over the segment (None: not an exercise)."""
        from actionpose.inference.reps_io import count_segments

        a, b = seg.start_s * self.fps, seg.end_s * self.fps
        got = [(k, s) for i, k, s in tr.history if a <= i < b]
        if len(got) < 2:
            return None
        kp, sc = np.stack([g[0] for g in got]), np.stack([g[1] for g in got])
        return count_segments(kp, sc, [(seg.label, 0.0, len(got) / self.fps)], self.model_layout, self.fps)[0]


# --------------------------------------------------------------------------------------------------
def run_tagger(tagger: StreamTagger, frames: Iterable[tuple[int, list[PersonPose]]],
               on_segment: Callable[[int, Segment], None] | None = None,
               on_frame: Callable[[int, list[PersonPose]], None] | None = None) -> tuple[dict[int, list[Segment]], bool]:
    """Drive ``tagger`` over ``frames``; Ctrl-C stops early and still closes open segments.

    Returns the segments per track and whether the input was consumed completely; a Ctrl-C is noted in
    ``tagger.warnings`` and ``tagger.interrupted`` (a folder run stops there instead of going on).
    """
    persons: dict[int, list[Segment]] = {}
    complete = True

    def emit(items: list[tuple[int, Segment]]) -> None:
        for tid, seg in items:
            persons.setdefault(tid, []).append(seg)
            if on_segment is not None:
                on_segment(tid, seg)

    try:
        for index, people in frames:
            if on_frame is not None:
                on_frame(index, people)
            emit(tagger.push(index, people))
    except KeyboardInterrupt:
        complete = False
        tagger.interrupted = True
        tagger.warnings.append(INTERRUPTED)
    emit(tagger.finish())
    for tid in tagger.scored_tracks:
        persons.setdefault(tid, [])
    for segs in persons.values():
        segs.sort(key=lambda s: s.start_s)
    return persons, complete


# -- sources ---------------------------------------------------------------------------------------
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"}
PICKLE_EXTS = {".pkl", ".pickle"}
_AXES = {2: "x, y", 3: "x, y, z"}  # what a keypoint's coordinates are, by their number
DEFAULT_FPS = 30.0  # frame rate of a pickle that does not say (Penn Action, NTU)
NO_RATE = (f"the file names no frame rate: taken as {DEFAULT_FPS:g} fps, so every time rests on that guess "
           "(--fps gives the real rate)")
VIDEO_FPS = 15.0  # videos/streams above this rate are processed at it: same segment F1 on the calibration set
                  # (0.48 vs 0.49 at 30 fps), half the pose-frontend work (docs/tagging.md)


def is_live_source(source: str) -> bool:
    """A webcam index or a network stream: no end, so segments are printed as they close."""
    s = str(source)
    return s.isdigit() or s.split("://", 1)[0].lower() in {"rtsp", "rtsps", "rtmp", "http", "https", "udp", "tcp"}


def expand_source(source: str | Path) -> list[str]:
    """One source -> the list of inputs to tag (a folder gives its videos and pickles, sorted)."""
    s = str(source)
    if not s.strip():  # Path("") is the current folder: an unset $VIDEO tagged every video in it
        raise ActionposeError("empty source: give a video file, a folder, a .pkl, a stream URL or a webcam index")
    if is_live_source(s):
        return [s]
    p = Path(s)
    if p.is_dir():
        items = sorted(str(f) for f in p.iterdir() if f.suffix.lower() in VIDEO_EXTS | PICKLE_EXTS)
        if not items:
            raise where(p, f"folder has no videos ({', '.join(sorted(VIDEO_EXTS))}) or .pkl files")
        return items
    require_file(p, "no such file, folder, webcam index or stream URL")
    return [s]


def resample_indices(n: int, rate: float, target: float) -> list[int]:
    """The frames of ``n`` at ``rate`` fps kept to process at ``target`` fps: the rule :class:`FrameReader` applies
    to a decoded video (:class:`RateSampler`), so a pickle extracted at 30 fps and the video itself are tagged from
    the same frames."""
    from actionpose.pose.sources import RateSampler

    sampler = RateSampler(rate, target)
    return [i for i in range(n) if sampler.keep(i)]


def pickle_videos(path: str | Path, fps: float | None = None,
                  process_fps: float | None = None, coords: int | None = None) -> Iterator[tuple[str, str, float, tuple[int, int] | None,
                                                                      Iterator[tuple[int, list[PersonPose]]],
                                                                      str | None]]:
    """Each annotation of a canonical/PYSKL pickle as one 'video': (name, layout, fps, img_shape, frames, cut); fps is
    None where neither ``fps`` nor the file gives one; ``cut`` says why the video it was extracted from stopped
    early (``actionpose extract`` of a truncated file), else None. ``process_fps``: a sequence whose known rate is
    faster is resampled to it, and the fps given is then that rate, as
    :func:`tag_video` processes a video (``VIDEO_FPS``): the pickle of a video and the video get the same tags.
    ``coords``: the model's keypoint dimensions (2 or 3); a file of the other kind is refused naming it, before any
    sequence is tagged (each sequence was skipped in its own line: a 3D UTD pickle under a 2D model, one per sample)."""
    from actionpose.data.format import load_dataset

    ds = load_dataset(path)
    for ann in ds.annotations:
        kp = np.asarray(ann["keypoint"], dtype=np.float32)
        if coords and kp.shape[-1] != coords:  # a dataset's samples all have one dimension (format.load_dataset)
            raise ModelInputMismatch(f"{path}: holds {kp.shape[-1]}D skeletons ({_AXES.get(kp.shape[-1], '?')}) but the "
                                     f"model reads {coords}D keypoints ({_AXES.get(coords, '?')}); use a model trained "
                                     f"on {kp.shape[-1]}D keypoints")
        sc = ann.get("keypoint_score")
        # canonical format: C = 2 is (x, y) with keypoint_score; C = 3 is (x, y, z), kept for 3D models
        sc = np.asarray(sc, dtype=np.float32) if sc is not None else np.ones(kp.shape[:-1], np.float32)
        given = fps or ann.get("fps") or ds.meta.get("fps")
        rate = float(given) if given else None  # None: the file names no rate (the caller says what it assumes)
        keep: Sequence[int] = range(kp.shape[1])
        if process_fps and rate and rate > process_fps + 0.5:  # no rate known: the frames are taken as they are
            keep, rate = resample_indices(kp.shape[1], rate, process_fps), float(process_fps)

        def frames(kp=kp, sc=sc, keep=keep) -> Iterator[tuple[int, list[PersonPose]]]:
            for out, t in enumerate(keep):
                people = [PersonPose(m, kp[m, t], sc[m, t]) for m in range(kp.shape[0])
                          if np.any(kp[m, t] != 0) and np.any(sc[m, t] > 0)]
                yield out, people

        cut = (f"the video was cut short: `actionpose extract` stopped decoding it at frame {ann['stopped_at']}"
               if ann.get("stopped_at") is not None else None)
        yield str(ann["frame_dir"]), ds.layout, rate, ann.get("img_shape"), frames(), cut


NO_3D_OVERLAY = "an overlay draws 2D image keypoints; 3D skeletons (x, y, z) have no image to be drawn on"
TAG_CLIPS = 1  # windows arrive already resampled to clip_len, so the model's extra test clips would be identical


def load_predictor(model: str | Path, threads: int | None = 2, clips: int | None = TAG_CLIPS) -> tuple[Predictor, str]:
    """Resolve a shipped model name, an exported .onnx path or an ensemble YAML -> (predictor, display name).

    ``clips`` overrides the model's number of test-time clips: the tagger hands over windows already
    resampled to ``clip_len`` frames, for which every test clip would pick the same frames (pure cost).
    """
    import dataclasses

    from actionpose.inference import predictor as _p

    pred = _p.load_predictor(str(model), threads=threads)
    if clips:
        for member in getattr(pred, "predictors", [pred]):
            member.config = dataclasses.replace(member.config, num_clips=int(clips))
    named = str(model) in _p.MODEL_ALIASES or str(model).startswith("models:/")  # registry URIs stay whole
    return pred, (str(model) if named else Path(str(model)).name)


def tag_frames(frames: Iterable[tuple[int, list[PersonPose]]], predictor: Predictor, layout: str, fps: float, *,
               video: str, model_name: str, config: SegmentConfig | None = None,
               on_segment: Callable[[int, Segment], None] | None = None,
               tagger_hook: Callable[[str, StreamTagger], None] | None = None) -> TagResult:
    """Tag one frame stream; the core used by files, pickles and live streams alike."""
    cfg = config or SegmentConfig()
    tagger = StreamTagger(predictor, layout, fps, cfg)
    if tagger_hook is not None:
        tagger_hook("t", tagger)
    count = {"n": 0, "last": -1}

    def seen(index: int, people: list[PersonPose]) -> None:
        count["n"] += 1
        count["last"] = index

    error: ActionposeError | None = None
    try:
        persons, complete = run_tagger(tagger, frames, on_segment=on_segment, on_frame=seen)
    except ModelInputMismatch:
        raise
    except ActionposeError as e:  # the source failed mid-way: keep what was tagged so far
        error = e
        persons, complete = {}, False
        for tid, seg in tagger.finish():
            persons.setdefault(tid, []).append(seg)
            if on_segment is not None:
                on_segment(tid, seg)
    duration = (count["last"] + 1) / fps if count["last"] >= 0 else 0.0
    result = TagResult(video=video, fps=fps, model=model_name, classes=list(predictor.classes),
                       duration_s=duration, frames=count["n"], persons=persons, warnings=list(tagger.warnings),
                       config=cfg, complete=complete, interrupted=getattr(tagger, "interrupted", False),
                       best=dict(tagger.best))
    if error is not None:
        result.warnings.append(f"stopped early: {error}")
    return result


def _frontend_frames(fe: Any, reader: Any, trace_images: Callable[[int, np.ndarray, list[PersonPose]], None] | None
                     ) -> Iterator[tuple[int, list[PersonPose]]]:
    for fr in fe.stream(None, reader=reader, keep_images=trace_images is not None):
        people = [PersonPose(p.track_id, p.keypoints, p.scores, p.box) for p in fr.persons]
        if trace_images is not None:
            trace_images(fr.index, fr.image, people)
        yield fr.index, people


def tag_sequence(frames: Iterable[tuple[int, list[PersonPose]]], predictor: Predictor, layout: str, rate: float,
                 name: str, model_name: str, cfg: SegmentConfig, *, img_shape: Any = None,
                 render: str | Path | None = None,
                 on_segment: Callable[[int, Segment], None] | None = None) -> TagResult:
    """One skeleton sequence (an annotation of a pickle) tagged; with ``render``, its overlay drawn on a blank
    canvas of ``img_shape`` once the segments are final (the labels are the JSON's). Shared by a one-sequence
    pickle and each sequence of a larger one (whose overlays were not drawn). A 3D model's skeletons are refused for
    ``render`` before any work: they are in metres, not pixels (OpenCV failed on (x, y, z) points after tagging)."""
    if render is not None and int(getattr(predictor, "coords", 2)) == 3:
        raise ActionposeError(f"{render}: {NO_3D_OVERLAY}")
    poses: dict[int, list[PersonPose]] = {}
    if render is not None:
        frames = _record(frames, poses)
    result = _tag_with_overlay(frames, predictor, layout, rate, name, model_name, cfg, on_segment, None)
    if render is not None:
        from actionpose.render.overlay import OverlayWriter

        _render_keeping_tags(result, lambda: render_final(
            OverlayWriter(render, rate, layout, predictor.classes, canvas=img_shape),
            ((i, None) for i in sorted(poses)), poses, result))
    return result


def tag_video(source: str | Path, model: str | Path | Predictor = "penn", *, json: str | Path | None = None,
              csv: str | Path | None = None, render: str | Path | None = None, timeline: str | Path | None = None,
              config: SegmentConfig | None = None, frontend: Any = "default", fps: float | None = None,
              on_segment: Callable[[int, Segment], None] | None = None, threads: int = 2,
              model_name: str | None = None) -> TagResult:
    """Tag one video file, stream/webcam, or single-annotation pickle; write the requested outputs.

    ``actionpose demo`` and ``actionpose tag`` both call this. Outputs are written atomically, and also
    when the input stopped early (Ctrl-C, broken stream): the partial result is kept, marked incomplete.
    """
    cfg = config or SegmentConfig()
    cfg.validate()
    if isinstance(model, (str, Path)):
        predictor, model_name = load_predictor(model, threads)
    else:
        predictor, model_name = model, model_name or str(getattr(model, "path", None) or type(model).__name__)
    src = str(source)
    overlay = None
    if Path(src).suffix.lower() in PICKLE_EXTS and not is_live_source(src):
        vids = list(pickle_videos(src, fps, process_fps=VIDEO_FPS, coords=int(getattr(predictor, "coords", 2))))
        if len(vids) != 1:
            raise where(src, f"holds {len(vids)} sequences; --live and tag_video read one: tag the file without "
                             "--live (or with tag_sources) to get each sequence's segments")
        name, layout, rate, img_shape, frames, cut = vids[0]
        no_rate = rate is None
        rate = rate or DEFAULT_FPS
        result = tag_sequence(frames, predictor, layout, rate, name, model_name, cfg, img_shape=img_shape,
                              render=render, on_segment=on_segment)
        if no_rate:
            result.warnings.append(NO_RATE)
        if cut:  # the pickle of a truncated video: its tags cover the part before the cut (was "complete": true)
            result.warnings.append(cut)
            result.complete = False
    else:
        from actionpose.pose import load_frontend
        from actionpose.pose.sources import FrameReader, source_label

        fe = load_frontend(frontend, threads=threads, progress=False) if isinstance(frontend, str) else frontend
        spec: str | int = int(src) if src.isdigit() else src
        reader = FrameReader(spec, fps)
        if (fps is None or not reader.info.is_file) and reader.info.fps > VIDEO_FPS + 0.5:
            # read before the decode thread starts; for a live stream --fps named its rate (FrameReader), and
            # it is resampled like a file
            reader.target_fps = VIDEO_FPS
        rate = reader.out_fps
        draw = None
        poses = {}
        final = render is not None and reader.info.is_file  # a file: drawn again at the end, with the final labels
        if render is not None and not final:  # a live stream: each person's current label as the frames come
            from actionpose.render.overlay import OverlayWriter

            overlay = OverlayWriter(render, rate, fe.layout, predictor.classes)
            draw = overlay.add_frame
        frames = _frontend_frames(fe, reader, draw)
        if final:
            frames = _record(frames, poses)
        name = source_label(src)  # a stream's redacted URL (its last path part named two cameras' /live alike)
        emit = _ending_at_the_file(on_segment, reader) if on_segment is not None and reader.info.is_file else on_segment
        result = _tag_with_overlay(frames, predictor, fe.layout, rate, name, model_name, cfg, emit, overlay)
        if final:
            from actionpose.render.overlay import OverlayWriter

            again = FrameReader(spec, None)
            again.target_fps = reader.target_fps
            _render_keeping_tags(result, lambda: render_final(OverlayWriter(render, rate, fe.layout, predictor.classes),
                                                              ((fr.index, fr.image) for fr in again), poses, result))
        end = _file_end(reader)
        if end is not None:
            _end_at(result, end)
        early = reader.stopped_early()
        if early:
            result.warnings.append(early)
            result.complete = False
        if reader.rate_note:
            result.warnings.append(reader.rate_note)
    write_outputs(result, json=json, csv=csv, timeline=timeline)
    return result


def _file_end(reader: Any) -> float | None:
    """Where a file's decoded frames end (s); None for a live stream or when nothing was decoded."""
    if reader.info.is_file and reader.decoded and reader.info.fps > 0:
        return reader.decoded / reader.info.fps
    return None


def _end_at(result: TagResult, end_s: float) -> None:
    """A file's duration and last segment end where its frames do: each kept frame counts 1/15 s, so 103 frames
    at 30 fps (3.433 s) reported 3.467 s, and a segment ended after the video."""
    if result.duration_s > end_s:
        result.duration_s = end_s
        for segs in result.persons.values():
            for seg in segs:
                seg.end_s = min(seg.end_s, end_s)


def _ending_at_the_file(on_segment: Callable[[int, Segment], None], reader: Any) -> Callable[[int, Segment], None]:
    """``on_segment`` for a file (``--live`` on a video): a segment closed at the end of the file ends where its
    frames do, as :func:`_end_at` makes the JSON and CSV (the live line said 3.467 s, the CSV 3.433 s)."""
    def emit(track_id: int, seg: Segment) -> None:
        end = _file_end(reader) if reader.ended else None
        if end is not None:
            seg.end_s = min(seg.end_s, end)
        on_segment(track_id, seg)

    return emit


def _render_keeping_tags(result: TagResult, draw: Callable[[], None]) -> None:
    """Draw the final overlay; Ctrl-C (or SIGTERM) while drawing stops the drawing only. The tags are complete by
    then, and a stop in this second pass used to lose them with the overlay (no JSON, CSV or timeline; in a folder
    run, not even the videos finished before)."""
    try:
        draw()
    except KeyboardInterrupt:
        result.interrupted = True
        result.warnings.append("interrupted while drawing the overlay: the tags are complete, the overlay video "
                               "was not written")


def _record(frames: Iterable[tuple[int, list[PersonPose]]], poses: dict[int, list[PersonPose]]
            ) -> Iterator[tuple[int, list[PersonPose]]]:
    for index, people in frames:
        poses[index] = people
        yield index, people


def segment_label(result: TagResult, track_id: int, t: float) -> tuple[str, float]:
    """The label a person has at time ``t`` in the result: the segment that covers it, else background."""
    for s in result.persons.get(int(track_id), []):
        if s.start_s <= t < s.end_s or (t == s.end_s == result.duration_s):
            return s.label, s.score
    return BACKGROUND, 0.0


def render_final(overlay: Any, images: Iterable[tuple[int, np.ndarray | None]], poses: dict[int, list[PersonPose]],
                 result: TagResult) -> None:
    """Draw the overlay of a finished input: its frames again (``images``: index, image or None for a blank
    canvas) with the skeletons seen then and each person's label from the final segments. Why a second pass:
    drawn while tagging, a label only showed once its window had been scored, so a short clip's overlay
    said '-' throughout where its JSON tagged a segment. Frames after the last one tagged (an interrupted run)
    are not drawn."""
    now = {"t": 0.0}
    overlay.label_of = lambda tid: segment_label(result, tid, now["t"])
    last = max(poses) if poses else -1
    try:
        for index, image in images:
            if index > last:
                break
            now["t"] = index / result.fps
            overlay.add_frame(index, image, poses.get(index, []))
    except BaseException:
        overlay.close(keep=False)
        raise
    overlay.close()


def _tag_with_overlay(frames, predictor, layout, fps, name, model_name, cfg, on_segment, overlay) -> TagResult:
    tagger_box: dict[str, StreamTagger] = {}
    if overlay is not None:
        overlay.label_of = lambda tid: tagger_box["t"].current_label(tid) if "t" in tagger_box else (BACKGROUND, 0.0)
    try:
        result = tag_frames(frames, predictor, layout, fps, video=name, model_name=model_name, config=cfg,
                            on_segment=on_segment, tagger_hook=tagger_box.__setitem__)
    except BaseException:
        if overlay is not None:
            overlay.close(keep=False)
        raise
    if overlay is not None:
        overlay.close()
    return result


def write_outputs(result: TagResult, *, json: str | Path | None = None, csv: str | Path | None = None,
                  timeline: str | Path | None = None) -> None:
    if json is not None:
        write_json(result, json)
    if csv is not None:
        write_csv(result, csv)
    if timeline is not None:
        from actionpose.render.timeline import plot_timeline
        plot_timeline(result, timeline)
