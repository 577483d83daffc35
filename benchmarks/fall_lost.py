"""A person lost from view: held-out URFD streams cut short, then frames showing nobody.

Each fold model of a finished ``fall_train`` CV folder streams its own held-out URFD clips through
``FallDetector`` (that CV run's calibrated threshold and debounce), cut at every ``--step`` seconds: the frames
after the cut show nobody (an empty frame) for ``--empty`` seconds at the clip's rate, as a pose estimator that
lost the person would send. Run once as the CV run's detector is, and once per ``--hold`` value of
``FallConfig.hold_lost_s`` (the person's last pose held while they are missing).

* falls: cuts from the first "falling" frame to the clip's end; found = a fall event within the fall's span
  (-1 s, +4 s), reported by where the cut is relative to landing (the first "lying" frame);
* false alarms: every non-fall clip's cuts from 1.0 s to its end, and every fall clip's cuts from 1.0 s to
  0.25 s before its "falling" label starts: a cut-run with any fall event is a false alarm;
* clean: the uncut clips with no empty frames after them (``score_events``, as the CV report counts).

Usage: python benchmarks/fall_lost.py CV_FOLDER [--hold 1.0 ...] [--step 0.25] [--empty 3] [--json]
Declared in docs/history/fall-log.md before the first run.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from actionpose.inference.fall import FallConfig, FallDetector, OnnxFallScorer
from actionpose.inference.fall_train import Sequence, score_events

BINS = [(-np.inf, 0.0, "before landing"), (0.0, 0.25, "0-0.25 s after"), (0.25, 0.5, "0.25-0.5 s"),
        (0.5, 0.75, "0.5-0.75 s"), (0.75, 1.0 + 1e-6, "0.75-1.0 s"), (1.0 + 1e-6, np.inf, "> 1 s")]


def run(det: FallDetector, s: Sequence, cut: int | None, empty_s: float) -> list:
    """Events of ``s`` streamed up to frame ``cut`` (None: all), then ``empty_s`` of frames showing nobody."""
    det.reset()
    n = len(s.kp) if cut is None else cut
    frames = [({1: np.concatenate([s.kp[i], s.sc[i][:, None]], -1)}, float(s.times[i])) for i in range(n)]
    if cut is not None and empty_s > 0:
        dt = float(np.median(np.diff(s.times)))
        frames += [({}, float(s.times[n - 1]) + (j + 1) * dt) for j in range(int(round(empty_s / dt)))]
    events = []
    for lo in range(0, len(frames), 64):
        events += det.update_many(frames[lo:lo + 64])
    return [e for e in events if e.kind == "fall"]


def cuts(s: Sequence, lo: float, hi: float, step: float) -> list[int]:
    """Frame counts ending at each ``step`` from ``lo`` to ``hi`` seconds (inclusive) of the clip."""
    out = []
    t = lo
    while t <= hi + 1e-6:
        n = int(np.searchsorted(s.times, s.times[0] + t, side="right"))
        if 2 <= n <= len(s.times) and (not out or n > out[-1]):
            out.append(n)
        t += step
    return out


def evaluate(cv: Path, report: dict, cfg: FallConfig, seqs: list[Sequence], step: float, empty_s: float) -> dict:
    found = {b[2]: [0, 0] for b in BINS}  # bin -> [found, runs]
    fa_runs = fa = 0
    clean_seqs, clean_events = [], []
    for row in report["folds"]:
        k = row["fold"]
        det = FallDetector(OnnxFallScorer(cv / f"cv{k}" / f"fall_cv{k}.onnx", threads=1), cfg, layout="body13")
        for s in (s for s in seqs if s.fold == k):
            clean_seqs.append(s)
            clean_events.append(run(det, s, None, 0.0))
            t0 = float(s.times[0])
            span = s.fall_span()
            if span is None:
                for n in cuts(s, 1.0, float(s.times[-1]) - t0, step):
                    fa_runs += 1
                    fa += bool(run(det, s, n, empty_s))
                continue
            for n in cuts(s, 1.0, span[0] - t0 - 0.25, step):
                fa_runs += 1
                fa += bool(run(det, s, n, empty_s))
            lying = np.flatnonzero(s.labels == 2)
            land = float(s.times[lying[0]]) if len(lying) else span[1]
            for n in cuts(s, span[0] - t0, float(s.times[-1]) - t0, step):
                rel = float(s.times[n - 1]) - land
                b = next(name for lo, hi, name in BINS if lo <= rel < hi)
                evs = run(det, s, n, empty_s)
                found[b][1] += 1
                found[b][0] += any(span[0] - 1.0 <= e.detected_time <= span[1] + 4.0 for e in evs)
    sc = score_events(clean_seqs, clean_events)
    return {"found_by_cut": found, "false_alarm_runs": fa, "non_fall_runs": fa_runs,
            "clean": {"falls": sc.falls, "found": sc.found, "false_alarms": sc.false_alarms}}


def main() -> None:
    from fall_occlusion import load_cv, urfd_parser  # the benchmarks folder is on the path when a script in it runs

    p = urfd_parser(__doc__.splitlines()[0])
    p.add_argument("--hold", type=float, nargs="*", default=[1.0], help="hold_lost_s values to run beside the CV's")
    p.add_argument("--step", type=float, default=0.25)
    p.add_argument("--empty", type=float, default=3.0)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    report, base, seqs = load_cv(a)
    results = {}
    for hold in [base.hold_lost_s] + [h for h in a.hold if h != base.hold_lost_s]:
        cfg = dataclasses.replace(base, hold_lost_s=hold)
        cfg.validate()
        results[f"hold_lost_s={hold:g}"] = evaluate(a.cv, report, cfg, seqs, a.step, a.empty)
    if a.json:
        print(json.dumps(results, indent=1))
        return
    names = list(results)
    print("| cut-runs (held-out URFD, fold models) | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for _, _, b in BINS:
        print(f"| falls found, cut {b} | " + " | ".join(
            f"{r['found_by_cut'][b][0]}/{r['found_by_cut'][b][1]}" for r in results.values()) + " |")
    print("| false-alarm runs (non-fall cuts) | " + " | ".join(
        f"{r['false_alarm_runs']}/{r['non_fall_runs']}" for r in results.values()) + " |")
    print("| clean uncut streams: falls found, false alarms | " + " | ".join(
        f"{r['clean']['found']}/{r['clean']['falls']}, {r['clean']['false_alarms']}" for r in results.values()) + " |")


if __name__ == "__main__":
    main()
