"""``actionpose extract``: videos -> canonical skeleton pickle (thin: parse, call the library, print)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("extract", help="detect, estimate and track 2D poses in videos; write a skeleton pickle")
    p.add_argument("source", help="video file, folder of videos, stream URL (rtsp://, http://) or webcam index")
    p.add_argument("-o", "--out", required=True, help="output pickle (canonical PYSKL format)")
    p.add_argument("--frontend", default="default", help="frontend name (see `actionpose frontends`); default: "
                   "rtmdet-nano+movenet, vendored, offline")
    p.add_argument("--render", help="also write an overlay video with skeletons and track IDs")
    p.add_argument("--max-persons", type=int, help="keep at most N persons (tracks) per video")
    p.add_argument("--fps", type=float, help="resample to this frame rate")
    p.add_argument("--layout", help="map keypoints into this layout (e.g. body13); default: the model's own")
    p.add_argument("--det-every", type=int, default=1, help="run the detector every N frames (boxes from "
                   "keypoints in between; faster); 0: only while nobody is followed")
    p.add_argument("--det-size", type=int, help="detector input size (RTMDet only; default 320)")
    p.add_argument("--pose-model", help="offline: ONNX file for the frontend's pose model")
    p.add_argument("--det-model", help="offline: ONNX file for the frontend's detector")
    p.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads (default 2)")
    p.add_argument("--max-frames", type=int, help="stop after N frames per source (streams, webcams)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    from actionpose.distributed.cli import add_arguments as add_ray_arguments  # --ray, --workers, --ray-address

    add_ray_arguments(p)
    p.set_defaults(func=run)
    l = sub.add_parser("frontends", help="list the pose frontends and their models")
    l.set_defaults(func=list_frontends)


def run(args: argparse.Namespace) -> int:
    from actionpose.errors import ActionposeError
    from actionpose.data.atomic import check_output_file
    from actionpose.pose import extract

    check_output_file(args.out, "--out", inputs=(args.source,))  # `-o clip.mp4` replaced the video
    check_output_file(args.render, "--render", inputs=(args.source,))
    from actionpose.render.video_file import check_video_suffix

    if args.render and Path(args.render).suffix:  # no suffix: written as .mp4 (see below)
        check_video_suffix(args.render, "--render")
    if args.max_persons is not None and args.max_persons < 1:
        raise ActionposeError(f"--max-persons must be >= 1, got {args.max_persons}")
    if args.det_every < 0:  # 0 is documented (MediaPipe's rule) and the library takes it; the CLI refused it
        raise ActionposeError(f"--det-every must be >= 0 (1: the detector on every frame; 0: only while nobody is "
                              f"followed), got {args.det_every}")
    if args.max_frames is not None and args.max_frames < 1:
        raise ActionposeError(f"--max-frames must be >= 1, got {args.max_frames}")
    if args.ray:
        from actionpose.distributed.cli import run_ray

        return run_ray(args)
    ds = extract(args.source, args.out, frontend=args.frontend, fps=args.fps, max_persons=args.max_persons,
                 render=args.render, progress=not args.quiet, layout=args.layout, max_frames=args.max_frames,
                 det_every=args.det_every, det_size=args.det_size, pose_model=args.pose_model,
                 det_model=args.det_model, threads=args.threads)
    for a in ds.annotations:
        m, t = a["keypoint"].shape[:2]
        stop = f", stopped at frame {a['stopped_at']}" if "stopped_at" in a else ""
        print(f"{a['frame_dir']}: {t} frames, {len(a['track_ids'])} persons (tracks {a['track_ids']}), "
              f"{a['fps']:.2f} fps{stop}")
    render = "" if not args.render else (f"; overlay {args.render}" if len(ds) == 1 else
                                          f"; one overlay per video beside {args.render} "
                                          f"({Path(args.render).stem}.<video>{Path(args.render).suffix or '.mp4'})")
    skipped = ds.meta.get("skipped", [])
    print(f"wrote {args.out} ({len(ds)} videos, layout {ds.layout})" + render
          + (f"; {len(skipped)} unreadable video(s) skipped" if skipped else ""))
    cut = [a["frame_dir"] for a in ds.annotations if "stopped_at" in a]
    if cut:  # as `tag` and `fall` on a truncated video: the part before the cut is kept, the exit code says so
        print(f"error: {', '.join(cut)}: stopped before the end (decode failed); {args.out} holds the part before it "
              "(marked: `tag` reports it as partial)", file=sys.stderr)
    return 2 if skipped or cut else 0  # as `tag` on a folder: the readable ones are written, the exit code says not all


def list_frontends(args: argparse.Namespace) -> int:
    from actionpose.pose.frontend import ALIASES, list_frontends as _list
    from actionpose.pose.zoo import availability, get_model

    rows = []
    for s in _list():
        alias = [a for a, n in ALIASES.items() if n == s.name]
        states = {availability(get_model(s.detector), "det"), availability(get_model(s.pose), "pose")}
        # the weaker of the two models decides ("vendored" + "found" is found, anything + "needs" needs)
        order = ["needs a file (no official ONNX)", "downloads on first use", "given (env)", "found", "vendored"]
        rows.append((s.name, f"({', '.join(alias)})" if alias else "", min(states, key=order.index), s.description))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(f"{r[i]:{widths[i]}s}" for i in range(3)) + "  " + r[3])
    return 0
