"""``actionpose eval --model PATH --data PKL [--split test] [--json]``."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint, ONNX model or ensemble on a dataset split",
                       description="Prints top-1, top-5, mean class accuracy and n; writes per-class accuracy "
                                   "(per_class.json) and a confusion-matrix PNG into --out.")
    p.add_argument("--model", "-m", required=True,
                   help=".ckpt, .onnx, shipped name (penn, nwucla, gestures) or ensemble .yaml")
    p.add_argument("--data", "-d", required=True, help="canonical dataset pickle")
    p.add_argument("--split", default="test",
                   help="split to evaluate (default: test); 'val' on a dataset without one: the validation slice "
                        "training carves from --train-split")
    p.add_argument("--val-fraction", type=float, default=None,
                   help="--split val: the run's data.val_fraction (default: from the run's config.yaml beside "
                        "the model, else 0.1)")
    p.add_argument("--seed", type=int, default=None,
                   help="--split val: the slice's seed, the run's data.val_seed or else its seed (default: from "
                        "the run's config.yaml, else 0)")
    p.add_argument("--train-split", default=None,
                   help="--split val: the run's data.train_split (default: from the run's config.yaml, else train)")
    p.add_argument("--out", "-o", default=None, help="folder for per_class.json and confusion.png "
                                                     "(default: eval_<model>_<data>_<split>, _2 ... when taken; a "
                                                     "run's best.ckpt: eval_<run>_best_<data>_<split>)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from actionpose.training.config import MAX_SEED
    from actionpose.training.evaluate import evaluate

    from actionpose.data.atomic import check_output_dir
    from actionpose.errors import ActionposeError
    from actionpose.training.run_dir import run_of  # here: the package imports Lightning (~4 s at every start)

    if args.threads < 1:
        raise ActionposeError(f"--threads must be >= 1, got {args.threads}")
    if args.seed is not None and not 0 <= args.seed <= MAX_SEED:
        raise ActionposeError(f"--seed must be in [0, {MAX_SEED}], got {args.seed}")
    stem, run_dir = Path(args.model).stem, run_of(args.model)
    if args.model.startswith("models:/"):  # models:/rig9/1 wrote eval_1_test
        stem = "_".join(p for p in args.model[len("models:/"):].split("/") if p)
    elif run_dir is not None:  # runs/a/checkpoints/best.ckpt and runs/b/... collided, so did runs/rig{,_2}/rig.onnx
        stem = f"{run_dir.name}_{stem}" if stem in ("best", "last") else run_dir.name
    out = args.out
    if out is None:  # the model, the data and the split; an earlier evaluation's folder is never replaced
        data = Path(args.data).stem if not Path(args.data).is_dir() else Path(args.data).name
        base = out = f"eval_{stem}_{data}_{args.split}"
        k = 1
        while Path(out).exists():
            k += 1
            out = f"{base}_{k}"
    check_output_dir(out, "--out")
    run = _validation_slice(args.model, args.split == "val" and (args.val_fraction is None or args.seed is None))
    if args.split == "val" and not run and (args.val_fraction is None or args.seed is None):
        print(f"note: {args.model} carries no record of the validation slice it was trained with (no run folder, "
              "no val_slice in its metadata): scoring the slice of --val-fraction (default 0.1) and --seed (default 0); "
              "give the run's values, or the score may include clips it trained on", file=sys.stderr)
    val = dict(val_fraction=args.val_fraction if args.val_fraction is not None else run.get("val_fraction", 0.1),
               seed=args.seed if args.seed is not None else run.get("val_seed", run.get("seed", 0)),
               train_split=args.train_split or run.get("train_split") or "train")
    res = evaluate(args.model, args.data, args.split, out_dir=out, threads=args.threads, **val)
    summary = {k: res[k] for k in ("top1", "top5", "mean_class_acc", "n")}
    for note in res.get("notes", []):
        print(f"note: {args.data}: {note}", file=sys.stderr)
    if args.json:
        print(json.dumps({**summary, "confusion_png": res["confusion_png"], "per_class_json": res["per_class_json"]}))
    else:
        for k, v in summary.items():
            note = ""
            if k == "top5" and len(res["per_class"]) <= 5:  # always 1.0: it says nothing about the model
                note = f"  (the model has {len(res['per_class'])} classes: top-5 is always 1)"
            print((f"{k:15s} {v:.4f}" if isinstance(v, float) else f"{k:15s} {v}") + note)
        print(f"wrote {res['per_class_json']} and {res['confusion_png']}")
    return 0


def _validation_slice(model: str, needed: bool) -> dict:
    """The slice ``--split val`` scores: the model's own record (its run folder, else its metadata); for an
    ensemble, its members' records when they agree. Members validated on different slices have no slice held
    out from all of them: refused when ``needed`` (``--split val`` without ``--val-fraction`` and ``--seed``).
    (An ensemble of moved members, or of members trained with different seeds, scored the default slice with a
    note saying none was recorded, and a seed-1 member's training clips were in it.)"""
    members = _ensemble_members(model)
    if members is None:
        return _run_data_config(model) or _model_val_slice(model)
    from actionpose.errors import ActionposeError

    found = [(m, _run_data_config(m) or _model_val_slice(m)) for m in members]
    known = [(m, sl) for m, sl in found if sl]
    distinct = {_slice_key(sl) for _, sl in known}
    if len(distinct) > 1:
        if needed:
            shown = "; ".join(f"{Path(m).name}: fraction {k[0]:g}, seed {k[1]}, from {k[2]!r}"
                              for m, k in ((m, _slice_key(sl)) for m, sl in known))
            raise ActionposeError(f"{model}: its members were validated on different slices ({shown}): no slice is "
                                  "held out from all of them; evaluate the members one by one, or give --val-fraction "
                                  "and --seed")
        return {}
    if needed and known and len(known) < len(found):
        missing = ", ".join(Path(m).name for m, sl in found if not sl)
        print(f"note: {model}: {missing} carry no record of their validation slice; scoring the one the other "
              "members recorded", file=sys.stderr)
    return known[0][1] if known else {}


def _slice_key(sl: dict) -> tuple:
    """(fraction, seed, training split) of a recorded slice, with the defaults the data module uses."""
    return (float(sl.get("val_fraction", 0.1)), int(sl.get("val_seed", sl.get("seed", 0))),
            sl.get("train_split") or "train")


def _ensemble_members(model: str) -> list[str] | None:
    """An ensemble YAML's member paths, resolved as the predictor resolves them; None for one model (or a file
    the predictor will explain)."""
    import yaml

    from actionpose.inference.predictor import MODEL_ALIASES, member_paths, resolve_model

    path = str(resolve_model(model)) if model in MODEL_ALIASES else str(model)
    if not path.endswith((".yaml", ".yml")):
        return None
    try:
        listed = yaml.safe_load(Path(path).read_text())["models"]
    except (yaml.YAMLError, OSError, TypeError, KeyError):
        return None
    if not isinstance(listed, list):
        return None
    return member_paths(Path(path), [m for m in listed if isinstance(m, str)])


def _run_data_config(model: str) -> dict:
    """The ``data`` section of the run a model came from (``runs/<name>/config.yaml`` beside its ONNX
    file or above its ``checkpoints/``), so
    ``--split val`` scores the slice that run validated on; an empty dict for anything else. (The defaults 0.1 / seed 0 scored another slice of a run trained with
    data.val_fraction 0.2, without a word.)"""
    import yaml

    from actionpose.training.run_dir import run_of

    folder = run_of(model)
    if folder is None or not (folder / "config.yaml").is_file():
        return {}
    try:
        run = yaml.safe_load((folder / "config.yaml").read_text())
        data = run.get("data") or {}
    except (yaml.YAMLError, OSError, AttributeError):
        return {}
    out = {k: data[k] for k in ("val_fraction", "val_seed", "train_split") if data.get(k) is not None}
    if run.get("seed") is not None:
        out["seed"] = run["seed"]
    return out


def _model_val_slice(model: str) -> dict:
    """The validation slice recorded in the model itself (ONNX metadata or checkpoint, ``val_slice``: models
    trained since 2026-11-27), for a model file moved out of its run folder; an empty dict when absent."""
    if str(model).endswith((".yaml", ".yml")):
        return {}
    try:
        if str(model).endswith(".ckpt"):
            from actionpose.training.checkpoint import load_checkpoint

            meta = load_checkpoint(model)[1]
        else:
            from actionpose.inference.predictor import ActionPredictor

            meta = ActionPredictor.from_path(model).meta
    except Exception:  # noqa: BLE001 - an unreadable model is explained by evaluate() itself
        return {}
    found = meta.get("val_slice")
    return dict(found) if isinstance(found, dict) else {}
