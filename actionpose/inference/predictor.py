"""ONNX Runtime action predictor: the one inference path every feature (tagging, falls) uses.

The exported ONNX file carries everything needed to reproduce training's preprocessing in its
metadata (``actionpose`` key, JSON: layout, classes, clip_len, num_clips, stream, norm,
max_persons, with_score), so a predictor is built from the file alone.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from actionpose.data.transforms import PreprocessConfig, preprocess
from actionpose.errors import ActionposeError, file_kind, where

META_KEY = "actionpose"
ASSETS = Path(__file__).resolve().parents[1] / "assets" / "models"
# Friendly names -> shipped files (actionpose/assets/models/<file>.onnx).
MODEL_ALIASES = {"penn": "penn_body13", "exercise": "penn_body13", "penn_body13": "penn_body13",
                 "nwucla": "nwucla_bone", "nwucla_bone": "nwucla_bone",
                 "nwucla_joint": "nwucla_ctr_joint", "nwucla_ctr_joint": "nwucla_ctr_joint",
                 "nwucla_view_joint": "nwucla_view_joint", "nwucla_joint_motion": "nwucla_joint_motion",
                 "nwucla_bone_motion": "nwucla_bone_motion",
                 "gestures": "utd_gestures", "utd": "utd_gestures", "utd_gestures": "utd_gestures",
                 "fall": "fall_body13", "gestures2d": "utd_gestures_body13",
                 "utd_gestures_body13": "utd_gestures_body13", "fall_body13": "fall_body13", "pushup_form": "pushup_form",
                 "utd_gestures_bone": "utd_gestures_bone", "penn_body13_bone": "penn_body13_bone",
                 "penn_body13_joint_motion": "penn_body13_joint_motion",
                 "penn_body13_bone_motion": "penn_body13_bone_motion",
                 # ensembles: a YAML beside the .onnx files (load with load_predictor)
                 "gestures_ensemble": "utd_gestures_ensemble.yaml", "utd_ensemble": "utd_gestures_ensemble.yaml",
                 "penn_ensemble": "penn_ensemble.yaml", "nwucla_ensemble": "nwucla_ensemble.yaml", "exercise_ensemble": "penn_ensemble.yaml"}


def resolve_model(name_or_path: str | os.PathLike) -> Path:
    """A shipped model name (``penn``/``exercise``, ``nwucla``, ``gestures``) or a path -> existing path."""
    s = str(name_or_path)
    if s.startswith("models:/"):  # MLflow registry (MLFLOW_TRACKING_URI), downloaded to a local cache
        from actionpose.distributed.registry import resolve_registry_model

        return resolve_registry_model(s)
    if s in MODEL_ALIASES:
        name = MODEL_ALIASES[s]
        path = ASSETS / (name if name.endswith(".yaml") else f"{name}.onnx")
        if not path.exists():
            raise where(path, f"shipped model {s!r} is missing from this installation")
        return path
    path = Path(s)
    if not path.exists():
        raise ActionposeError(f"{s}: no such model file; shipped models: {', '.join(sorted(MODEL_ALIASES))}")
    return path


def _is_ensemble_name(member: str) -> bool:
    """Whether an ensemble member names an ensemble YAML (a path, or a shipped alias such as penn_ensemble)."""
    target = MODEL_ALIASES.get(member, member)
    return target.lower().endswith((".yaml", ".yml"))


def _softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


class ActionPredictor:
    """``predict(keypoint [N, M, T, V, C], keypoint_score [N, M, T, V] | None) -> probs [N, K]``."""

    def __init__(self, session: Any, meta: dict[str, Any], path: Path | None = None):
        self.session = session
        self.meta = meta
        self.path = path
        if isinstance(meta.get("layout_def"), dict):  # a custom rig travels inside the model file
            from actionpose.skeleton import ensure_layout

            ensure_layout(meta["layout_def"], str(path or "model"))
        self.classes: list[str] = list(meta["classes"])
        self.config = PreprocessConfig.from_meta(meta)
        self.coords = int(meta.get("coords", 3))
        self.input_name = session.get_inputs()[0].name

    # metadata shortcuts (stable attribute names other modules rely on)
    layout = property(lambda self: self.config.layout)
    clip_len = property(lambda self: self.config.clip_len)
    stream = property(lambda self: self.config.stream)
    num_classes = property(lambda self: len(self.classes))

    @classmethod
    def from_path(cls, path: str | os.PathLike, threads: int | None = None) -> "ActionPredictor":
        import onnxruntime as ort

        if threads is not None:  # before anything loads: 100000 threads took the machine down
            from actionpose.pose.session import checked_threads

            checked_threads(int(threads) if isinstance(threads, float) and threads.is_integer() else threads)
        path = resolve_model(path)
        if Path(path).is_dir():  # onnxruntime's text here was "INVALID_PROTOBUF : Protobuf parsing failed"
            raise where(path, "is a folder; give a model file (.onnx, a checkpoint, or an ensemble .yaml)")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        try:
            sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own exception types for corrupt files
            if str(path).endswith(".ckpt") or (file_kind(path) or "").startswith("a zip"):  # "Protobuf parsing failed"
                raise where(path, f"is a training checkpoint, not an ONNX model: `actionpose export --model {path} "
                                  "-o MODEL.onnx` makes one (ensembles and the predictors take .onnx files)") from None
            raise where(path, f"not a loadable ONNX model ({str(e).splitlines()[0][:200]})") from None
        raw = sess.get_modelmeta().custom_metadata_map.get(META_KEY)
        if raw is None:
            raise where(path, f"ONNX file has no {META_KEY!r} metadata; export it with `actionpose export`")
        try:
            meta = json.loads(raw)
        except json.JSONDecodeError:
            raise where(path, f"{META_KEY!r} metadata is not valid JSON") from None
        return cls(sess, meta, path)

    def logits(self, keypoint: np.ndarray, keypoint_score: np.ndarray | None = None) -> np.ndarray:
        """Raw per-clip logits ``[N, num_clips, K]``. A NaN or (0, 0[, 0]) joint is a joint not seen; a sample
        with no joint seen in any frame is refused (it was given confident probabilities, 0.99 for one class)."""
        keypoint = np.asarray(keypoint, dtype=np.float32)
        if keypoint.ndim != 5:
            raise ActionposeError(f"keypoint must be [N, M, T, V, C], got shape {keypoint.shape}")
        if keypoint.shape[-1] != self.coords:
            raise ActionposeError(f"keypoint has {keypoint.shape[-1]} coordinates per joint but model "
                                  f"{self.path or ''} expects {self.coords}")
        x = preprocess(keypoint, keypoint_score, self.config)  # [N, nc, M, L, V, C]; checks the shapes first
        seen = (np.isfinite(keypoint) & (keypoint != 0)).reshape(len(keypoint), -1).any(1)
        if not seen.all():
            raise ActionposeError(f"keypoint[{int(np.flatnonzero(~seen)[0])}]: no joint seen in any frame (all NaN or "
                                  "zero): nothing to classify")
        n, nc = x.shape[:2]
        out = self.session.run(None, {self.input_name: x.reshape((n * nc,) + x.shape[2:])})[0]
        return out.reshape(n, nc, -1)

    def predict(self, keypoint: np.ndarray, keypoint_score: np.ndarray | None = None) -> np.ndarray:
        """Class probabilities ``[N, K]`` (softmax averaged over the test clips)."""
        if np.asarray(keypoint).shape[0] == 0:
            return np.zeros((0, self.num_classes), np.float32)
        return _softmax(self.logits(keypoint, keypoint_score)).mean(axis=1).astype(np.float32)

    def run_clips(self, clips: np.ndarray) -> np.ndarray:
        """Preprocessed clips ``[B, M, L, V, C']`` -> logits ``[B, K]``."""
        return self.session.run(None, {self.input_name: np.ascontiguousarray(clips, dtype=np.float32)})[0]

    def predict_sequences(self, sequences: Sequence[tuple[np.ndarray, np.ndarray | None]],
                          batch_size: int = 64, empty: str = "refuse") -> np.ndarray:
        """Probabilities ``[N, K]`` for sequences of different lengths: ``[(keypoint [M, T, V, C], score), ...]``;
        one with no joint seen is refused unless ``empty="score"``."""
        return predict_sequences(self, sequences, batch_size, empty)


class EnsemblePredictor:
    """Average of several predictors' probabilities (PYSKL's multi-stream ensemble), optional weights."""

    def __init__(self, predictors: Sequence[ActionPredictor], weights: Sequence[float] | None = None):
        if not predictors:
            raise ActionposeError("ensemble: no models given")
        first = predictors[0]
        for p in predictors[1:]:
            if p.layout != first.layout:
                raise ActionposeError(f"ensemble: {p.path} has layout {p.layout}, {first.path} has {first.layout}")
            if sorted(p.classes) != sorted(first.classes) or len(set(p.classes)) != len(p.classes):
                extra = sorted(set(p.classes) ^ set(first.classes))
                raise ActionposeError(f"ensemble: {p.path} has different classes than {first.path}"
                                      + (f" ({', '.join(extra[:5])} in only one of them)" if extra else ""))
        # models trained on one class list in another order are aligned by name, as eval matches classes
        self._order = [None if p.classes == first.classes else np.array([p.classes.index(c) for c in first.classes])
                       for p in predictors]
        self.predictors = list(predictors)
        w = np.ones(len(predictors)) if weights is None else np.asarray(weights, dtype=np.float64)
        if w.shape != (len(predictors),) or (w < 0).any():
            raise ActionposeError(f"ensemble: weights must be one non-negative number per model "
                                  f"({len(predictors)} models, got {[float(x) for x in np.atleast_1d(w)]})")
        if w.sum() <= 0:
            raise ActionposeError("ensemble: weights are all 0; at least one model needs a positive weight")
        self.weights = w / w.sum()
        self.classes, self.config = first.classes, first.config
        self.coords = first.coords

    layout = property(lambda self: self.config.layout)
    clip_len = property(lambda self: self.config.clip_len)
    stream = property(lambda self: "+".join(p.stream for p in self.predictors))
    num_classes = property(lambda self: len(self.classes))

    @classmethod
    def from_paths(cls, paths: Sequence[str | os.PathLike], weights: Sequence[float] | None = None,
                   threads: int | None = None) -> "EnsemblePredictor":
        return cls([ActionPredictor.from_path(p, threads=threads) for p in paths], weights)

    def _combine(self, probs: list[np.ndarray]) -> np.ndarray:
        aligned = [pr if order is None else pr[..., order] for pr, order in zip(probs, self._order)]
        return np.sum([w * pr for w, pr in zip(self.weights, aligned)], axis=0).astype(np.float32)

    def predict(self, keypoint: np.ndarray, keypoint_score: np.ndarray | None = None) -> np.ndarray:
        return self._combine([p.predict(keypoint, keypoint_score) for p in self.predictors])

    def predict_sequences(self, sequences: Sequence[tuple[np.ndarray, np.ndarray | None]],
                          batch_size: int = 64, empty: str = "refuse") -> np.ndarray:
        if empty == "refuse":  # once, before any member runs
            refuse_empty(sequences)
        return self._combine([p.predict_sequences(sequences, batch_size, empty="score") for p in self.predictors])


def empty_sequences(sequences: Sequence[tuple[np.ndarray, np.ndarray | None]]) -> list[int]:
    """Indices of the sequences in which no joint is seen in any frame (all NaN or zero)."""
    if isinstance(sequences, np.ndarray) or any(not isinstance(s, (tuple, list)) or len(s) != 2 for s in sequences):
        # a bare [N, M, T, V, C] array failed deep inside with "too many values to unpack"
        raise ActionposeError("sequences: give a list of (keypoint [M, T, V, C], score [M, T, V] or None) pairs; "
                              "for one array of equal-length samples use predict(keypoint, score)")
    return [i for i, (kp, _) in enumerate(sequences)
            if not (np.isfinite(a := np.asarray(kp, dtype=np.float32)) & (a != 0)).any()]


def refuse_empty(sequences: Sequence[tuple[np.ndarray, np.ndarray | None]]) -> None:
    empty = empty_sequences(sequences)
    if empty:
        raise ActionposeError(f"sequence {empty[0]}{f' (and {len(empty) - 1} more)' if len(empty) > 1 else ''}: no "
                              "joint seen in any frame (all NaN or zero): nothing to classify")


def predict_sequences(predictor: Any, sequences: Sequence[tuple[np.ndarray, np.ndarray | None]],
                      batch_size: int = 64, empty: str = "refuse") -> np.ndarray:
    """Shared by the ONNX and the PyTorch predictor: per-sequence preprocessing, batched inference.

    ``predictor`` needs ``config``, ``coords``, ``num_classes`` and ``run_clips(clips) -> logits``. A sequence
    with no joint seen is refused (``empty="refuse"``, as :meth:`ActionPredictor.predict` does: it got a
    confident 0.99 for one class), or scored as given (``"score"``: an evaluation keeps every test sample and
    says how many were empty).
    """
    from actionpose.data.transforms import prepare

    if empty not in ("refuse", "score"):
        raise ValueError(f"empty={empty!r}: 'refuse' or 'score'")
    if empty == "refuse":
        refuse_empty(sequences)

    out = np.zeros((len(sequences), predictor.num_classes), np.float32)
    for start in range(0, len(sequences), batch_size):
        chunk = sequences[start:start + batch_size]
        clips = []
        for kp, sc in chunk:
            kp = np.asarray(kp, dtype=np.float32)
            if kp.ndim != 4 or kp.shape[-1] != predictor.coords:
                raise ActionposeError(f"sequence keypoint shape {kp.shape}: expected [M, T, V, {predictor.coords}]")
            clips.append(prepare(kp, sc, predictor.config))
        x = np.stack(clips)  # [B, nc, M, L, V, C]
        b, nc = x.shape[:2]
        logits = np.asarray(predictor.run_clips(x.reshape((b * nc,) + x.shape[2:])))
        out[start:start + b] = _softmax(logits.reshape(b, nc, -1)).mean(axis=1)
    return out


def member_paths(ensemble_file: Path, listed: list[str]) -> list[str]:
    """An ensemble file's members as the predictor loads them: relative paths from the file's folder, absolute
    paths and shipped model names as they are."""
    return [m if Path(m).is_absolute() or m in MODEL_ALIASES else str(ensemble_file.parent / m) for m in listed]


def load_predictor(path: str | os.PathLike, threads: int | None = None) -> ActionPredictor | EnsemblePredictor:
    """An ``.onnx`` file / shipped name, or an ensemble YAML ``{models: [paths], weights: [...]}``."""
    p = str(resolve_model(path)) if str(path) in MODEL_ALIASES else str(path)
    if p.endswith((".yaml", ".yml")):
        import yaml

        from actionpose.yaml_io import yaml_error_text, yaml_load

        fp = Path(p)
        if not fp.exists():
            raise where(fp, "no such ensemble file")
        try:
            cfg = yaml_load(fp.read_text())  # 1e10 is a number, a key written twice an error
        except yaml.YAMLError as e:
            raise where(fp, f"invalid YAML ({yaml_error_text(e)})") from None
        if not isinstance(cfg, dict) or not isinstance(cfg.get("models"), list) or not cfg["models"]:
            raise where(fp, "ensemble file needs a non-empty 'models' list of .onnx paths")
        unknown = sorted(set(cfg) - {"models", "weights"})
        if unknown:  # a typo such as 'weight:' would otherwise mean equal weights without a word
            raise where(fp, f"unknown key(s) {', '.join(map(repr, unknown))}; allowed: 'models', 'weights'")
        if not all(isinstance(m, str) for m in cfg["models"]):
            raise where(fp, "'models' must list .onnx paths or shipped model names")
        weights = cfg.get("weights")
        if weights is not None and not (isinstance(weights, list) and all(
                isinstance(w, (int, float)) and not isinstance(w, bool) and np.isfinite(w) for w in weights)):
            shown = [float(w) if isinstance(w, np.number) else w for w in weights] if isinstance(weights, list) else weights
            raise where(fp, f"'weights' must be a list of numbers, one per model, got {shown!r}")
        nested = [m for m in cfg["models"] if _is_ensemble_name(m)]
        if nested:  # it was opened as an ONNX file: a raw onnxruntime "INVALID_PROTOBUF ... Protobuf parsing failed"
            raise where(fp, f"member {nested[0]!r} is itself an ensemble; nested ensembles are not supported: "
                            "list its .onnx models here instead")
        members = member_paths(fp, cfg["models"])
        try:
            return EnsemblePredictor.from_paths(members, weights, threads=threads)
        except ActionposeError as e:
            raise where(fp, str(e)) from None
    return ActionPredictor.from_path(p, threads=threads)
