"""Load a training checkpoint back into a plain model plus its metadata, with clear errors."""
from __future__ import annotations

import pickle
import sys
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from actionpose.errors import file_kind, where
from actionpose.models import build_model


def load_checkpoint(path: str | Path) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """Returns ``(model in eval mode, meta, config)`` from a Lightning ``.ckpt`` written by ``train``."""
    path = Path(path)
    ckpt = _read(path)
    meta, config = ckpt["hyper_parameters"]["meta"], ckpt["hyper_parameters"]["config"]
    if isinstance(meta.get("layout_def"), dict):
        from actionpose.skeleton import ensure_layout

        ensure_layout(meta["layout_def"], str(path))
    m = dict(config["model"])
    state = {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    name = legacy_model_name(m.pop("name"), state)
    if name != config["model"]["name"]:
        config = {**config, "model": {**config["model"], "name": name}}
    _require_registered(path, name)
    model = build_model(name, meta["layout"], len(meta["classes"]), meta["in_channels"], **m)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise where(path, f"weights do not fit the model in its config ({str(e).splitlines()[0][:160]})") from None
    return model.eval(), meta, config


def check_resumable(path: str | Path, config: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
    """Refuse ``trainer.resume`` from a checkpoint this run cannot continue, before any folder is made:
    Lightning would otherwise fail mid-start with a tensor size-mismatch dump or a schedule error.
    Returns the checkpoint's hyper-parameters (e.g. the MLflow run it was logged to), read once here."""
    path = Path(path)
    ckpt = _read(path)
    old_meta, old_cfg = ckpt["hyper_parameters"]["meta"], ckpt["hyper_parameters"]["config"]
    for what, old, new in (("model", old_cfg["model"], config["model"]), ("layout", old_meta.get("layout"), meta["layout"]),
                           ("classes", old_meta.get("classes"), meta["classes"]),
                           ("input channels (stream, 2D/3D, scores)", old_meta.get("in_channels"), meta["in_channels"]),
                           # a custom rig's joints and bones: the same name with head and neck swapped trained on
                           # permuted joints and was refused only after training, with the run folder half rewritten
                           ("layout definition (joint order, bones)", old_meta.get("layout_def"), meta.get("layout_def"))):
        if old != new:
            keys = [k for k in sorted(set(old) | set(new), key=str) if old.get(k) != new.get(k)] \
                if isinstance(old, dict) and isinstance(new, dict) else []
            # two truncated dicts looked the same: the keys that differ are what to fix
            verb = "differ" if what == "classes" else "differs"  # "its classes ... differs"
            diff = (f"{what} {verb} from this run's in "
                    + "; ".join(f"{k!r}: {_short(old.get(k))} there, {_short(new.get(k))} here" for k in keys[:3])
                    if keys else f"{what} {_short(old)} {verb} from this run's {_short(new)}")
            raise where(path, f"cannot resume: its {diff} (trainer.resume continues the same model on the same data)")
    old_p, new_p = old_cfg.get("preprocess") or {}, config["preprocess"]
    # test_clips only shapes evaluation; anything else changed the clips the second half trained on (clip_len
    # 16 -> 32 resumed without a word, and the export then described half a training)
    changed = [k for k in new_p if k != "test_clips" and k in old_p and old_p[k] != new_p[k]]
    if changed:
        k = changed[0]
        raise where(path, f"cannot resume: preprocess.{k} is {_short(new_p[k])} here but the run trained with "
                          f"{_short(old_p[k])}; a resumed run keeps its input preparation (start a new run to change it)")
    done = int(ckpt.get("epoch", -1)) + 1
    if config["optim"]["epochs"] == done:  # Lightning would "resume" into zero epochs and report the old run
        raise where(path, f"cannot resume: that run has finished all {done} epochs of optim.epochs={done}; "
                          "raise optim.epochs to train it further")
    if config["optim"]["epochs"] < done:
        raise where(path, f"cannot resume: it has trained {done} epochs, more than optim.epochs="
                          f"{config['optim']['epochs']}; raise optim.epochs")
    _note_rewind(path, done)
    return ckpt["hyper_parameters"]


def _note_rewind(path: Path, done: int) -> None:
    """Say so when a resume starts before where its run got to (``best.ckpt`` beside a later ``last.ckpt``):
    the epochs between are trained again, and MLflow holds two values at their steps. Allowed (going back to
    the best epoch is a choice), but it restarted at epoch 77 of a run stopped at 82 without a word."""
    last = path.parent / "last.ckpt"
    if path.name == "last.ckpt" or not last.is_file():
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reached = int(torch.load(last, map_location="cpu", weights_only=True).get("epoch", -1)) + 1
    except Exception:  # noqa: BLE001 - an unreadable sibling is not this resume's problem
        return
    if reached > done:
        print(f"note: {path.name} ends at epoch {done} but its run reached epoch {reached} ({last}): epochs "
              f"{done + 1}-{reached} are trained again, and the MLflow run gets a second value at those steps; "
              f"trainer.resume={last} continues where it stopped", file=sys.stderr)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 90 else text[:87] + "..."


def _read(path: Path) -> dict[str, Any]:
    """The checkpoint dict, checked to be one of ours (clear one-line errors for anything else)."""
    if not path.exists():
        raise where(path, "no such checkpoint")
    if path.is_dir():
        raise where(path, "is a folder, not a checkpoint file")
    if path.stat().st_size == 0:  # torch's own error text is empty here (it was an IndexError traceback)
        raise where(path, "empty file, not a checkpoint")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before it refuses a non-checkpoint
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's text here is about its weights_only default, not this file
        kind = file_kind(path)
        if kind is not None:  # an exported .onnx given to export/resume: "a pickle that holds more ..." misled
            raise where(path, f"is {kind}, not a training checkpoint (.ckpt)") from None
        raise where(path, "not a readable checkpoint (a pickle that holds more than tensors and plain values, "
                          "not a training checkpoint)") from None
    except Exception as e:  # torch raises many types for truncated/corrupt/non-torch files
        kind = file_kind(path)
        if kind is not None and not kind.startswith("a zip"):
            raise where(path, f"is {kind}, not a training checkpoint (.ckpt)") from None
        first = (str(e).splitlines() or [""])[0].split(". ")[0][:160]  # torch's advice after it was cut mid-sentence
        if "zip archive" in first:  # "PytorchStreamReader failed reading zip archive: failed finding central directory"
            raise where(path, f"not a readable checkpoint: truncated or corrupt ({first})") from None
        raise where(path, f"not a readable checkpoint ({type(e).__name__}{': ' + first if first else ''})") from None
    hp = ckpt.get("hyper_parameters") if isinstance(ckpt, dict) else None
    if not isinstance(hp, dict) or "meta" not in hp or "config" not in hp or "state_dict" not in ckpt:
        raise where(path, "not an actionpose checkpoint (no hyper_parameters.meta/config or state_dict)")
    return ckpt


def _require_registered(path: Path, name: str) -> None:
    """A checkpoint of a preset registered in code (``register_model``, docs/extending.md) needs that code in this
    process: unlike a custom layout, a preset does not travel inside the file. Without it ``eval``/``export``
    said only "model.name: unknown model", naming neither the checkpoint nor the way to load the preset."""
    from actionpose.models import MODELS, list_models

    if name not in MODELS:
        raise where(path, f"its model {name!r} is not registered in this process (known: {', '.join(list_models())}); "
                          "import the module that calls register_model for it, e.g. ACTIONPOSE_PLUGINS=mypackage.models")


def legacy_model_name(name: str, state: dict) -> str:
    """``ctrgcn``/``ctrgcn_small`` checkpoints written before 2026-11-26 15:10 UTC hold ST-GCN++'s temporal
    module (a ``tcn.transform``); that architecture is now ``ctrgcn_pp``/``ctrgcn_pp_small``, and ``ctrgcn``
    is the paper's own. Such a checkpoint is rebuilt under its new name, so it still evaluates and exports."""
    if name in ("ctrgcn", "ctrgcn_small") and any(".tcn.transform." in k for k in state):
        return name.replace("ctrgcn", "ctrgcn_pp", 1)
    return name
