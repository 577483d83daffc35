"""Skeletons that are not a body: how often does a fall model alarm on them?

Four kinds of junk 64-frame coco17 windows at 30 fps (200 each, seed 12345, never used in training):
uniform noise in a 640x480 frame, noise around one point (sd 60 px), a static random arrangement of the
joints with 20 px jitter, and the same with 5 px jitter. Each is scored by every fold model of a finished
``fall_train`` CV folder (at that run's calibrated threshold) or by one model (``--model``, with its
sidecar threshold); the table is the share of windows at or above the threshold (a refused window counts as no alarm). A streamed check runs
too: one junk "person" (uniform noise) for 10 s at 30 fps through the detector, counting alarms.

Usage: python benchmarks/fall_junk.py (CV_FOLDER | --model fall) [--json]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from actionpose.errors import ActionposeError
from actionpose.inference.fall import FallConfig, FallDetector, OnnxFallScorer

KINDS = ("uniform 640x480", "noise around a point", "static + 20 px jitter", "static + 5 px jitter")


def junk(kind: str, rng: np.random.Generator, frames: int = 64) -> np.ndarray:
    if kind == KINDS[0]:
        return rng.uniform([0, 0], [640, 480], (frames, 17, 2))
    if kind == KINDS[1]:
        return rng.normal(300, 60, (frames, 17, 2))
    jitter = 20 if kind == KINDS[2] else 5
    return rng.normal(300, 60, (1, 17, 2)) + rng.normal(0, jitter, (frames, 17, 2))


def _alarm(det: FallDetector, w: np.ndarray) -> bool:
    """A refused window (the jitter gate: "not one tracked person") raises no alarm."""
    try:
        return det.predict(w, layout="coco17", fps=30).is_fall
    except ActionposeError:
        return False


def rates(det: FallDetector, n: int = 200, seed: int = 12345) -> dict[str, float]:
    out = {}
    for kind in KINDS:
        rng = np.random.default_rng(seed)
        wins = [junk(kind, rng).astype(np.float32) for _ in range(n)]
        out[kind] = float(np.mean([_alarm(det, w) for w in wins]))
    rng = np.random.default_rng(seed + 1)
    det.reset()
    alarms = sum(len(det.update({1: rng.uniform([0, 0], [640, 480], (17, 2)).astype(np.float32)}, i / 30,
                                layout="coco17")) for i in range(300))
    det.reset()
    out["streamed noise person, alarms in 10 s"] = alarms
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("cv", type=Path, nargs="?")
    p.add_argument("--model", help="one model (name or .onnx) instead of a CV folder's fold models")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    if a.model:
        dets = {a.model: FallDetector.from_pretrained(a.model, threads=1)}
    else:
        report = json.loads((a.cv / "cv_report.json").read_text())
        cfg = FallConfig.from_dict(report["detector"])
        dets = {f"fold {row['fold']}": FallDetector(OnnxFallScorer(a.cv / f"cv{row['fold']}" / f"fall_cv{row['fold']}.onnx",
                                                                   threads=1), cfg, layout="coco17")
                for row in report["folds"]}
    table = {name: rates(det) for name, det in dets.items()}
    if a.json:
        print(json.dumps({"threshold": next(iter(dets.values())).config.threshold, "models": table}))
        return
    thr = next(iter(dets.values())).config.threshold
    cols = list(next(iter(table.values())))
    print(f"share of junk windows at or above the threshold ({thr:.2f}); 200 windows per kind")
    print("| model | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for name, r in table.items():
        print(f"| {name} | " + " | ".join(f"{v:.0%}" if isinstance(v, float) else str(v) for v in r.values()) + " |")


if __name__ == "__main__":
    main()
