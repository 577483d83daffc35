"""``actionpose fall SOURCE``: fall events with times from a video, an extracted .pkl or a .npy."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fall", help="detect falls in a video / skeleton file and print the events")
    p.add_argument("source", help="video file, stream URL (rtsp://, http://; each fall printed when raised), canonical "
                                  "skeleton .pkl (actionpose extract), or .npy [T, V, 2|3]")
    p.add_argument("--model", default="fall", help="shipped model name or .onnx path (default: fall)")
    p.add_argument("--threshold", type=float, help="override the calibrated alert threshold")
    p.add_argument("--long-lie", type=float, metavar="SECONDS",
                   help="after a fall, say 'still down' when the person was not seen up again this long after the "
                        "alert (default 60)")
    p.add_argument("--hold-lost", type=float, metavar="SECONDS",
                   help="a person missing from the frames: hold their last pose this long for the fall windows (default "
                        "0, off; 1.0 alerts people the pose estimator loses right after they land, docs/fall.md)")
    p.add_argument("--layout", help="layout of a .npy source (default coco17)")
    p.add_argument("--fps", type=float, help="frame rate of a .npy/.pkl source (default: recorded or 30), or the rate "
                                             "a stream sends (default: what it reports); for a video, resample to it")
    p.add_argument("--frontend", default="default", help="pose frontend for videos")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table (a stream: JSON Lines, one "
                                                       "{\"type\": \"event\"} per event as raised, then a summary)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from actionpose.cli.stopping import stop_name
    from actionpose.errors import ActionposeError, require_file
    from actionpose.inference.fall import FallDetector
    from actionpose.inference.fall_sources import detect_falls
    from actionpose.inference.tagger import is_live_source

    if args.threshold is not None and not 0 < args.threshold < 1:
        raise ActionposeError(f"--threshold {args.threshold}: must be above 0 and below 1")
    if args.fps is not None and not 0 < args.fps <= 1000:  # 1e9 gave "0.00 s ... no falls detected"
        raise ActionposeError(f"--fps must be in (0, 1000], got {args.fps}")
    from actionpose.inference.fall import MIN_FPS

    if args.fps is not None and args.fps < MIN_FPS:  # 2 fps: "no falls detected", exit 0, falls missed (probe)
        raise ActionposeError(f"--fps {args.fps:g} is below the {MIN_FPS:g} fps the fall detector needs (falls are "
                              "missed below it)")
    live = is_live_source(args.source)
    if not Path(args.source).is_dir() and not live:
        require_file(args.source)
    suffix = "" if live else Path(args.source).suffix.lower()
    # options that cannot apply were silently ignored (a video's layout is its frontend's, a pickle's its own)
    if args.layout is not None and suffix != ".npy":
        raise ActionposeError(f"--layout is for .npy sources; {args.source} has its own "
                              + ("(the pickle's layout)" if suffix == ".pkl" else "(the pose frontend's)"))
    if args.frontend != "default" and suffix in (".npy", ".pkl"):
        raise ActionposeError(f"--frontend is for videos and live sources; {args.source} holds keypoints already")
    overrides = {} if args.threshold is None else {"threshold": args.threshold}
    if args.long_lie is not None:
        if not 0 < args.long_lie <= 3600:  # (said with the option's name, not the setting's)
            raise ActionposeError(f"--long-lie {args.long_lie:g}: must be more than 0 and at most 3600 seconds")
        overrides["long_lie_s"] = args.long_lie
    if args.hold_lost is not None:
        if not 0 <= args.hold_lost <= 5:
            raise ActionposeError(f"--hold-lost {args.hold_lost:g}: must be from 0 to 5 seconds")
        overrides["hold_lost_s"] = args.hold_lost
    det = FallDetector.from_pretrained(args.model, **overrides)
    from actionpose.pose.sources import redact_url

    numbered: list = []  # the track ids of the falls printed so far (event_line)

    def say(e) -> None:  # noqa: ANN001 - one line per event; falls numbered in the order raised
        print(event_line(e, numbered), flush=True)

    def say_json(e) -> None:  # noqa: ANN001 - live --json: JSON Lines, one per event as it is raised
        print(json.dumps({"type": "event", **_rounded(e.to_dict())}), flush=True)

    # a live source: each fall is printed when it is raised (they all came at Ctrl-C, with --json too), and
    # Ctrl-C is how the run ends (exit 0), as for `tag URL`
    events, info = detect_falls(det, args.source, layout=args.layout, fps=args.fps, frontend=args.frontend,
                                on_event=(say_json if args.json else say) if live else None)
    shown = redact_url(args.source)  # a camera URL's credentials are not printed
    for w in info.get("warnings", []):
        print(f"warning: {shown}: {w}", file=sys.stderr)
    cut = info.get("interrupted") and not live  # a file stopped part-way: said, and not exit 0
    if args.json and live:  # the last JSON line: the run's summary, every event again
        print(json.dumps(_rounded({"type": "summary", "source": shown, **info, "threshold": det.config.threshold,
                                   "events": [e.to_dict() for e in events]})))
    elif args.json:
        print(json.dumps(_rounded({"source": shown, **info, "threshold": det.config.threshold,
                                   "events": [e.to_dict() for e in events]}), indent=1))
    elif live:
        state = f"stopped ({stop_name()})" if info.get("interrupted") else "ended"
        print(f"{shown}: stream {state} after {info['duration_s']:.1f} s, {info['frames']} frames; "
              f"{sum(e.kind == 'fall' for e in events)} fall(s), threshold {det.config.threshold:.2f}")
    else:
        print(f"{shown}: {info['frames']} frames, {info['duration_s']:.2f} s{' (stopped part-way)' if cut else ''}, "
              f"layout {info['layout']}, threshold {det.config.threshold:.2f}")
        if not any(e.kind == "fall" for e in events):
            if not info.get("frames_with_person"):
                print("no falls detected: no person was seen in any frame (every joint missing)")
            elif not info.get("windows_scored"):  # a 0.13 s clip printed a plain "no falls detected"
                print(f"nothing could be checked (the input is {info['duration_s']:.2f} s; see the warning above)")
            else:
                print("no falls detected" + (" in the part checked" if cut else ""))
        for e in events:
            say(e)
        for w in info.get("not_up_at_end", []):  # the input ended before a still_down or a recovery was due
            share = "" if w["down_share"] is None else f", down in {w['down_share']:.0%} of the frames judged since"
            print(f"at the end: track {w['track_id']} not seen up again "
                  f"({info['duration_s'] - w['fall_time']:.1f} s after its alert{share})")
    if cut:  # "no falls detected", exit 0, after 1.5 s of a 10 s video
        print(f"interrupted ({stop_name()}): only the first {info['duration_s']:.2f} s of {shown} were checked",
              file=sys.stderr)
        return 143 if stop_name() == "SIGTERM" else 130
    # a monitoring script reads exit 0 as "checked, no fall": a file that stopped decoding part-way, or one in
    # which nothing could be checked, is not that
    if info.get("truncated"):
        print(f"error: {shown}: {info['truncated']}; only the first {info['duration_s']:.2f} s were checked",
              file=sys.stderr)
        return 2
    skeleton = Path(str(args.source)).suffix.lower() in {".npy", ".pkl", ".pickle"}
    if skeleton and not info.get("frames_with_person") and not info.get("interrupted"):
        # an empty room on video is an answer; a skeleton file with no joint anywhere is a failed extraction,
        # and exit 0 read as "checked, no fall" (probe)
        print(f"error: {shown}: no joint seen in any frame: nothing could be checked", file=sys.stderr)
        return 2
    if info.get("frames_with_person") and not info.get("windows_scored") and not info.get("interrupted"):
        print(f"error: {shown}: nothing could be checked ({info['duration_s']:.2f} s with a person; the detector "
              f"needs {det.config.min_window_s:g} s)", file=sys.stderr)
        return 2
    return 0


def event_line(e, falls: list) -> str:  # noqa: ANN001 - a FallEvent
    """One printed line per event. ``falls`` holds the track ids of the falls printed so far, in order: a fall
    gets the next number, a follow-up names the latest fall of its track."""
    if e.kind == "fall":
        falls.append(e.track_id)
        return (f"fall {len(falls)}: track {e.track_id}  start {e.start_time:6.2f} s  detected {e.detected_time:6.2f} s  "
                f"confidence {e.confidence:.3f}")
    n = max((i + 1 for i, t in enumerate(falls) if t == e.track_id), default=None)
    of = f" (fall {n})" if n else ""
    if e.kind == "still_down":
        seen = (f"down in {e.confidence:.0%} of the frames it was judged in since" if e.confidence > 0
                else "not seen down since: not seen, or too little of the body seen")
        return (f"still down{of}: track {e.track_id}  {e.detected_time - e.start_time:g} s after the alert, at "
                f"{e.detected_time:.2f} s ({seen})")
    return f"up again{of}: track {e.track_id}  from {e.start_time:.2f} s, confirmed at {e.detected_time:.2f} s"


def _rounded(doc: Any, key: str = "") -> Any:
    """The printed JSON's floats as `tag` writes them: times (``*_time``, ``*_s``) to the millisecond, scores and
    shares to 4 decimals (``"fall_time": 4.111111111111111`` was printed; the service keeps full precision)."""
    if isinstance(doc, dict):
        return {k: _rounded(v, str(k)) for k, v in doc.items()}
    if isinstance(doc, (list, tuple)):
        return [_rounded(v, key) for v in doc]
    if isinstance(doc, float):
        return round(doc, 3 if key.endswith(("_time", "_s")) else 4)
    return doc
