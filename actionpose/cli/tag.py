"""``actionpose tag SOURCE``: who did what, when — per-person action segments (see docs/tagging.md)."""
from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Callable, Iterator

from actionpose.cli.stopping import stop_name
from actionpose.data.atomic import output_labels
from actionpose.errors import ActionposeError
from actionpose.inference.segments import SegmentConfig

TIMELINE_SUFFIXES = {".png", ".jpg", ".jpeg", ".svg", ".pdf"}

DEFAULTS = SegmentConfig()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tag", help="tag per-person action segments in videos, streams or pickles",
                       description="Sliding windows per tracked person -> ONNX action scores -> smoothing + "
                                   "hysteresis -> segments. SOURCE: video file, folder, webcam index, "
                                   "rtsp/http URL, or an extracted .pkl (skips the pose frontend).")
    p.add_argument("source", help="video file, folder, webcam index (0), rtsp:// or http:// URL, or .pkl")
    p.add_argument("--model", default="penn", help="shipped model name (penn, gestures, ...) or .onnx path "
                                                   "(default penn)")
    p.add_argument("--json", help="write the result JSON here (live sources: append one JSON line per segment)")
    p.add_argument("--csv", help="write one CSV row per segment here")
    p.add_argument("--render", help="write an overlay video (skeletons, IDs, current label) here (.mp4, .mov, .mkv: H.264; .avi: Motion-JPEG)")
    p.add_argument("--timeline", help="write a timeline PNG (one lane per person) here")
    p.add_argument("--window", type=float, default=DEFAULTS.window_s, help=f"window seconds "
                                                                         f"(default {DEFAULTS.window_s:g})")
    p.add_argument("--stride", type=float, default=DEFAULTS.stride_s, help=f"stride seconds "
                                                                         f"(default {DEFAULTS.stride_s:g})")
    p.add_argument("--threshold", type=float, default=None,
                   help=f"minimum smoothed class probability to tag; below it is background "
                        f"(default {DEFAULTS.threshold:g}, calibrated, see docs/tagging.md; --model fall: its "
                        "calibrated alert threshold)")
    p.add_argument("--min-duration", type=float, default=DEFAULTS.min_duration_s,
                   help=f"drop segments shorter than this many seconds (default {DEFAULTS.min_duration_s:g})")
    p.add_argument("--fps", type=float, help="video/stream: process at this frame rate (default 15, or the "
                                             "source's rate if lower); .pkl: the rate it was recorded at (default: "
                                             "the file's; one that names none is taken as 30 and read frame by "
                                             "frame), processed at 15 fps when known and faster, like a video")
    p.add_argument("--live", action="store_true", help="print segments as they close even for a file "
                                                       "(automatic for webcams and stream URLs)")
    p.add_argument("--frontend", default="default", help="pose frontend name (default: embedded default)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads for ONNX Runtime (default 2)")
    p.add_argument("-q", "--quiet", action="store_true", help="do not print the summary")
    p.set_defaults(func=run)


def _suffixed(path: str | None, name: str, many: bool) -> str | None:
    if path is None or not many:
        return path
    p = Path(path)  # ``name`` is already a label (output_labels: a stem): ``day1.cam1`` kept whole, not cut to
    return str(p.with_name(f"{p.stem}.{name}{p.suffix}"))  # ``day1`` (day1.cam1.mp4 and .cam2 wrote one file)


def run(args: argparse.Namespace) -> int:
    from actionpose.inference.tagger import (DEFAULT_FPS, NO_3D_OVERLAY, NO_RATE, PICKLE_EXTS, expand_source, is_live_source,
                                             load_predictor, pickle_videos, tag_sequence, tag_video, write_outputs, VIDEO_FPS)

    threshold = DEFAULTS.threshold if args.threshold is None else args.threshold
    cfg = SegmentConfig(window_s=args.window, stride_s=args.stride, threshold=threshold,
                        min_duration_s=args.min_duration)
    cfg.validate()
    if args.fps is not None and not 0 < args.fps <= 1000:  # nan/inf/negative: named here, not "frame rate must be"
        raise ActionposeError(f"--fps must be a number in (0, 1000], got {args.fps:g}")
    from actionpose.inference.fall import MIN_FPS as MIN_TAG_FPS  # the fall detector's floor serves every model

    if args.fps is not None and args.fps < MIN_TAG_FPS:  # 0.5 fps: "2.0 s, 1 frames" for a 1-s clip, then a
        # person "visible for only 2.00 s (< 0.5 s)"; a window of a few frames holds no motion to classify
        raise ActionposeError(f"--fps {args.fps:g} is too low to see motion: give at least {MIN_TAG_FPS:g} "
                              "(videos are tagged at 15 fps by default)")
    from actionpose.data.atomic import check_output_file

    given: dict[Path, str] = {}
    for option in ("json", "csv", "render", "timeline"):  # `--json clip.mp4` on clip.mp4 replaced the video
        value = getattr(args, option)
        if value == "-":  # wrote a file named "-"
            raise ActionposeError(f"--{option} -: standard output is not supported; give a file name")
        check_output_file(value, f"--{option}", inputs=(args.source,))
        if value:
            same = given.setdefault(Path(value).resolve(), option)
            if same != option:  # the CSV overwrote the JSON
                raise ActionposeError(f"--{same} and --{option} name one file ({value}); give each its own")
    from actionpose.render.video_file import check_video_suffix

    check_video_suffix(args.render, "--render")
    if args.timeline and Path(args.timeline).suffix.lower() not in TIMELINE_SUFFIXES:
        # found after the whole video had been tagged, as a traceback, and the JSON/CSV were lost with it
        raise ActionposeError(f"--timeline {args.timeline}: give a picture file ({', '.join(sorted(TIMELINE_SUFFIXES))})")
    if Path(str(args.model).strip()).name.lower() in ("pushup_form", "pushup_form.onnx"):  # the name or its file
        raise ActionposeError("--model pushup_form judges the form of push-up clips (correct / wrong), it does not "
                              "find actions in a video; use `actionpose reps VIDEO --form`")
    inputs = expand_source(args.source)
    live = args.live or is_live_source(args.source)
    if args.render and Path(args.source).is_dir() and Path(args.render).resolve().parent == Path(args.source).resolve():
        # the overlays r.<video>.mp4 were tagged as videos by the next run, one written over the other's input
        raise ActionposeError(f"--render {args.render}: inside the folder being tagged; its overlays would be "
                              "tagged as videos on the next run: write them to another folder")
    if args.live and len(inputs) > 1:  # tagged the first video only, exit 0 (the fall model ran them all, not live)
        raise ActionposeError(f"--live reads one video or stream; {args.source} is a folder of {len(inputs)} files: "
                              "tag it without --live (every file's segments go to --json / --csv)")
    from actionpose.inference.fall_tagging import is_fall_model

    if is_fall_model(args.model):
        return _tag_falls(args, inputs, live)
    npy = [i for i in inputs if Path(i).suffix.lower() == ".npy"]
    if npy:  # was "cannot open video" (only the fall model reads a bare keypoint array)
        raise ActionposeError(f"{npy[0]}: a .npy keypoint array is read by --model fall only; the other models take "
                              "a video or a skeleton .pkl (actionpose extract, actionpose datasets convert)")
    predictor, model_name = load_predictor(args.model, args.threads)
    if args.render and int(getattr(predictor, "coords", 2)) == 3:  # was cv2's "Can't parse 'pt1'" after tagging
        raise ActionposeError(f"--render {args.render}: {NO_3D_OVERLAY} (model {model_name}); tag without --render")
    videos = [i for i in inputs if Path(i).suffix.lower() not in PICKLE_EXTS]
    if videos and int(getattr(predictor, "coords", 2)) == 3:  # was "cannot be mapped ... joints [...] are missing"
        from actionpose.pose.sources import redact_url

        raise ActionposeError(f"{redact_url(videos[0])}: a video gives 2D poses but model {model_name} reads 3D "
                              "skeletons; tag a 3D skeleton .pkl with it, or use a 2D model on video (penn)")

    if live:
        return _run_live(args, inputs[0], predictor, model_name, cfg)

    # several sequences: a folder, or a pickle with many annotations
    jobs = []
    for item in inputs:
        if Path(item).suffix.lower() in PICKLE_EXTS:
            for name, layout, fps, img_shape, frames, cut in pickle_videos(item, args.fps, process_fps=VIDEO_FPS,
                                                                           coords=int(getattr(predictor, "coords", 2))):
                _check_mappable(item, layout, predictor)  # before any work: was one skip line per sample, then 15 KB
                jobs.append(("pkl", name, (layout, fps, frames, cut, img_shape)))
        else:
            jobs.append(("video", Path(item).name, item))
    many = len(jobs) > 1
    label = output_labels([name for _, name, _ in jobs])
    if many and any(kind == "pkl" and payload[1] is None for kind, _, payload in jobs):
        # said once for the run, not once per sequence (a CSV-made pickle of 183 clips printed it 183 times)
        print(f"note: {NO_RATE}", file=sys.stderr)

    def one(kind: str, name: str, payload) -> "TagResult":
        if kind == "pkl" and not many:
            return tag_video(inputs[0], predictor, render=args.render, timeline=args.timeline, config=cfg,
                             fps=args.fps, threads=args.threads, model_name=model_name)
        if kind == "pkl":
            layout, fps, frames, cut, img_shape = payload
            res = tag_sequence(frames, predictor, layout, fps or DEFAULT_FPS, name, model_name, cfg, img_shape=img_shape,
                               render=_suffixed(args.render, label[name], many))  # each sequence its overlay
            if fps is None:  # a CSV-made pickle has no frame rate: every segment time rests on the guess
                res.warnings.append(NO_RATE)  # in each result's JSON; printed once for the run (above)
            if cut:
                res.warnings.append(cut)
                res.complete = False
            write_outputs(res, timeline=_suffixed(args.timeline, label[name], many))
            return res
        return tag_video(payload, predictor, render=_suffixed(args.render, label[name], many),
                         timeline=_suffixed(args.timeline, label[name], many), config=cfg, frontend=args.frontend,
                         fps=args.fps, threads=args.threads, model_name=model_name)

    return _run_jobs(args, [(name, lambda k=kind, n=name, p=payload: one(k, n, p)) for kind, name, payload in jobs])


def _check_mappable(path: str, layout: str, predictor) -> None:  # noqa: ANN001
    from actionpose.skeleton import can_map, get_layout

    model = get_layout(predictor.layout).name
    if not can_map(layout, model):
        raise ActionposeError(f"{path}: its layout {layout!r} cannot be mapped to the model's layout {model!r} "
                              "by joint names; use a model trained on this layout")


def _run_jobs(args: argparse.Namespace, jobs: list) -> int:
    """Run ``(name, job)`` pairs in order and write the JSON/CSV of all of them.

    In a folder one unreadable video is skipped with a warning (the others' results are still written,
    exit code 2); Ctrl-C (or SIGTERM) ends the whole run after writing what was tagged so far (exit code 130; 143)."""
    from actionpose.errors import ActionposeError
    from actionpose.inference.tagger import NO_RATE

    many = len(jobs) > 1
    results, failed, interrupted = [], [], False
    for name, job in jobs:
        try:
            res = job()
        except ActionposeError as e:
            if not many:
                raise
            failed.append(name)
            print(f"warning: skipped {name}: {e}", file=sys.stderr)
            continue
        results.append(res)
        if not args.quiet:  # the run-wide "no frame rate" was said once up front, not under each of 183 clips
            print(res.summary(skip=(NO_RATE,) if many else ()))
        if res.interrupted:
            interrupted = True
            break
    if results:
        _write_results(args, results, many)
    if interrupted:
        done = f"{len(results)} of {len(jobs)}" if many else "the part before it"
        print(f"interrupted ({stop_name()}): stopped after {done}; outputs hold what was tagged", file=sys.stderr)
        return 143 if stop_name() == "SIGTERM" else 130
    cut = [r for r in results if not r.complete]  # a video that stopped decoding part-way: exit 0 read as "all tagged"
    if failed:  # a cut video among them was said only in the JSON
        print(f"error: {len(failed)} of {len(jobs)} inputs could not be tagged ({', '.join(failed)}); "
              + ("the others' results were written" if results else "nothing was written")
              + (f"; {', '.join(r.video for r in cut)} stopped before the end (partial results)" if cut else ""),
              file=sys.stderr)
        return 2
    if cut:
        print(f"error: {', '.join(r.video for r in cut)}: stopped before the end ("
              + "; ".join(next((w for w in r.warnings if "stopped" in w or "decode" in w), "decode failed")
                          for r in cut) + "); the outputs hold the part before it", file=sys.stderr)
        return 2
    return 0


def _write_results(args: argparse.Namespace, results: list, many: bool) -> None:
    from actionpose.inference.tagger import write_csv, write_json

    if args.json:
        if many:
            from actionpose.data.atomic import write_text_atomic
            doc = {"schema": 1, "results": [r.to_dict() for r in results]}
            write_text_atomic(args.json, json.dumps(doc, indent=2) + "\n")
        else:
            write_json(results[0], args.json)
    if args.csv:
        if many:
            import csv
            import io

            from actionpose.data.atomic import write_text_atomic
            from actionpose.inference.tagger import CSV_FIELDS
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
            w.writeheader()
            for r in results:
                w.writerows(r.rows())
            write_text_atomic(args.csv, buf.getvalue())
        else:
            write_csv(results[0], args.csv)


def _tag_falls(args: argparse.Namespace, inputs: list[str], live: bool) -> int:
    """``--model fall`` on any source: the calibrated fall detector (its own window, threshold and
    debounce), one ``fall`` segment per event. Files, folders and pickles alike; a live camera prints
    each fall the moment it is raised."""
    from actionpose.errors import ActionposeError
    from actionpose.inference.fall_tagging import tag_falls
    from actionpose.inference.tagger import PICKLE_EXTS
    from actionpose.pose.frontend import get_frontend_spec

    if args.window != DEFAULTS.window_s or args.stride != DEFAULTS.stride_s:
        print("note: --window/--stride do not apply to the fall model (its window is 2.1 s, scored every "
              "1/15 s)", file=sys.stderr)
    if args.threshold is not None and not 0 < args.threshold < 1:
        raise ActionposeError(f"--threshold {args.threshold}: must be above 0 and below 1")
    if any(Path(i).suffix.lower() not in {".pkl", ".npy"} for i in inputs):
        get_frontend_spec(args.frontend)  # an unknown frontend name is refused before any work
    many = len(inputs) > 1
    label = output_labels([Path(i).name for i in inputs])

    from actionpose.pose.sources import redact_url, source_label

    write_line = None  # live: one JSON line per fall, appended as it is raised (as for the other models' segments)

    def on_event(e) -> None:
        print(f"{e.kind.upper().replace('_', ' ')} track {e.track_id}: start {e.start_time:.2f} s, "
              f"detected {e.detected_time:.2f} s, confidence {e.confidence:.3f}", flush=True)
        if write_line is not None:
            tid = e.track_id.item() if hasattr(e.track_id, "item") else e.track_id  # 0, not "0" (as in files)
            write_line({"video": source_label(inputs[0]), "track_id": tid if isinstance(tid, (int, str)) else str(tid),
                        "label": e.kind,  # fall, still_down (no recovery seen after long_lie_s) or recovered
                        "start_s": round(float(e.start_time), 3), "end_s": round(float(e.detected_time), 3),
                        "score": round(float(e.confidence), 4)})

    def job(item: str, name: str, sequence: int | None = None):
        return lambda: tag_falls(item, args.model, timeline=_suffixed(args.timeline, label[name], many),
                                 render=_suffixed(args.render, label[name], many),
                                 frontend=args.frontend, fps=args.fps, threshold=args.threshold,
                                 threads=args.threads, on_event=on_event if live else None, sequence=sequence)

    # a pickle of several sequences: one result per sequence, as with the other models (was one result for all,
    # its persons renumbered across clips)
    named = [(i, Path(i).name, None) for i in inputs]
    if any(Path(i).suffix.lower() in PICKLE_EXTS for i in inputs):
        from actionpose.inference.fall_sources import read_pickle  # read once, also by the jobs

        def sequences(item: str) -> list:
            try:
                return read_pickle(Path(item)).annotations if Path(item).suffix.lower() in PICKLE_EXTS else []
            except (ActionposeError, OSError):  # unreadable or missing: its job says why (skipped or refused)
                return []

        named = []
        for i in inputs:
            seqs = sequences(i)
            named += ([(i, str(a["frame_dir"]), k) for k, a in enumerate(seqs)] if len(seqs) > 1
                      else [(i, Path(i).name, None)])
        many = len(named) > 1
        label = output_labels([n for _, n, _ in named])
    if not (live and not many):
        return _run_jobs(args, [(n, job(i, n, k)) for i, n, k in named])
    # a live source: Ctrl-C is how the run ends (exit 0), as `tag` with the other models
    with _json_lines(args.json) as write_line:
        res = job(inputs[0], Path(inputs[0]).name)()
    if args.csv:
        from actionpose.inference.tagger import write_csv

        write_csv(res, args.csv)
    falls = sum(len(s) for s in res.persons.values())
    state = f"stopped ({stop_name()})" if res.interrupted else "ended"
    print(f"{redact_url(inputs[0])}: stream {state} after {res.duration_s:.1f} s; {falls} fall(s), {len(res.persons)} person(s)",
          file=sys.stderr)
    return 0


def _run_live(args, source, predictor, model_name, cfg) -> int:
    """Print each segment as it closes; with --json append JSON lines. Ctrl-C closes open segments."""
    from actionpose.inference.tagger import tag_video

    from actionpose.pose.sources import redact_url, source_label

    name = redact_url(source)  # a camera URL's credentials never reach the console or the JSON lines
    label = source_label(source)  # the JSON lines' "video" is the result's (CSV, JSON): a file's name, not its path
    write_line = None

    def on_segment(tid, seg) -> None:
        print(f"person {tid}: {seg.label} {seg.start_s:.2f}-{seg.end_s:.2f} s score {seg.score:.2f}", flush=True)
        if write_line is not None:
            write_line({"video": label, "track_id": int(tid), **seg.to_dict()})

    with _json_lines(args.json) as write_line:
        res = tag_video(source, predictor, render=args.render, timeline=args.timeline, csv=args.csv,
                        config=cfg, frontend=args.frontend, fps=args.fps, on_segment=on_segment,
                        threads=args.threads, model_name=model_name)
    if res.frames == 0 and res.complete:
        raise ActionposeError(f"{name}: the stream gave no frames (" + "; ".join(res.warnings or ["ended at once"]) + ")")
    n = sum(len(s) for s in res.persons.values())
    state = f"stopped ({stop_name()})" if not res.complete else "ended"
    print(f"{name}: stream {state} after {res.duration_s:.1f} s; {n} segment(s), {len(res.persons)} person(s)",
          file=sys.stderr)
    for w in res.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return 0


@contextlib.contextmanager
def _json_lines(path: str | None) -> Iterator[Callable[[dict], None] | None]:
    """A live run's ``--json``: records appended as JSON lines the moment they happen, each with
    ``emitted_at``, the UTC wall-clock time (stream times count from the start of the run, and a camera's
    event has to be tied to when it happened). None without ``--json``. A file this run created and
    left empty (a stream that never opened or never started) is removed."""
    if not path:
        yield None
        return
    from datetime import datetime, timezone

    created = not Path(path).exists()
    try:
        with open(path, "a", encoding="utf-8") as out:
            def write(record: dict) -> None:
                stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
                out.write(json.dumps({**record, "emitted_at": stamp}) + "\n")
                out.flush()

            yield write
    finally:
        if created and Path(path).exists() and Path(path).stat().st_size == 0:
            Path(path).unlink()
