"""``actionpose demo``: the README's main job on the embedded default, offline.

Tags the bundled real video (two people, NTU RGB+D hugging clip) with the embedded pose frontend and
the shipped Penn Action model, prints who did what when, and writes JSON, CSV, overlay video and
timeline picture. No internet and no ``../shared`` needed.
"""
from __future__ import annotations

import argparse
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "assets"
DEMO_VIDEO = ASSETS / "videos" / "ntu_hug_640x360.mp4"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="tag the bundled video with the embedded default (offline)")
    p.add_argument("-o", "--output-dir", default="runs/demo", help="where outputs go (default runs/demo)")
    p.add_argument("--model", default="penn", help="shipped model name or .onnx path (default penn)")
    p.add_argument("--video", default=str(DEMO_VIDEO), help="video to tag (default: the bundled clip)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from actionpose.inference.tagger import tag_video

    from actionpose.data.atomic import check_output_dir

    out = Path(args.output_dir)
    check_output_dir(out, "--output-dir")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    paths = {k: out / f"tags.{k}" for k in ("json", "csv")}
    paths["render"], paths["timeline"] = out / "overlay.mp4", out / "timeline.png"
    print(f"tagging {args.video} with model {args.model!r} on the embedded pose frontend ...")
    try:
        from actionpose.inference.fall_tagging import is_fall_model, tag_falls

        if is_fall_model(args.model):  # the calibrated detector, as `tag --model fall` (was its raw classes:
            # "not_fall 0.00 - 2.40 s score 1.00")
            result = tag_falls(args.video, args.model, json=str(paths["json"]), csv=str(paths["csv"]),
                               timeline=str(paths["timeline"]), render=str(paths["render"]))
        else:
            result = tag_video(args.video, args.model, json=paths["json"], csv=paths["csv"], render=paths["render"],
                               timeline=paths["timeline"])
    except BaseException:  # a failed or interrupted demo leaves no empty output folder behind
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        raise
    print(result.summary())
    for kind, path in paths.items():
        print(f"  {kind:<8} {path}")
    return 0
