"""``actionpose eval``: top-1/top-5/mean class accuracy, per-class accuracy and a confusion-matrix PNG.

The model may be a training checkpoint (run in PyTorch), an exported ``.onnx`` / shipped name
(run in onnxruntime) or an ensemble YAML; all share the same preprocessing code.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from actionpose.data.atomic import atomic_path
from actionpose.data.datamodule import samples_for, validation_slice
from actionpose.data.format import load_dataset
from actionpose.data.transforms import PreprocessConfig
from actionpose.errors import ActionposeError
from actionpose.inference.predictor import empty_sequences, load_predictor, predict_sequences
from actionpose.skeleton.registry import missing_joints, name_list
from actionpose.skeleton import can_map


class TorchPredictor:
    """A checkpoint behind the predictor interface (``predict_sequences``), for eval before export."""

    def __init__(self, path: str | Path, threads: int | None = None, device: str = "cpu"):
        from actionpose.training.checkpoint import load_checkpoint

        if threads:
            torch.set_num_threads(int(threads))
        self.model, self.meta, self.train_config = load_checkpoint(path)
        self.device = torch.device(device)
        self.model.to(self.device)
        self.path = Path(path)
        self.classes = list(self.meta["classes"])
        self.num_classes = len(self.classes)
        self.coords = int(self.meta["coords"])
        self.config = PreprocessConfig.from_meta(self.meta)
        self.layout = self.config.layout

    def run_clips(self, clips: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.model(torch.from_numpy(np.ascontiguousarray(clips)).to(self.device)).cpu().numpy()

    def predict_sequences(self, sequences, batch_size: int = 64, empty: str = "refuse") -> np.ndarray:
        return predict_sequences(self, sequences, batch_size, empty)


def open_model(path: str | Path, threads: int | None = None):
    p = str(path)
    if p.endswith((".ckpt", ".pt", ".pth")):
        return TorchPredictor(p, threads)
    return load_predictor(p, threads)


def class_index_map(data_classes: list[str], model_classes: list[str], used: set[int], data_path: Any,
                    model_path: Any) -> dict[int, int]:
    """Dataset label -> model output index, matched by class *name*.

    Why: a test set whose class list is ordered differently from the training set's (or lacks a class)
    is normal for a held-out CSV; matching by position would score it against the wrong classes without
    a word. A class the model does not know cannot be scored and is refused."""
    index = {c: i for i, c in enumerate(model_classes)}
    unknown = sorted({data_classes[u] for u in used if data_classes[u] not in index})
    if unknown:
        shown = ", ".join(repr(c) for c in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        raise ActionposeError(f"{data_path}: class(es) {shown} are not among model {model_path}'s "
                              f"{len(model_classes)} classes ({', '.join(model_classes[:10])}"
                              f"{' ...' if len(model_classes) > 10 else ''}); classes are matched by name")
    return {u: index[data_classes[u]] for u in used}


def metrics_from_probs(probs: np.ndarray, labels: np.ndarray, num_classes: int) -> dict[str, Any]:
    pred = probs.argmax(1)
    k = min(5, probs.shape[1])
    topk = np.argsort(-probs, axis=1)[:, :k]
    conf = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(conf, (labels, pred), 1)
    support = conf.sum(1)
    per_class = np.where(support > 0, np.diag(conf) / np.maximum(support, 1), np.nan)
    return {"top1": float((pred == labels).mean()), "top5": float((topk == labels[:, None]).any(1).mean()),
            "mean_class_acc": float(np.nanmean(per_class)), "n": int(len(labels)),
            "per_class": per_class, "confusion": conf}


def plot_confusion(conf: np.ndarray, classes: list[str], out: str | Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(classes)
    norm = conf / np.maximum(conf.sum(1, keepdims=True), 1)
    size = max(5.0, 0.45 * n + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), classes, rotation=90, fontsize=8)
    ax.set_yticks(range(n), classes, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if conf[i, j]:
                    ax.text(j, i, str(conf[i, j]), ha="center", va="center", fontsize=6,
                            color="white" if norm[i, j] > 0.5 else "black")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return out


def evaluate(model_path: str | Path, data_path: str | Path, split: str = "test", out_dir: str | Path | None = None,
             threads: int | None = None, model=None, val_fraction: float = 0.1, seed: int = 0,
             train_split: str = "train") -> dict[str, Any]:
    """Evaluate on ``split``; writes ``<out_dir>/per_class.json`` and ``confusion.png`` when ``out_dir`` is set.

    ``split="val"`` on a dataset without a ``val`` split scores the validation slice that training carves
    from ``train_split`` (``data.val_fraction``, ``seed`` of the run's config): model and ensemble choices
    can then be made on the clips the runs validated on, never on test."""
    model = model or open_model(model_path, threads)
    ds = load_dataset(data_path)
    if ds.layout != model.layout and not can_map(ds.layout, model.layout):  # both files named, not only the layouts
        raise ActionposeError(f"{data_path}: its layout {ds.layout!r} cannot be mapped to the layout {model.layout!r} "
                              f"of {model_path} by joint names (none for {name_list(missing_joints(ds.layout, model.layout))})")
    if split == "val" and "val" not in ds.split:
        if not 0 < val_fraction < 1:
            raise ActionposeError(f"--val-fraction: {val_fraction} must be between 0 and 1 (exclusive)")
        if train_split not in ds.split:
            raise ActionposeError(f"{data_path}: no split {train_split!r} to carve the validation slice from "
                                  f"(splits: {', '.join(sorted(ds.split))})")
        samples = validation_slice(samples_for(ds, train_split, model.layout), val_fraction, seed)[1]
    else:
        ds.require_split(split, data_path)  # named here: subset() alone does not know the file
        samples = samples_for(ds, split, model.layout)  # refuses an unmappable layout, naming both
    if not samples:
        raise ActionposeError(f"{data_path}: split {split!r} has no samples"
                              + (" (no class of the training split has 2 or more)" if split == "val" else ""))
    to_model = class_index_map(ds.classes, model.classes, {s.label for s in samples}, data_path, model_path)
    coords = {int(s.keypoint.shape[-1]) for s in samples}
    if coords != {model.coords}:
        raise ActionposeError(f"{data_path}: samples have {sorted(coords)} coordinates, model {model_path} expects "
                              f"{model.coords}")
    seqs = [(s.keypoint, s.score) for s in samples]
    probs = model.predict_sequences(seqs, empty="score")  # every test sample counts, as in the published protocols
    labels = np.array([to_model[s.label] for s in samples])
    res = metrics_from_probs(probs, labels, len(model.classes))
    empty = empty_sequences(seqs)
    res["notes"] = [f"{len(empty)} sample(s) have no joint seen in any frame (e.g. {samples[empty[0]].name!r}); they "
                    "are scored as given, and their prediction means nothing"] if empty else []
    if split == "all" and ds.split.get(train_split):  # a number that includes the training samples is no test score
        res["notes"].append(f"split 'all' includes the {len(ds.split[train_split])} '{train_split}' samples a model "
                            "may have trained on: not a test score")
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        per_class = {c: (None if np.isnan(a) else round(float(a), 4)) for c, a in zip(model.classes, res["per_class"])}
        with atomic_path(out_dir / "per_class.json") as tmp:
            tmp.write_text(json.dumps({"per_class_acc": per_class, "confusion": res["confusion"].tolist(),
                                       "classes": model.classes}, indent=1))
        res["confusion_png"] = str(plot_confusion(res["confusion"], model.classes, out_dir / "confusion.png",
                                                  f"{Path(str(model_path)).name} on {Path(data_path).name}:{split} "
                                                  f"top1={res['top1']:.4f}"))
        res["per_class_json"] = str(out_dir / "per_class.json")
    return res

