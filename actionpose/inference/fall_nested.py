"""Nested estimate of the calibrated fall threshold's held-out performance (no retraining).

The shipped threshold was chosen on the same out-of-fold streams it is reported on, so that report
is optimistic. Here each fold's threshold is chosen, with the same rule as
:func:`~actionpose.inference.fall_train.summarise` (within the false-alarm budget, best recall, lower
median of the tied band), on the *other* folds' recorded out-of-fold probabilities only, and then
applied to the held-out fold. The recorded probabilities (``cv{k}_stream_probs.npy`` of a
``fall_train`` run) are replayed through the streaming detector, so nothing is re-scored.

    python -m actionpose.inference.fall_nested runs/fall
"""
from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from actionpose.inference.fall import FallConfig
from actionpose.inference.fall_train import (RecordingScorer, Sequence, replay, score_events, sequences_from)

THRESHOLDS = np.round(np.arange(0.30, 0.991, 0.02), 2)  # the grid of fall_train.summarise


def _config(thr: float) -> FallConfig:
    base = FallConfig()
    return replace(base, threshold=float(thr), release=float(min(base.release, thr)))


def choose_threshold(pairs: list[tuple[RecordingScorer, list[Sequence]]], budget_per_hour: float) -> float:
    """fall_train's rule on the given folds: best recall within the budget, lower median of ties."""
    ok = []
    for thr in THRESHOLDS:
        seqs, events = [], []
        for rec, held in pairs:
            seqs += held
            events += replay(rec, held, _config(thr))
        s = score_events(seqs, events)
        if s.false_alarms_per_hour <= budget_per_hour + 1e-9:
            ok.append((s.recall, float(thr)))
    if not ok:
        return float(THRESHOLDS[-1])
    best = max(r for r, _ in ok)
    band = sorted(t for r, t in ok if r == best)
    return band[(len(band) - 1) // 2]


def nested(out: Path, movenet: Path, alphapose: Path, budget_per_hour: float | None = None) -> dict[str, Any]:
    from actionpose.data.importers import convert

    report = json.loads((out / "cv_report.json").read_text())
    budget = report["budget_false_alarms_per_hour"] if budget_per_hour is None else budget_per_hour
    seqs = sequences_from(convert("urfd_movenet", movenet)) + sequences_from(convert("urfd", alphapose))
    pairs = {}
    for row in report["folds"]:
        k = row["fold"]
        rec = RecordingScorer(None)
        rec.calls = list(np.load(out / f"cv{k}_stream_probs.npy", allow_pickle=True))
        pairs[k] = (rec, [s for s in seqs if s.fold == k])
    all_seqs, all_events, per_fold = [], [], []
    for k, (rec, held) in pairs.items():
        thr = choose_threshold([p for j, p in pairs.items() if j != k], budget)
        events = replay(rec, held, _config(thr))
        all_seqs += held
        all_events += events
        per_fold.append({"fold": k, "threshold": thr, **score_events(held, events).row()})
    by_source = {}
    for src in sorted({s.source for s in all_seqs}):
        idx = [i for i, s in enumerate(all_seqs) if s.source == src]
        by_source[src] = score_events([all_seqs[i] for i in idx], [all_events[i] for i in idx]).row()
    return {"budget_false_alarms_per_hour": budget, "shipped_threshold": report["threshold"],
            "events": score_events(all_seqs, all_events).row(), "events_by_source": by_source, "folds": per_fold}


def main(argv: list[str] | None = None) -> int:
    shared = Path(__file__).resolve().parents[3] / "shared" / "datasets"
    p = argparse.ArgumentParser(description="nested (threshold chosen on the other folds) fall-event estimate")
    p.add_argument("out", type=Path, help="a fall_train CV folder (cv_report.json + cv{k}_stream_probs.npy)")
    p.add_argument("--movenet", type=Path, default=shared / "urfd_movenet13" / "urfd_movenet13_npy.tar.gz")
    p.add_argument("--alphapose", type=Path, default=shared / "urfd_falls13")
    p.add_argument("--budget", type=float, default=None, help="false alarms per hour (default: the report's)")
    a = p.parse_args(argv)
    print(json.dumps(nested(a.out, a.movenet, a.alphapose, a.budget), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
