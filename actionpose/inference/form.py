"""Push-up form feedback: a correct/wrong ST-GCN (shared trainer) judged per clip and per repetition.

    python -m actionpose.inference.form train PUSHUP.pkl OUT_DIR      # 5-fold CV + fold-0 ONNX
    python -m actionpose.inference.form eval PUSHUP.pkl MODEL.onnx     # per-clip and per-rep accuracy on fold 0

``PUSHUP.pkl`` comes from ``actionpose datasets convert --format pushup`` (stratified 5-fold splits
``fold0``..``fold4``). Per-repetition judgement: :class:`RepCounter` (push_up) cuts the clip into
reps, and the classifier scores each rep's frames on their own.
"""
from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from typing import Sequence
from pathlib import Path

import numpy as np

from actionpose.errors import ActionposeError, where

FORM_MODEL = Path(__file__).resolve().parents[1] / "assets" / "models" / "pushup_form.onnx"
MIN_REP_FRAMES = 8

# Small on purpose: 2 shared CPU cores, 265 clips. 4 ST-GCN stages of 16-32 channels on body13.
FORM_CONFIG = {
    "data": {"path": None, "val_fraction": 0.1, "layout": "body13"},
    "preprocess": {"clip_len": 32, "test_clips": 2, "max_persons": 1, "with_score": True},
    "model": {"name": "stgcn", "base_channels": 16, "num_stages": 4, "inflate_stages": [3], "down_stages": [3]},
    "optim": {"epochs": 20, "batch_size": 32, "lr": 0.05},
    "trainer": {"progress_bar": False, "export_onnx": False},
    "mlflow": {"enabled": False},
}


def train_cv(pkl: str | Path, out_dir: str | Path, folds: int = 5, epochs: int | None = None) -> dict:
    """Stratified k-fold CV with the shared trainer; fold 0's model is exported to ONNX (shipped)."""
    from actionpose.data.format import SkeletonDataset, load_dataset
    from actionpose.training import make_config, train

    ds = load_dataset(pkl)
    out_dir = Path(out_dir)
    results = []
    for k in range(folds):
        if f"fold{k}" not in ds.split:
            raise where(pkl, f"no split fold{k}; convert with `actionpose datasets convert --format pushup`")
        test = ds.split[f"fold{k}"]
        train_names = [n for j in range(folds) if j != k for n in ds.split[f"fold{j}"]]
        fold_ds = SkeletonDataset(ds.annotations, ds.layout, ds.classes, {"train": train_names, "test": test}, ds.meta)
        cfg = json.loads(json.dumps(FORM_CONFIG))
        cfg["name"] = f"pushup_form_fold{k}"
        cfg["output"] = {"dir": str(out_dir / f"fold{k}")}
        cfg["trainer"]["export_onnx"] = k == 0
        if epochs:
            cfg["optim"]["epochs"] = epochs
        res = train(make_config(cfg), fold_ds)
        results.append({"fold": k, **{m: res.metrics.get(m) for m in ("test_top1", "test_mean_class_acc",
                                                                      "best_val_top1", "sec_per_epoch")},
                        "onnx": str(res.onnx_path) if res.onnx_path else None})
        print(json.dumps(results[-1]), flush=True)
    acc = [r["test_top1"] for r in results]
    summary = {"folds": results, "cv_top1_mean": float(np.mean(acc)), "cv_top1_std": float(np.std(acc)),
               "config": FORM_CONFIG}
    (out_dir / "cv.json").write_text(json.dumps(summary, indent=1))
    return summary


@dataclass(frozen=True)
class RepForm:
    start_s: float
    end_s: float
    label: str          # "correct" or "wrong"
    p_correct: float


@dataclass
class FormResult:
    label: str          # whole-clip judgement
    p_correct: float
    reps: list[RepForm]

    def to_dict(self) -> dict:
        return {"label": self.label, "p_correct": round(self.p_correct, 4), "reps": [asdict(r) for r in self.reps]}


class PushupFormJudge:
    """Judges push-up form for a whole clip and for each repetition the counter finds."""

    def __init__(self, model: str | Path = FORM_MODEL):
        from actionpose.inference.predictor import ActionPredictor

        if not Path(model).exists():
            raise where(model, "push-up form model not found")
        self.predictor = ActionPredictor.from_path(model)
        if "correct" not in self.predictor.classes:
            raise where(model, f"not a form model (classes {self.predictor.classes})")
        self._ci = self.predictor.classes.index("correct")

    def _p_correct(self, kp: np.ndarray, sc: np.ndarray | None) -> float:
        probs = self.predictor.predict(kp[None, None], None if sc is None else sc[None, None])
        return float(probs[0, self._ci])

    def judge(self, keypoints: np.ndarray, scores: np.ndarray | None = None, fps: float = 30.0,
              layout: str = "coco17", reps: Sequence[tuple[float, float]] | None = None) -> FormResult:
        """``keypoints [T, V, 2]`` in ``layout`` -> clip label + per-rep labels. The reps are ``(start_s,
        end_s)`` from the clip's first frame; by default the push-up ``RepCounter`` finds them (pass the
        ones a count already reported, so both name the same reps)."""
        from actionpose.inference.reps import RepCounter
        from actionpose.skeleton import map_keypoints

        kp = np.asarray(keypoints, dtype=np.float32)
        if kp.ndim != 3:
            raise ActionposeError(f"keypoints must be [T, V, C], got shape {kp.shape}")
        model_layout = self.predictor.config.layout
        k = map_keypoints(kp, layout, model_layout)
        s = None if scores is None else map_keypoints(np.asarray(scores, np.float32)[..., None], layout,
                                                      model_layout)[..., 0]
        p = self._p_correct(k, s)
        if reps is None:
            try:
                reps = [(r.start_s, r.end_s) for r in RepCounter("push_up", layout=layout, fps=fps).count(kp, scores).reps]
            except ActionposeError:
                reps = []   # too short / joints unseen: clip-level judgement only
        judged = []
        for start, end in reps:
            a, b = max(0, int(start * fps)), int(np.ceil(end * fps)) + 1
            if b - a < MIN_REP_FRAMES:
                continue
            pr = self._p_correct(k[a:b], None if s is None else s[a:b])
            judged.append(RepForm(round(start, 3), round(end, 3), "correct" if pr >= 0.5 else "wrong", round(pr, 4)))
        return FormResult("correct" if p >= 0.5 else "wrong", p, judged)


def evaluate(pkl: str | Path, model: str | Path, split: str = "fold0") -> dict:
    """Per-clip and per-repetition accuracy on ``split`` (each rep inherits its clip's label)."""
    from actionpose.data.format import load_dataset

    ds = load_dataset(pkl)
    judge = PushupFormJudge(model)
    clip_ok, rep_ok, reps_per_clip, clips_with_reps = [], [], [], 0
    for ann in ds.subset(split):
        truth = ds.classes[int(ann["label"])]
        res = judge.judge(ann["keypoint"][0], ann.get("keypoint_score", [None])[0], layout=ds.layout)
        clip_ok.append(res.label == truth)
        reps_per_clip.append(len(res.reps))
        clips_with_reps += bool(res.reps)
        rep_ok += [r.label == truth for r in res.reps]
    return {"split": split, "clips": len(clip_ok), "clip_accuracy": float(np.mean(clip_ok)),
            "reps": len(rep_ok), "rep_accuracy": float(np.mean(rep_ok)) if rep_ok else None,
            "clips_with_reps": clips_with_reps, "mean_reps_per_clip": float(np.mean(reps_per_clip))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="push-up form classifier: train (CV) / evaluate")
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("pkl")
    t.add_argument("out_dir")
    t.add_argument("--epochs", type=int)
    t.add_argument("--folds", type=int, default=5)
    e = sub.add_parser("eval")
    e.add_argument("pkl")
    e.add_argument("model", nargs="?", default=str(FORM_MODEL))
    e.add_argument("--split", default="fold0")
    a = ap.parse_args(argv)
    try:
        out = train_cv(a.pkl, a.out_dir, a.folds, a.epochs) if a.cmd == "train" else evaluate(a.pkl, a.model, a.split)
    except ActionposeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps({k: v for k, v in out.items() if k != "config"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
