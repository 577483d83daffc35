"""A real 2-process DDP run (Lightning's own ``ddp`` strategy, gloo on CPU) through the normal CLI and config.

The same tiny config is trained once in-process (single device) and once as ``actionpose train ...
trainer.devices=2 trainer.strategy=ddp``; both must produce the same outputs and metrics layout, the DDP run
must really shard the data over two ranks (half the optimizer steps per epoch), and only rank 0 may export,
test and log (one MLflow run, one registered model version).
"""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from actionpose.data.format import SkeletonDataset, load_dataset, save_dataset
from actionpose.data.importers import convert

FIXTURES = Path(__file__).resolve().parent / "fixtures"
STEP_METRICS = {"train_loss", "train_top1", "lr", "val_loss", "val_top1", "val_select"}  # logged per epoch by the module


def tiny_penn(tmp: Path) -> Path:
    """8 training clips (time-shifted copies of the 2 Penn fixture train clips) + the 2 fixture test clips."""
    ds = convert("penn", FIXTURES / "datasets" / "penn")
    anns, split = [], {"train": [], "test": []}
    for a in ds.annotations:
        train = a["frame_dir"] in ds.split["train"]
        for k in range(4 if train else 1):
            b = copy.deepcopy(a)
            b["frame_dir"] = f"{a['frame_dir']}_{k}"
            b["keypoint"], b["keypoint_score"] = a["keypoint"][:, 2 * k:], a["keypoint_score"][:, 2 * k:]
            b["total_frames"] = b["keypoint"].shape[1]
            anns.append(b)
            split["train" if train else "test"].append(b["frame_dir"])
    out = tmp / "tiny.pkl"
    save_dataset(SkeletonDataset(anns, ds.layout, ds.classes, split), out)
    return out


TINY_CONFIG = """\
name: tiny
data: {{path: {data}, val_fraction: 0.25}}
preprocess: {{clip_len: 16, test_clips: 1}}
model: {{name: stgcn_small}}
optim: {{epochs: 2, batch_size: 2, lr: 0.01}}
trainer: {{accelerator: cpu, progress_bar: false, num_threads: 1}}
"""


def _steps_per_epoch(ckpt: Path) -> float:
    c = torch.load(ckpt, map_location="cpu", weights_only=False)
    return c["global_step"] / (c["epoch"] + 1)


@pytest.mark.slow
def test_ddp_two_processes_gloo_same_layout_as_single(tmp_path):
    from mlflow.tracking import MlflowClient

    from actionpose.training import load_config, train

    data = tiny_penn(tmp_path)
    cfg_path = tmp_path / "tiny.yaml"
    cfg_path.write_text(TINY_CONFIG.format(data=data))

    single = train(load_config(cfg_path, [f"output.dir={tmp_path / 'single'}", "mlflow.enabled=false"]))

    db = tmp_path / "mlflow.db"
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{db}", "PYTHONWARNINGS": "ignore"}
    env.pop("LOCAL_RANK", None)
    proc = subprocess.run([sys.executable, "-m", "actionpose", "train", "-c", str(cfg_path),
                           f"output.dir={tmp_path / 'ddp'}", "trainer.devices=2", "trainer.strategy=ddp"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]

    ddp_dir = tmp_path / "ddp"
    ddp_metrics = json.loads((ddp_dir / "metrics.json").read_text())
    assert set(ddp_metrics) == set(single.metrics), (ddp_metrics, single.metrics)
    assert ddp_metrics["epochs"] == single.metrics["epochs"] == 2
    assert ddp_metrics["test_n"] == 2 and 0.0 <= ddp_metrics["test_top1"] <= 1.0
    for name in ("config.yaml", "metrics.json", "confusion.png", "checkpoints/best.ckpt", "tiny.onnx"):
        assert (ddp_dir / name).exists() and (single.out_dir / name).exists(), name

    # 6 training clips after the validation slice: 3 steps/epoch on one device, 1 per rank on two (drop_last)
    assert _steps_per_epoch(single.checkpoint) == 3
    assert _steps_per_epoch(ddp_dir / "checkpoints" / "best.ckpt") == 1

    # the exported model works and carries the training metadata
    from actionpose.inference.predictor import ActionPredictor

    pred = ActionPredictor.from_path(ddp_dir / "tiny.onnx")
    assert pred.classes == load_dataset(data).classes and pred.clip_len == 16

    # rank 0 alone tracked: one run with the single-process metric names, one registered version
    client = MlflowClient(f"sqlite:///{db}")
    exp = client.get_experiment_by_name("actionpose")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert set(runs[0].data.metrics) == STEP_METRICS | {k for k, v in single.metrics.items()
                                                          if isinstance(v, (int, float))}
    assert runs[0].data.params["trainer.devices"] == "2"
    versions = client.search_model_versions("name='tiny'")
    assert [int(v.version) for v in versions] == [1]
