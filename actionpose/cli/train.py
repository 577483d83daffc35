"""``actionpose train --config CONFIG.yaml [key=value ...]``."""
from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train an ST-GCN model from a YAML config (MLflow-tracked)",
                       description="Train, pick the best epoch on a validation slice of the training split, "
                                   "test once, export ONNX and log everything to MLflow.")
    p.add_argument("--config", "-c", required=True, help="YAML config, e.g. configs/penn/stgcnpp_joint.yaml")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. optim.epochs=5")
    p.add_argument("--no-mlflow", action="store_true", help="do not track the run in MLflow")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from actionpose.training import load_config, train

    overrides = list(args.overrides) + (["mlflow.enabled=false"] if args.no_mlflow else [])
    cfg = load_config(args.config, overrides)
    res = train(cfg)
    from pytorch_lightning.utilities import rank_zero_only

    if rank_zero_only.rank != 0:  # DDP: the other ranks only trained; one summary (theirs said "onnx": null)
        return 0
    # both absolute (the checkpoint was, the ONNX path was relative to output.dir's working folder)
    print(json.dumps({"checkpoint": str(res.checkpoint.resolve()),
                      "onnx": str(res.onnx_path.resolve()) if res.onnx_path else None,
                      "run_id": res.run_id, **res.metrics}, indent=1))
    return 0
