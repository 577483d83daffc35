"""``actionpose extract DIR --ray``: the Ray branch of the extract command (parse -> library -> print)."""
from __future__ import annotations

import argparse

from actionpose.distributed.engine import ExtractOptions, extract_ray, print_progress
from actionpose.errors import ActionposeError


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("distributed (Ray)")
    g.add_argument("--ray", action="store_true", help="extract on Ray workers (one frontend per worker); "
                   "resumable: finished videos are kept in OUT.shards/ and skipped on a re-run")
    g.add_argument("--workers", type=int, default=2, help="Ray workers (actors, 1 CPU each; default 2)")
    g.add_argument("--ray-address", help="join this Ray cluster (default: $RAY_ADDRESS, else a local one)")


def run_ray(args: argparse.Namespace) -> int:
    if args.render:
        raise ActionposeError("--render is not supported with --ray (render one video without --ray)")
    if args.max_persons is not None and args.max_persons < 1:
        raise ActionposeError(f"--max-persons must be >= 1, got {args.max_persons}")
    opts = ExtractOptions(frontend=args.frontend, fps=args.fps, max_persons=args.max_persons, layout=args.layout,
                          max_frames=args.max_frames, det_every=args.det_every, det_size=args.det_size,
                          pose_model=args.pose_model, det_model=args.det_model)
    res = extract_ray(args.source, args.out, args.workers, opts, threads=args.threads, address=args.ray_address,
                      on_result=None if args.quiet else print_progress)
    fps = res.frames / res.seconds if res.seconds > 0 and res.frames else 0.0
    print(f"wrote {res.out} ({res.videos} videos; {res.extracted} extracted now, {res.skipped} already done, "
          f"{len(res.failures)} failed) in {res.seconds:.1f} s on {res.workers} Ray workers, {fps:.1f} frames/s")
    for f in res.failures:
        print(f"failed: {f['source']}: {f['error']}")
    return 2 if res.failures else 0  # as without --ray: the readable videos are written, the code says not all
