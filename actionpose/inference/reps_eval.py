"""Counting evaluation: RepCount metrics (MAE, OBO) on repcount_dev and on our Penn Action count set.

    python -m actionpose.inference.reps_eval repcount ../shared/datasets/repcount_dev [--auto] [--live]
    python -m actionpose.inference.reps_eval penn ../shared/datasets/penn_action data/rep_counts/penn_counts.csv

MAE is the mean of |pred - gt| / gt and OBO the fraction of videos with |pred - gt| <= 1, as in
TransRAC / PoseRAC. The exercise is given to the counter (``--auto`` lets it choose instead).
"""
from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from actionpose.data.importers.penn import penn_scores
from actionpose.errors import ActionposeError, where
from actionpose.inference.reps import RepCounter

# repcount_dev "action" -> our exercise name (None: not one of ours, counted with auto-selection)
REPCOUNT_ACTIONS = {"bench_pressing": "bench_press", "front_raise": "front_raise", "jump_jack": "jumping_jacks",
                    "pull_up": "pull_up", "push_up": "push_up", "situp": "sit_up", "squat": "squat",
                    "pommelhorse": None}
PENN_ACTIONS = {"pushup": "push_up", "squat": "squat", "situp": "sit_up", "pullup": "pull_up",
                "jumping_jacks": "jumping_jacks", "bench_press": "bench_press", "jump_rope": "jump_rope"}


@dataclass
class Item:
    name: str
    action: str
    exercise: str | None
    gt: int
    pred: int | None = None
    error: str = ""


def metrics(items: list[Item]) -> tuple[float, float]:
    """(MAE, OBO) over items; a failed prediction counts as 0 repetitions."""
    gt = np.array([i.gt for i in items], dtype=float)
    pred = np.array([i.pred or 0 for i in items], dtype=float)
    mae = float(np.mean(np.abs(pred - gt) / np.maximum(gt, 1)))
    obo = float(np.mean(np.abs(pred - gt) <= 1))
    return mae, obo


def load_repcount(root: Path) -> list[tuple[str, str, int, np.ndarray, np.ndarray]]:
    """(name, action, count, keypoints [T,33,2], scores [T,33]) per repcount_dev video."""
    npz, table = root / "poses_f16.npz", root / "counts.csv"
    for p in (npz, table):
        if not p.exists():
            raise where(p, "no such file (expected the repcount_dev dataset folder)")
    poses = np.load(npz)
    out = []
    with open(table, newline="") as f:
        for row in csv.DictReader(f):
            a = poses[row["name"]].astype(np.float32)
            kp = a[:, :99].reshape(-1, 33, 3)[..., :2]
            seen = np.abs(a[:, :99]).sum(1) > 0
            sc = np.repeat(seen[:, None], 33, 1).astype(np.float32)
            out.append((row["name"], row["action"], int(row["count"]), kp, sc))
    return out


def eval_repcount(root: Path, auto: bool = False, fps: float = 30.0, live: bool = False) -> list[Item]:
    """``live``: feed frames one by one to ``RepCounter.update`` and count the emitted events
    (videos whose action is not one of our exercises are skipped in that mode: it is slow)."""
    from actionpose.inference.reps_io import run_frames

    items = []
    for name, action, gt, kp, sc in load_repcount(root):
        ex = None if auto else REPCOUNT_ACTIONS.get(action)
        if live and REPCOUNT_ACTIONS.get(action) is None:
            continue
        it = Item(name, action, ex, gt)
        try:
            counter = RepCounter(ex, layout="blazepose33", fps=fps)
            if live:
                events: list = []
                run_frames(((i / fps, kp[i], sc[i]) for i in range(len(kp))), counter, name,
                           lambda _n, ev: events.append(ev))
                it.pred = len(events)
            else:
                it.pred = counter.count(kp, sc).count
        except ActionposeError as e:
            it.error = str(e)
        items.append(it)
    return items


def eval_penn(root: Path, table: Path, auto: bool = False, fps: float = 30.0) -> list[Item]:
    from actionpose.data.importers.common import read_mat

    items = []
    with open(table, newline="") as f:
        for row in csv.DictReader(f):
            path = root / "labels" / f"{row['clip']}.mat"
            if not path.exists():
                raise where(path, "no such file (Penn Action labels folder expected)")
            m = read_mat(path)
            kp = np.stack([m["x"], m["y"]], -1).astype(np.float32)
            vis = penn_scores(kp, np.asarray(m["visibility"], dtype=np.float32))  # the importer's own rule
            ex = None if auto else PENN_ACTIONS[row["action"]]
            it = Item(row["clip"], row["action"], ex, int(row["count"]))
            try:
                it.pred = RepCounter(ex, layout="penn13", fps=fps).count(kp, vis).count
            except ActionposeError as e:
                it.error = str(e)
            items.append(it)
    return items


def report(items: list[Item], out=sys.stdout) -> None:
    print("| action | videos | MAE | OBO |", file=out)
    print("|---|---|---|---|", file=out)
    for action in sorted({i.action for i in items}):
        sub = [i for i in items if i.action == action]
        mae, obo = metrics(sub)
        print(f"| {action} | {len(sub)} | {mae:.3f} | {obo:.3f} |", file=out)
    mae, obo = metrics(items)
    print(f"| **all** | {len(items)} | **{mae:.3f}** | **{obo:.3f}** |", file=out)
    errs = [i for i in items if i.error]
    for i in errs:
        print(f"  {i.name}: error: {i.error}", file=out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("which", choices=["repcount", "penn"])
    ap.add_argument("root", type=Path)
    ap.add_argument("table", type=Path, nargs="?", default=Path("data/rep_counts/penn_counts.csv"))
    ap.add_argument("--auto", action="store_true", help="let the counter pick the exercise")
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--live", action="store_true", help="repcount: count live update() events (slow)")
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per video")
    a = ap.parse_args(argv)
    try:
        items = (eval_repcount(a.root, a.auto, a.fps, a.live) if a.which == "repcount"
                 else eval_penn(a.root, a.table, a.auto, a.fps))
    except ActionposeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.verbose:
        for i in items:
            print(f"{i.name:14s} {i.action:15s} gt={i.gt:3d} pred={i.pred}")
    report(items)
    return 0


if __name__ == "__main__":
    sys.exit(main())
