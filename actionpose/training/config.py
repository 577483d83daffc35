"""Training configuration: nested defaults, YAML files and ``key=value`` overrides.

Every key has a default here, so an unknown key (a typo) is an error naming the key and the
allowed ones instead of being silently ignored. Defaults are PYSKL's recipe (SGD 0.1, momentum
0.9, Nesterov, weight decay 5e-4, cosine schedule; a step schedule for recipes such as CTR-GCN's).
"""
from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any

import yaml

from actionpose.errors import ActionposeError, where
from actionpose.yaml_io import yaml_error_text, yaml_load  # noqa: F401 - re-exported (tests, older imports)

DEFAULTS: dict[str, Any] = {
    "name": None,                      # run name; defaults to the config file's stem
    "seed": 0,
    "data": {
        "path": None,                  # canonical pickle (actionpose datasets convert ...)
        "train_split": "train",
        "test_split": "test",
        "val_fraction": 0.1,           # validation slice carved from train (stratified); model selection only
        "val_seed": None,              # the slice's draw; None = the run's seed. Fix it to train several seeds
                                       # against one slice (then compare them with `eval --split val --seed`)
        "layout": None,                # map the dataset into this layout first (e.g. body13); None = as is
        "repeat": 1,                   # repeat the training set per epoch (CTR-GCN uses 5 on NW-UCLA)
        "num_workers": 0,
    },
    "preprocess": {
        "clip_len": 64,
        "num_clips": 1,                # clips per sample at training time
        "test_clips": 5,               # clips averaged at validation/test/inference time
        "stream": "joint",
        "norm": "sequence",
        "max_persons": 1,
        "with_score": False,
        "align": "none",               # body: 3D sequences turned into the body's own frame (cross-view)
    },
    "augment": {"rotate": 0.0, "view_rotate": 0.0, "scale": 0.0, "shear": 0.0, "flip": 0.0, "joint_drop": 0.0, "person_drop": 0.0},
    "model": {"name": "stgcnpp_small"},  # plus any of actionpose.models.MODEL_KEYS
    "optim": {
        "lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4, "epochs": 16, "batch_size": 32,
        "warmup_epochs": 0, "label_smoothing": 0.0, "min_lr": 0.0,
        "schedule": "cosine",          # cosine (PYSKL) or step (CTR-GCN, MS-G3D: lr x gamma at each milestone)
        "milestones": [],              # step: epochs at which the rate is multiplied by gamma, e.g. [50]
        "gamma": 0.1,
    },
    "trainer": {
        "accelerator": "auto", "devices": "auto", "num_nodes": 1, "strategy": "auto", "precision": None,  # None: bf16-mixed on a GPU (16-mixed before Ampere)
        "num_threads": 2, "max_steps": -1, "limit_train_batches": None, "limit_val_batches": None,
        "progress_bar": True, "resume": None, "export_onnx": True,
        "max_time": None,              # minutes; the cosine then follows the clock and ends annealed
        "cuda_graphs": False,          # replay the training forward/backward from a CUDA graph (one GPU)
        "select": "best",              # tested and exported: best on the validation slice, or "last" epoch
    },
    "mlflow": {"enabled": True, "tracking_uri": None, "experiment": "actionpose", "register": True,
               "registered_name": None},
    "output": {"dir": None},           # default runs/<name>
}

SCHEDULES = ("cosine", "step")
MAX_SEED = 2**32 - 1  # numpy's seeds (Lightning's seed_everything and the validation slice's draw)
SELECTS = ("best", "last")
_FREE_SECTIONS = {"model"}  # checked by build_model against MODEL_KEYS


def _merge(base: dict, new: dict, prefix: str = "") -> dict:
    for key, value in new.items():
        full = f"{prefix}{key}"
        if key not in base and prefix.rstrip(".") not in _FREE_SECTIONS:
            allowed = ", ".join(sorted(base))
            raise ActionposeError(f"config key {full!r} is unknown; allowed keys{' in ' + prefix.rstrip('.') if prefix else ''}: "
                                  f"{allowed}")
        if isinstance(base.get(key), dict):
            if not isinstance(value, dict):
                raise ActionposeError(f"config key {full!r} must be a mapping, got {value!r}")
            _merge(base[key], value, f"{full}.")
        else:
            base[key] = value
    return base


# keys that name files, folders, splits or runs: ``name=5`` or ``output.dir=2024`` is text, not a number
_TEXT_KEYS = (("name",), ("data", "path"), ("data", "train_split"), ("data", "test_split"), ("data", "layout"),
              ("trainer", "resume"), ("output", "dir"), ("mlflow", "experiment"), ("mlflow", "registered_name"),
              ("mlflow", "tracking_uri"), ("trainer", "strategy"))


def _numbers_as_text(cfg: dict[str, Any]) -> None:
    for keys in _TEXT_KEYS:
        parent = cfg
        for k in keys[:-1]:
            parent = parent[k]
        v = parent[keys[-1]]
        if _is_number(v):
            parent[keys[-1]] = str(v)


def parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ActionposeError(f"override {item!r}: expected key=value, e.g. optim.lr=0.05")
    key, raw = item.split("=", 1)
    try:
        value = yaml_load(raw) if raw != "" else None
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def make_config(config: dict | None = None, overrides: list[str] | None = None) -> dict[str, Any]:
    """Defaults <- ``config`` <- overrides, validated."""
    cfg = copy.deepcopy(DEFAULTS)
    _merge(cfg, copy.deepcopy(config or {}))
    steps = [copy.deepcopy(cfg)] if overrides else []  # the config before each override and after the last
    for item in overrides or []:
        try:
            _merge(cfg, _override_tree(item))
        except ActionposeError as e:
            text = str(e)  # parse_override's own refusals already name the override
            raise (e if text.startswith("override ") else ActionposeError(f"override {item!r}: {text}")) from None
        steps.append(copy.deepcopy(cfg))
    _numbers_as_text(cfg)
    try:
        validate_config(cfg)
    except ActionposeError as e:
        # a bad value given on the command line is not blamed on the YAML file: name the first override
        # after which the config fails (none, when the file itself fails)
        for item, step in zip([None, *(overrides or [])], steps):
            _numbers_as_text(step)
            try:
                validate_config(step)
            except ActionposeError:
                if item is not None:
                    raise ActionposeError(f"override {item!r}: {e}") from None
                break
        raise
    return cfg


def _override_tree(item: str) -> dict[str, Any]:
    """``a.b=1`` -> ``{"a": {"b": 1}}``, to merge into a config."""
    keys, value = parse_override(item)
    nested: Any = value
    for k in reversed(keys):
        nested = {k: nested}
    return nested


def load_config(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise where(path, "no such config file")
    try:
        if path.is_dir():
            raise where(path, "is a folder; give a YAML config file (configs/<dataset>/<model>_<stream>.yaml)")
        raw = yaml_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise where(path, f"invalid YAML ({yaml_error_text(e)})") from None
    if not isinstance(raw, dict):
        raise where(path, "config must be a mapping")
    try:
        cfg = make_config(raw, overrides)
    except ActionposeError as e:
        if str(e).startswith("override "):  # the typo is on the command line, not in the file
            raise
        raise where(path, str(e)) from None
    if not cfg["name"]:
        cfg["name"] = path.stem if path.parent.name in ("", ".") else f"{path.parent.name}_{path.stem}"
    return cfg


def _check(cond: bool, key: str, msg: str) -> None:
    if not cond:
        raise ActionposeError(f"config key {key!r}: {msg}")


def validate_config(cfg: dict[str, Any]) -> None:
    from actionpose.data.transforms import ALIGNS, NORMS, STREAMS
    from actionpose.models import list_models

    p, o, d = cfg["preprocess"], cfg["optim"], cfg["data"]
    _check(p["stream"] in STREAMS, "preprocess.stream", f"{p['stream']!r}; allowed values: {', '.join(STREAMS)}")
    _check(p["norm"] in NORMS, "preprocess.norm", f"{p['norm']!r}; allowed values: {', '.join(NORMS)}")
    _check(p["align"] in ALIGNS, "preprocess.align", f"{p['align']!r}; allowed values: {', '.join(ALIGNS)}")
    _check(cfg["model"].get("name") in list_models(), "model.name",
           f"{cfg['model'].get('name')!r}; allowed values: {', '.join(list_models())}")
    for key in ("clip_len", "num_clips", "test_clips", "max_persons"):
        _check(_is_int(p[key]) and p[key] >= 1, f"preprocess.{key}", f"must be an integer >= 1, got {p[key]!r}")
    for key in ("epochs", "batch_size"):
        _check(_is_int(o[key]) and o[key] >= 1, f"optim.{key}", f"must be an integer >= 1, got {o[key]!r}")
    for key in ("lr", "momentum", "weight_decay", "label_smoothing", "min_lr", "warmup_epochs"):
        _check(_is_number(o[key]) and o[key] >= 0,
               f"optim.{key}", f"must be a number >= 0, got {o[key]!r}")
    _check(o["schedule"] in SCHEDULES, "optim.schedule", f"{o['schedule']!r}; allowed values: {', '.join(SCHEDULES)}")
    ms = o["milestones"]
    # a milestone past optim.epochs is never reached (as in MultiStepLR), so a short trial run of a step
    # config (optim.epochs=1) needs no other change
    _check(isinstance(ms, list) and all(_is_number(m) and m > 0
                                        for m in ms) and all(a < b for a, b in zip(ms, ms[1:])), "optim.milestones",
           f"must be an increasing list of epochs > 0, got {ms!r}")
    _check(o["schedule"] != "step" or bool(ms), "optim.milestones", "optim.schedule=step needs at least one milestone")
    _check(_is_number(o["gamma"]) and 0 < o["gamma"] <= 1,
           "optim.gamma", f"must be a number in (0, 1], got {o['gamma']!r}")
    _check(_is_number(d["val_fraction"]) and 0 <= d["val_fraction"] < 1, "data.val_fraction",
           f"must be in [0, 1), got {d['val_fraction']!r}")
    _check(_is_int(d["repeat"]) and d["repeat"] >= 1, "data.repeat", f"must be an integer >= 1")
    _check(d["val_seed"] is None or (_is_int(d["val_seed"]) and 0 <= d["val_seed"] <= MAX_SEED),
           "data.val_seed", f"must be an integer in [0, {MAX_SEED}] or null, got {d['val_seed']!r}")
    _check(_is_int(cfg["seed"]) and 0 <= cfg["seed"] <= MAX_SEED, "seed",
           f"must be an integer in [0, {MAX_SEED}], got {cfg['seed']!r}")
    for key, value in (("name", cfg["name"]), ("output.dir", cfg["output"]["dir"]), ("data.path", d["path"]),
                       ("data.layout", d["layout"]), ("mlflow.tracking_uri", cfg["mlflow"]["tracking_uri"]),
                       ("mlflow.registered_name", cfg["mlflow"]["registered_name"])):
        _check(value is None or (isinstance(value, str) and value.strip() != ""), key,
               f"must be a text value or null, got {value!r}")
    for key, value in (("name", cfg["name"]), ("mlflow.registered_name", cfg["mlflow"]["registered_name"])):
        # the run's folder and its MLflow registered model: "exp/v1" nested folders, "team:v2" failed MLflow's
        # registration with a traceback after the whole training
        bad = sorted({c for c in "/\\:" if isinstance(value, str) and c in value})
        what = f"cannot hold {' or '.join(repr(c) for c in bad)}" if bad else "is not a name"
        _check(not bad and value not in (".", ".."), key,
               f"{value!r} {what}: it names the run's folder and its registered MLflow model; use letters, digits, "
               "'.', '_' and '-'")
    _check(isinstance(d["train_split"], str) and d["train_split"] != "", "data.train_split",
           f"must be a split name, got {d['train_split']!r}")
    _check(d["test_split"] is None or (isinstance(d["test_split"], str) and d["test_split"] != ""), "data.test_split",
           f"must be a split name or null (no test), got {d['test_split']!r}")
    _check(isinstance(cfg["mlflow"]["experiment"], str) and cfg["mlflow"]["experiment"] != "", "mlflow.experiment",
           f"must be a name, got {cfg['mlflow']['experiment']!r}")
    _check(_is_int(d["num_workers"]) and d["num_workers"] >= 0, "data.num_workers",
           f"must be an integer >= 0 (0: load in the training process), got {d['num_workers']!r}")
    for key, value in (("preprocess.with_score", p["with_score"]), ("optim.nesterov", o["nesterov"]),
                       ("mlflow.enabled", cfg["mlflow"]["enabled"]), ("mlflow.register", cfg["mlflow"]["register"])):
        _check(isinstance(value, bool), key, f"must be true or false, got {value!r}")
    for key in ("lr", "momentum", "weight_decay", "label_smoothing", "min_lr", "warmup_epochs"):
        _check(math.isfinite(o[key]), f"optim.{key}", f"must be a finite number, got {o[key]!r}")
    _check(o["momentum"] < 1, "optim.momentum", f"must be in [0, 1), got {o['momentum']!r}")
    _check(o["label_smoothing"] < 1, "optim.label_smoothing", f"must be in [0, 1), got {o['label_smoothing']!r}")
    _validate_trainer(cfg["trainer"])
    for key, value in cfg["augment"].items():
        _check(_is_number(value) and math.isfinite(value) and value >= 0, f"augment.{key}",
               f"must be a number >= 0, got {value!r}")
        _check(key not in PROBABILITIES or value <= 1, f"augment.{key}",
               f"is a probability, must be in [0, 1], got {value!r}")


PROBABILITIES = ("flip", "joint_drop", "person_drop")  # augment keys that are chances, not magnitudes


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
PRECISIONS = (None, "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true", 32, 16, 64, "32", "16",
              "64", "bf16")  # Lightning 2's accepted values


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _validate_trainer(t: dict[str, Any]) -> None:
    """Lightning would take most of these as given and fail later with a TypeError deep in its loops."""
    _check(t["select"] in SELECTS, "trainer.select", f"{t['select']!r}; allowed values: {', '.join(SELECTS)}")
    _check(t["accelerator"] in ACCELERATORS, "trainer.accelerator",
           f"{t['accelerator']!r}; allowed values: {', '.join(ACCELERATORS)}")
    for key in ("cuda_graphs", "progress_bar", "export_onnx"):
        _check(isinstance(t[key], bool), f"trainer.{key}", f"must be true or false, got {t[key]!r}")
    for key in ("num_threads", "num_nodes"):
        _check(_is_int(t[key]) and t[key] >= 1, f"trainer.{key}", f"must be an integer >= 1, got {t[key]!r}")
    _check(_is_int(t["max_steps"]) and t["max_steps"] >= -1, "trainer.max_steps",
           f"must be an integer >= -1 (-1: no limit), got {t['max_steps']!r}")
    for key in ("limit_train_batches", "limit_val_batches"):
        v = t[key]
        _check(v is None or (_is_int(v) and v >= 0) or (isinstance(v, float) and 0 <= v <= 1), f"trainer.{key}",
               f"must be null, a number of batches (integer >= 0) or a fraction in [0, 1], got {v!r}")
    _check(t["limit_train_batches"] is None or t["limit_train_batches"] > 0, "trainer.limit_train_batches",
           "0 would train nothing (and leave no checkpoint); use a positive number of batches or a fraction")
    _check(t["precision"] in PRECISIONS, "trainer.precision",
           f"{t['precision']!r}; allowed values: null (bf16-mixed on a GPU, 16-mixed before Ampere, else 32-true), "
           f"{', '.join(dict.fromkeys(str(p) for p in PRECISIONS if p is not None))}")
    mt = t["max_time"]
    _check(mt is None or (_is_number(mt) and math.isfinite(mt) and mt > 0), "trainer.max_time",
           f"must be a positive number of minutes or null, got {mt!r}")
    _check(isinstance(t["strategy"], str), "trainer.strategy", f"must be a Lightning strategy name, got {t['strategy']!r}")
    d = t["devices"]
    _check(d == "auto" or (_is_int(d) and d >= -1 and d != 0) or (isinstance(d, list) and all(_is_int(i) for i in d))
           or (isinstance(d, str) and re.fullmatch(r"-1|\d+(,\d+)*,?", d) is not None),  # Lightning's "0,1"
           "trainer.devices", f"must be auto, a device count (-1: all) or a list of device indices, got {d!r}")
    _check(t["resume"] is None or isinstance(t["resume"], str), "trainer.resume",
           f"must be a checkpoint path or null, got {t['resume']!r}")


def flatten(cfg: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optim": {"lr": 0.1}}`` -> ``{"optim.lr": 0.1}`` (for MLflow params)."""
    out: dict[str, Any] = {}
    for k, v in cfg.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
