"""Occlusion stress test for the fall model, on cross-validated held-out streams.

Each fold model of a finished ``fall_train`` CV folder streams its own held-out URFD sequences through
``FallDetector`` (the calibrated threshold and debounce of that CV run), clean and with a body13 joint
group hidden for the whole sequence (score 0 and coordinates (0, 0), as a frontend reports a joint it
did not find): the head (hood, turned away), the arms, the legs, the lower legs (behind a bed).

``--flicker 0.1 0.2`` adds conditions where each joint of each frame is lost independently at that rate
(score 0 only, as ``benchmarks/fall_dropout.py`` does), seeded per sequence, so two CV folders see the same
dropout.

Usage: python benchmarks/fall_occlusion.py CV_FOLDER [--movenet TAR] [--alphapose DIR] [--flicker P ...] [--json]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from actionpose.data.importers import convert
from actionpose.inference.fall import FallConfig, FallDetector, OnnxFallScorer
from actionpose.inference.fall_train import score_events, sequences_from

HIDDEN = {"clean": (), "head": (0,), "arms": (3, 4, 5, 6), "legs": (9, 10, 11, 12), "lower legs": (11, 12)}


def urfd_parser(description: str) -> argparse.ArgumentParser:
    """The arguments every held-out URFD benchmark takes: the CV folder and the two URFD sources."""
    shared = Path(__file__).resolve().parents[2] / "shared" / "datasets"
    p = argparse.ArgumentParser(description=description)
    p.add_argument("cv", type=Path)
    p.add_argument("--movenet", type=Path, default=shared / "urfd_movenet13" / "urfd_movenet13_npy.tar.gz")
    p.add_argument("--alphapose", type=Path, default=shared / "urfd_falls13")
    return p


def load_cv(a: argparse.Namespace) -> tuple[dict, FallConfig, list]:
    """The CV run's report, its detector settings, and every URFD sequence (each knows its fold)."""
    report = json.loads((a.cv / "cv_report.json").read_text())
    seqs = sequences_from(convert("urfd_movenet", a.movenet)) + sequences_from(convert("urfd", a.alphapose))
    return report, FallConfig.from_dict(report["detector"]), seqs


def main() -> None:
    p = urfd_parser(__doc__.splitlines()[0])
    p.add_argument("--flicker", type=float, nargs="*", default=[], help="per-frame joint dropout rates to add")
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    report, cfg, seqs = load_cv(a)
    rows = {}
    conditions: dict = {**HIDDEN, **{f"flicker {r:.0%}": r for r in a.flicker}}
    for cond, group in conditions.items():
        all_seqs, all_events = [], []
        for row in report["folds"]:
            k = row["fold"]
            det = FallDetector(OnnxFallScorer(a.cv / f"cv{k}" / f"fall_cv{k}.onnx", threads=1), cfg, layout="body13")
            for i, s in ((i, s) for i, s in enumerate(seqs) if s.fold == k):
                kp, sc = s.kp.copy(), s.sc.copy()
                if isinstance(group, float):  # scattered: the same draws for every CV folder
                    rng = np.random.default_rng(i)
                    sc = np.where(rng.random(sc.shape) < group, np.float32(0), sc).astype(np.float32)
                else:
                    kp[:, list(group)], sc[:, list(group)] = 0.0, 0.0
                all_seqs.append(s)
                all_events.append(det.run_sequence(kp, s.times, sc, layout="body13"))
        r = score_events(all_seqs, all_events).row()
        rows[cond] = {k: r[k] for k in ("falls", "found", "events", "false_alarms", "recall", "precision")}
        if not a.json:
            print(f"{cond:11s} falls {r['found']}/{r['falls']} found, {r['false_alarms']} false alarms "
                  f"(recall {r['recall']:.3f}, precision {r['precision']:.3f})", flush=True)
    if a.json:
        print(json.dumps({"threshold": cfg.threshold, "conditions": rows}))


if __name__ == "__main__":
    main()
