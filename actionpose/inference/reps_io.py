"""Run the counter over a keypoint pickle or a video (what ``actionpose reps`` calls).

A pickle holds whole sequences, so it is counted offline and its reps reported as events. A video
is a stream: frames go one at a time through :meth:`RepCounter.update` (live events), and
:meth:`RepCounter.finish` reports the whole-stream analysis at the end.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np

from actionpose.errors import ActionposeError, require_file, where
from actionpose.inference.reps import RepCounter, RepEvent, RepResult, pick_person

OnEvent = Callable[[str, RepEvent], None]
# name -> (keypoints [T, V, C], scores [T, V] | None, fps, layout, time of the first frame): what a count saw,
# kept on request (``keep=``) for a second look at the same frames, e.g. judging push-up form per rep
Kept = dict[str, tuple[np.ndarray, Optional[np.ndarray], float, str, float]]
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"}


def run_frames(frames: Iterable[tuple[float, np.ndarray, np.ndarray | None]], counter: RepCounter,
               name: str = "", on_event: OnEvent | None = None) -> RepResult:
    """Feed ``(t, keypoints [V, C], scores [V] | None)`` frames; call ``on_event`` per completed rep."""
    for t, kp, sc in frames:
        for ev in counter.update(kp, t, sc):
            if on_event:
                on_event(name, ev)
    events, result = counter.finish()
    for ev in events:
        if on_event:
            on_event(name, ev)
    return result


def count_segments(keypoints: np.ndarray, scores: np.ndarray | None, segments: Iterable[tuple[str, float, float]],
                   layout: str, fps: float) -> list[int | None]:
    """Rep count inside each tagged ``(label, start_s, end_s)`` segment of one person's ``[T, V, C]``.

    For the tag output: a segment whose label names a known exercise (Penn ``pushup``, UTD
    ``arm_curl``, ``squat`` ...) gets its count; other labels, and segments too short or with the
    needed joints unseen, get None.
    """
    from actionpose.inference.reps_signals import find_exercise

    out: list[int | None] = []
    for label, start, end in segments:
        ex = find_exercise(label)
        a, b = max(0, int(round(start * fps))), int(round(end * fps)) + 1
        if ex is None or b - a < 2:
            out.append(None)
            continue
        try:
            res = RepCounter(ex.name, layout=layout, fps=fps).count(
                keypoints[a:b], None if scores is None else scores[a:b])
            out.append(res.count)
        except ActionposeError:
            out.append(None)
    return out


def count_pickle(path: str | Path, exercise: str | None = None, fps: float | None = None,
                 sample: str | None = None, min_score: float = 0.3,
                 on_event: OnEvent | None = None,
                 on_skip: Callable[[str, str], None] | None = None, keep: Kept | None = None) -> dict[str, RepResult]:
    """Count every annotation (or only ``sample``) of a canonical/PYSKL pickle, by ``frame_dir``.

    With ``on_skip``, a sample of a several-sample pickle that cannot be counted (too short, no usable
    joints) is reported to it as ``(frame_dir, reason)`` and the rest are still counted: one short clip in
    a dataset should not throw away every count after it. Without it, or for a single sample, it raises."""
    from actionpose.data.format import load_dataset

    ds = load_dataset(path)
    anns = ds.annotations
    if sample is not None:
        anns = [a for a in anns if a["frame_dir"] == sample]
        if not anns:
            raise where(path, f"no sample named {sample!r} (see `actionpose datasets info`)")
    # one job per person: an extracted video holds every tracked person (M > 1), and each is counted, as
    # the video route counts each track (it silently counted only the most confident person before)
    jobs = []
    for ann in anns:
        kp, sc = np.asarray(ann["keypoint"]), ann.get("keypoint_score")
        persons = [m for m in range(kp.shape[0]) if np.abs(kp[m]).sum() > 0 and (sc is None or np.any(sc[m] > 0))]
        if kp.shape[0] <= 1 or len(persons) <= 1:
            jobs.append((ann["frame_dir"], ann, kp, sc))
        else:
            jobs += [(f"{ann['frame_dir']} person {m}", ann, kp[m], None if sc is None else sc[m]) for m in persons]
    results, errors = {}, []
    for name, ann, kp, sc in jobs:
        rate = float(fps or ann.get("fps") or 30.0)
        counter = RepCounter(exercise, layout=ds.layout, fps=rate, min_score=min_score)
        try:
            res = counter.count(kp, sc)
        except ActionposeError as e:
            if len(jobs) == 1 or (on_skip is None and len(anns) > 1):
                raise where(f"{path} [{name}]", str(e)) from None
            errors.append(f"{name}: {e}")
            if on_skip is not None:
                on_skip(name, str(e))
            continue
        # stored keypoints: the whole sequence is known, so the offline reps are reported as events
        for i, r in enumerate(res.reps, 1):
            if on_event:
                on_event(name, RepEvent(i, round(r.start_s, 3), round(r.end_s, 3), res.exercise))
        results[name] = res
        if keep is not None:
            kp1, sc1 = pick_person(np.asarray(kp), sc)
            keep[name] = (kp1, sc1, rate, ds.layout, 0.0)
    if not results and on_skip is None:  # with on_skip the caller reports what was skipped
        raise where(path, "; ".join(errors) or "nothing to count")
    return results


def count_video(source: str | Path, exercise: str | None = None, frontend: str = "default",
                min_score: float = 0.3, on_event: OnEvent | None = None, keep: Kept | None = None,
                on_cut: Callable[[str], None] | None = None) -> dict[str, RepResult]:
    """Run the pose frontend on a video and count reps per tracked person (tracks seen long enough).
    ``on_cut`` hears why a truncated file stopped decoding (the counts then cover the part before it; it was
    exit 0 and "no repetitions found", where `tag` and `fall` exit 2 on the same file)."""
    from actionpose.pose import load_frontend
    from actionpose.pose.sources import FrameReader

    fe = load_frontend(frontend)
    counters: dict[int, RepCounter] = {}
    reader = FrameReader(str(source))
    for frame in fe.stream(str(source), keep_images=False, reader=reader):
        for person in frame.persons:
            c = counters.setdefault(person.track_id, RepCounter(exercise, layout=fe.layout, min_score=min_score))
            for ev in c.update(person.keypoints, frame.time_s, person.scores):
                if on_event:
                    on_event(f"track {person.track_id}", ev)
    cut = reader.stopped_early()
    if cut and on_cut is not None:
        on_cut(cut)
    if not counters:
        raise where(source, "no person was detected in the video" + (f" ({cut})" if cut else ""))
    results, errors = {}, []
    for tid, c in counters.items():
        try:
            events, res = c.finish()
        except ActionposeError as e:
            errors.append(f"track {tid}: {e}")
            continue
        for ev in events:
            if on_event:
                on_event(f"track {tid}", ev)
        results[f"track {tid}"] = res
        if keep is not None:
            kp, sc, t0, rate = c.buffered()
            keep[f"track {tid}"] = (kp, sc, rate, fe.layout, t0)
    if not results:  # 17 short tracks of a crowd made one 2,000-character line: the first three, then a count
        more = f"; and {len(errors) - 3} more track(s)" if len(errors) > 3 else ""
        raise where(source, "; ".join(errors[:3]) + more + (f" ({cut})" if cut else ""))
    return results


def count_file(path: str | Path, exercise: str | None = None, fps: float | None = None, sample: str | None = None,
               min_score: float = 0.3, on_event: OnEvent | None = None,
               on_skip: Callable[[str, str], None] | None = None, keep: Kept | None = None,
               on_cut: Callable[[str], None] | None = None) -> dict[str, RepResult]:
    """``.pkl`` -> stored keypoints; a video file -> the pose frontend."""
    if "://" in str(path):  # Path() turned rtsp://user:pw@host into "rtsp:/user:pw@host: no such file"
        from actionpose.pose.sources import redact_url

        raise where(redact_url(str(path)), "a stream: reps counts files (a video or a keypoint .pkl); record the "
                                           "stream to a file first")
    p = Path(path)
    require_file(p)
    if p.suffix.lower() == ".pkl":
        return count_pickle(p, exercise, fps, sample, min_score, on_event, on_skip, keep)
    if p.suffix.lower() in VIDEO_SUFFIXES:
        return count_video(p, exercise, min_score=min_score, on_event=on_event, keep=keep, on_cut=on_cut)
    raise where(p, f"unsupported input {p.suffix!r}: give a keypoint .pkl or a video "
                   f"({', '.join(sorted(VIDEO_SUFFIXES))})")
