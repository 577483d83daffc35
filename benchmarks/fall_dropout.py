"""How does the fall detector hold up when joints flicker in and out frame by frame?

Why: a real pose estimator loses single joints for a frame or two all the time (a wrist behind the body, an
ankle in shadow). The fall model's training hides whole joint groups for stretches (``fall_train.occlude``),
not scattered single joints, so this measures what scattered dropout costs: each frame, each joint is hidden
(score 0) with probability ``p``, independently, on top of what the estimator already missed.

Sets: URFD MoveNet (30 falls, 40 everyday clips; the shipped model's training videos, so in-sample: read the
change from p = 0, not the absolute numbers) and ``fall_video_1``'s independent skeleton. Each clip is streamed
through ``FallDetector.update_many`` in 1 s chunks; a fall clip counts as found with at least one ``fall`` event,
an everyday clip as a false alarm with any.

Usage: python benchmarks/fall_dropout.py [--shared ../shared] [--seeds 3] [--levels 0 0.05 0.1 0.2]
"""
from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

from actionpose.data.importers import convert
from actionpose.inference.fall import FallDetector
from actionpose.inference.fall_train import sequences_from


def falls(det: FallDetector, kp: np.ndarray, sc: np.ndarray, fps: float) -> int:
    det.reset()
    frames = [({0: np.concatenate([kp[i], sc[i][:, None]], -1)}, i / fps) for i in range(len(kp))]
    step = max(1, int(round(fps)))
    return sum(e.kind == "fall" for lo in range(0, len(frames), step) for e in det.update_many(frames[lo:lo + step]))


def dropped(sc: np.ndarray, p: float, rng: np.random.Generator) -> np.ndarray:
    return np.where(rng.random(sc.shape) < p, np.float32(0), sc).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", default=str(Path(__file__).resolve().parents[2] / "shared"))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--levels", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.2])
    args = ap.parse_args()
    warnings.simplefilter("ignore")  # clips with a hidden hip trigger input advice
    data = Path(args.shared) / "datasets"
    det = FallDetector.from_pretrained("fall", layout="body13", threads=1)
    seqs = sequences_from(convert("urfd_movenet", data / "urfd_movenet13" / "urfd_movenet13_npy.tar.gz"))
    fall_seqs, adl = [s for s in seqs if s.is_fall], [s for s in seqs if not s.is_fall]
    skel = np.load(Path(args.shared) / "videos" / "fall_skeleton_1.npy")
    skel_sc = ((skel[..., 0] > 0) & (skel[..., 1] > 0)).astype(np.float32)
    video = FallDetector.from_pretrained("fall", layout="coco17", threads=1)
    print(f"| joints hidden per frame | URFD MoveNet falls found (of {len(fall_seqs)} x {args.seeds} seeds) | "
          f"false alarms (of {len(adl)} everyday clips x {args.seeds}) | fall_video_1 found (of {args.seeds}) |")
    print("|---|---|---|---|")
    for p in args.levels:
        found = alarms = video_found = 0
        for seed in range(args.seeds):
            rng = np.random.default_rng(seed)
            for s in fall_seqs:
                found += falls(det, s.kp, dropped(s.sc, p, rng), 1 / float(np.median(np.diff(s.times)))) > 0
            for s in adl:
                alarms += falls(det, s.kp, dropped(s.sc, p, rng), 1 / float(np.median(np.diff(s.times)))) > 0
            video_found += falls(video, skel, dropped(skel_sc, p, rng), 18.0) > 0
        print(f"| {p:.0%} | {found} | {alarms} | {video_found} |", flush=True)


if __name__ == "__main__":
    main()
