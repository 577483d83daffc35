"""``actionpose eval --model PATH --data PKL [--split test] [--json]``."""
from __future__ import annotations

import argparse
import json
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
    p.add_argument("--val-fraction", type=float, default=0.1,
                   help="--split val: the run's data.val_fraction (default 0.1)")
    p.add_argument("--seed", type=int, default=0,
                   help="--split val: the slice's seed, the run's data.val_seed or else its seed (default 0)")
    p.add_argument("--train-split", default="train", help="--split val: the run's data.train_split (default train)")
    p.add_argument("--out", "-o", default=None, help="folder for per_class.json and confusion.png "
                                                     "(default: eval_<model>_<split>; a run's best.ckpt: "
                                                     "eval_<run>_best_<split>)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from actionpose.training.evaluate import evaluate

    from actionpose.data.atomic import check_output_dir
    from actionpose.errors import ActionposeError

    if args.threads < 1:
        raise ActionposeError(f"--threads must be >= 1, got {args.threads}")
    stem = Path(args.model).stem
    if stem in ("best", "last") and Path(args.model).parent.name == "checkpoints":
        stem = f"{Path(args.model).parent.parent.name}_{stem}"  # runs/a/checkpoints/best.ckpt and runs/b/... collided
    out = args.out or f"eval_{stem}_{args.split}"
    check_output_dir(out, "--out")
    res = evaluate(args.model, args.data, args.split, out_dir=out, threads=args.threads,
                   val_fraction=args.val_fraction, seed=args.seed, train_split=args.train_split)
    summary = {k: res[k] for k in ("top1", "top5", "mean_class_acc", "n")}
    if args.json:
        print(json.dumps({**summary, "confusion_png": res["confusion_png"], "per_class_json": res["per_class_json"]}))
    else:
        for k, v in summary.items():
            print(f"{k:15s} {v:.4f}" if isinstance(v, float) else f"{k:15s} {v}")
        print(f"wrote {res['per_class_json']} and {res['confusion_png']}")
    return 0
