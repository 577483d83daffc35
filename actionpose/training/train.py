"""``train(config) -> TrainResult``: the plain-Python training entry point (the CLI wraps it).

Other features call it from code for their own datasets (falls, push-up form)::

    from actionpose.training import train, make_config
    res = train(make_config({"data": {"path": "falls.pkl"}, "optim": {"epochs": 10}}))
    res.onnx_path, res.metrics["test_top1"]
"""
from __future__ import annotations

import json
import logging
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
import yaml
from pytorch_lightning.utilities import rank_zero_only
from pytorch_lightning.utilities.exceptions import MisconfigurationException

from actionpose.data.atomic import check_output_dir, write_text_atomic
from actionpose.data.datamodule import SkeletonDataModule
from actionpose.data.format import SkeletonDataset
from actionpose.errors import ActionposeError
from actionpose.training.config import flatten, make_config, validate_config
from actionpose.training.module import ActionModule
from actionpose.training.run_dir import checkpoint_dir, run_of


@dataclass
class TrainResult:
    checkpoint: Path
    onnx_path: Path | None
    metrics: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    out_dir: Path | None = None


class EpochTimer(pl.Callback):
    """Seconds per training epoch (the docs report it for this CPU)."""

    def __init__(self):
        self.times: list[float] = []
        self._t = 0.0

    def on_train_epoch_start(self, trainer, pl_module):
        self._t = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module):
        self.times.append(time.perf_counter() - self._t)
        if not trainer.progress_bar_callback:  # one line per epoch for logs (nohup runs)
            m = {k: float(v) for k, v in trainer.callback_metrics.items() if getattr(v, "numel", lambda: 1)() == 1}
            shown = " ".join(f"{k}={m[k]:.4f}" for k in ("train_loss", "train_top1", "val_top1") if k in m)
            print(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs} {self.times[-1]:.1f}s {shown}", flush=True)


def default_precision(gpu: bool) -> str:
    """``trainer.precision: null``: bf16 mixed precision on a GPU that has it, float16 on older ones, else fp32.

    Why bf16 before float16: float16 needs a GradScaler, whose optimizer step reads the overflow flag on the
    host every step; that read waits for the step's kernels, so the host cannot queue the next step while the
    GPU runs this one (on the lent H200 a graphed CTR-GCN epoch took 7.5 s with the GPU 31-50 % busy).
    bf16 has float32's range and needs no scaler."""
    if not gpu:
        return "32-true"
    return "bf16-mixed" if torch.cuda.is_bf16_supported(including_emulation=False) else "16-mixed"


def _max_time(minutes: Any) -> str | None:
    """``trainer.max_time`` in minutes -> Lightning's "DD:HH:MM:SS". A time-boxed run (a GPU lent for 10
    minutes, a CI job) then stops and still tests and exports its best checkpoint. Minutes, not a clock
    string: YAML reads ``8:30`` as the number 510. The value was checked by ``validate_config``."""
    if minutes is None:
        return None
    total = max(1, int(round(minutes * 60)))
    return f"{total // 86400:02d}:{total // 3600 % 24:02d}:{total // 60 % 60:02d}:{total % 60:02d}"


def run_folder(cfg: dict[str, Any], name: str) -> Path:
    """Where this run writes. A fresh run never lands on an earlier run's checkpoints: Lightning would
    write ``best-v1.ckpt`` beside the old ``best.ckpt``, and the documented ``.../best.ckpt`` would then be
    the old model. The default ``runs/<name>`` moves on to ``runs/<name>_2``, ``_3``, ...; a folder named
    with ``output.dir`` is the user's choice, so it is refused instead. A resume writes into the run folder
    its checkpoint came from (``<run>/checkpoints/*.ckpt``)."""
    def used(d: Path) -> bool:
        return any(checkpoint_dir(d).glob("*.ckpt"))

    resume = cfg["trainer"]["resume"]
    own = run_of(Path(resume).resolve()) if resume and Path(resume).suffix == ".ckpt" else None
    if own is not None and (not cfg["output"]["dir"] or Path(cfg["output"]["dir"]).resolve() == own):
        # a resume continues in the folder its checkpoint came from (runs/<name> of the config may be
        # another run: resuming wrote best-v1.ckpt there and replaced that run's ONNX, metrics and picture)
        return own
    if cfg["output"]["dir"]:
        out = Path(cfg["output"]["dir"])
        if used(out):
            raise ActionposeError(f"config key 'output.dir': {out} already holds an earlier run's checkpoints; "
                                  "choose another folder, or continue that run with trainer.resume=<its last.ckpt>")
        check_output_dir(out, "config key 'output.dir'")
        return out
    out, k = Path("runs") / name, 1
    while used(out):
        k += 1
        out = Path("runs") / f"{name}_{k}"
    if k > 1:
        print(f"note: runs/{name} holds an earlier run; this one writes to {out}", file=sys.stderr)
    check_output_dir(out, "run folder")
    return out


def run_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The config as the run folder keeps it: ``data.path`` absolute (``-c runs/x/config.yaml`` works from any
    folder, as the resume line printed at Ctrl-C invites) and without ``trainer.resume`` (a resumed run's
    config reused for a fresh run refused to start: "cannot resume ... finished all its epochs")."""
    import copy

    out = copy.deepcopy(cfg)
    if out["data"].get("path"):
        out["data"]["path"] = str(Path(out["data"]["path"]).resolve())
    out["trainer"]["resume"] = None
    return out


def _remove_untrained(out_dir: Path, made: bool) -> None:
    """A run that trained nothing leaves no folder behind (it held only config.yaml)."""
    import shutil

    if made and out_dir.is_dir() and not any(checkpoint_dir(out_dir).glob("*.ckpt")):
        shutil.rmtree(out_dir, ignore_errors=True)


def _meta(dm: SkeletonDataModule, cfg: dict[str, Any]) -> dict[str, Any]:
    from actionpose.skeleton import layout_definition

    meta = {**asdict(dm.test_cfg), "classes": dm.classes, "coords": dm.coords, "in_channels": dm.in_channels,
            "model": cfg["model"]["name"], "dataset": Path(cfg["data"]["path"]).name if cfg["data"]["path"] else None,
            # the validation slice, so `eval --split val` of an ONNX file moved out of its run scores the same clips
            "val_slice": {"val_fraction": float(cfg["data"]["val_fraction"]), "train_split": cfg["data"]["train_split"],
                          "seed": int(cfg["seed"] if cfg["data"]["val_seed"] is None else cfg["data"]["val_seed"])}}
    definition = layout_definition(dm.layout)
    if definition is not None:  # checkpoints and exports of a custom rig load in a fresh process
        meta["layout_def"] = definition
    return meta


def _stopped_message(out_dir: Path, epoch: int, epochs: int, select: str, data: str | None) -> str:
    """What a run stopped by Ctrl-C or SIGTERM says: the epoch and the resume line (the run's own resolved
    config: the original overrides are in it). Stopped after its last epoch, before the test and export, a
    resume would be refused (the run has finished its epochs): it names the export and eval of the checkpoint
    instead (it said "interrupted in epoch 5" of a 4-epoch run, with that refused resume line)."""
    last = checkpoint_dir(out_dir) / "last.ckpt"
    if not last.exists():
        return f"interrupted in epoch {epoch + 1}; no epoch had finished, nothing to resume"
    if epoch >= epochs:
        chosen = checkpoint_dir(out_dir) / ("last.ckpt" if select == "last" else "best.ckpt")
        chosen = chosen if chosen.exists() else last
        return (f"interrupted after all {epochs} epochs had finished, before the test and export; export and score "
                f"the checkpoint with: actionpose export --model {chosen} -o {out_dir / 'model.onnx'} and "
                f"actionpose eval --model {chosen} --data {Path(data).resolve() if data else 'DATA.pkl'}")
    return (f"interrupted in epoch {epoch + 1}; continue with: actionpose train -c {out_dir / 'config.yaml'} "
            f"trainer.resume={last}")


def train(config: dict[str, Any], dataset: SkeletonDataset | None = None) -> TrainResult:
    """Train, select the best epoch on the validation slice (or the last, ``trainer.select``), test it once,
    export ONNX, log to MLflow."""
    cfg = make_config(config) if "trainer" not in config else config
    validate_config(cfg)
    name = cfg["name"] or "run"
    t = cfg["trainer"]
    torch.set_num_threads(int(t["num_threads"]))
    pl.seed_everything(int(cfg["seed"]), workers=True, verbose=False)
    for noisy in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")

    if t["accelerator"] in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ActionposeError(f"config key 'trainer.accelerator': {t['accelerator']!r} but this machine has no usable "
                              "CUDA GPU; use trainer.accelerator=cpu (or auto)")
    dm = SkeletonDataModule(cfg, dataset)
    meta = _meta(dm, cfg)
    resumed_hp: dict[str, Any] = {}
    if t["resume"]:
        from actionpose.training.checkpoint import check_resumable

        resumed_hp = check_resumable(t["resume"], cfg, meta)
        old_name = (resumed_hp.get("config") or {}).get("name")
        if old_name and old_name != name:  # the run keeps its name: its ONNX file and registered model
            print(f"note: resuming run {old_name!r} under its own name (the config's name {name!r} is not used)",
                  file=sys.stderr)  # (a new name wrote a second ONNX beside the stale one and registered a new model)
            name = cfg["name"] = old_name
    module = ActionModule(cfg, meta)
    out_dir = run_folder(cfg, name)
    has_val = bool(dm.val_samples) and t["limit_val_batches"] != 0
    if dm.val_samples and not has_val:  # Lightning warned every epoch that val_select was missing
        print(f"note: trainer.limit_val_batches=0: the {len(dm.val_samples)}-clip validation slice is held out of "
              "training but never scored, and the last epoch is tested and exported; data.val_fraction=0 trains on it",
              file=sys.stderr)
    elif not has_val and t["select"] == "best":
        print("note: no validation slice (data.val_fraction=0 or too few clips per class): the last epoch is "
              + ("tested and exported" if dm.test_samples else "exported"), file=sys.stderr)
    from actionpose.skeleton import get_layout

    flip = float((cfg.get("augment") or {}).get("flip") or 0)
    if flip and not get_layout(dm.layout).symmetric_pairs:  # said by `actionpose layouts`, not by training
        print(f"note: augment.flip={flip:g} but layout {dm.layout} has no left/right joint pairs that its names "
              "show (left_x/right_x, LShoulder/RShoulder, l_knee/r_knee, ...): flipped clips are mirrored without "
              "swapping sides, a body that cannot exist; set augment.flip=0 or name the joints so",
              file=sys.stderr)

    o = cfg["optim"]
    if o["warmup_epochs"] and o["warmup_epochs"] >= o["epochs"]:  # accepted without a word (probe)
        print(f"note: optim.warmup_epochs={o['warmup_epochs']:g} is not below optim.epochs={o['epochs']}: the rate "
              f"never reaches optim.lr={o['lr']:g} (it is still warming up when training ends)", file=sys.stderr)
    if cfg["mlflow"]["enabled"] and cfg["mlflow"]["register"] and not t["export_onnx"]:
        print("note: trainer.export_onnx=false: the model is not registered in MLflow (the registered pyfunc runs "
              "the ONNX export); the checkpoint is still logged", file=sys.stderr)
    client = run_id = None
    callbacks: list[pl.Callback] = []
    if cfg["mlflow"]["enabled"] and rank_zero_only.rank == 0:  # DDP/torchrun/SLURM: one run, from rank 0
        from actionpose.training.tracking import MlflowEpochLogger, fingerprint, start_run

        previous = resumed_hp.get("mlflow_run_id")  # the run that checkpoint was trained under, if any
        previous = previous if isinstance(previous, str) else None
        # before the run folder exists: an unreachable server leaves nothing behind
        client, run_id = start_run(cfg, resume_run_id=previous)
        module.hparams["mlflow_run_id"] = run_id  # in every checkpoint: a resume continues this run
        params = {k: str(v)[:250] for k, v in flatten(cfg).items()}
        if cfg["data"]["path"]:
            params["data.fingerprint"] = fingerprint(cfg["data"]["path"])
        # the layouts really used: the config's data.layout is None unless it maps the data into another one
        params.update({"data.dataset_layout": dm.dataset.layout, "data.model_layout": dm.layout})
        params.update({"data.n_train": len(dm.train_samples), "data.n_val": len(dm.val_samples),
                       "data.n_test": len(dm.test_samples), "model.params": sum(p.numel() for p in module.parameters())})
        from mlflow.entities import Param

        if run_id == previous:  # MLflow params are write-once: a resumed run adds only what it lacks
            logged = client.get_run(run_id).data.params
            # what the resume changed (optim.epochs=6 over the logged 3, trainer.resume itself) goes into tags
            # ``actionpose.resumed.<key>``: the params alone described a training that did not happen
            same_data = params.get("data.fingerprint") == logged.get("data.fingerprint")
            for k, v in params.items():
                if k == "data.path" and same_data:  # the resolved config spells a relative path absolutely
                    continue
                if k in logged and logged[k] != str(v):
                    client.set_tag(run_id, f"actionpose.resumed.{k}", str(v)[:250])
            params = {k: v for k, v in params.items() if k not in logged}
            client.set_tag(run_id, "actionpose.resumed_from", str(t["resume"]))
        client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
        callbacks.append(MlflowEpochLogger(client, run_id))
    ckpt_cb = pl.callbacks.ModelCheckpoint(dirpath=checkpoint_dir(out_dir), filename="best",
                                           monitor="val_select" if has_val else None, mode="max", save_top_k=1)
    # every epoch's end state (resume, trainer.select=last) from a callback of its own: Lightning 2.6 writes
    # save_last's last.ckpt only in an epoch that also wrote a best checkpoint, so it goes stale
    last_cb = pl.callbacks.ModelCheckpoint(dirpath=checkpoint_dir(out_dir), filename="last", monitor=None,
                                           save_top_k=1)
    timer = EpochTimer()
    callbacks += [ckpt_cb, last_cb, timer]
    gpu = torch.cuda.is_available() and t["accelerator"] in ("auto", "gpu", "cuda")
    dm.pin_memory = gpu
    precision = t["precision"] or default_precision(gpu)
    trainer = pl.Trainer(max_epochs=cfg["optim"]["epochs"], max_steps=t["max_steps"], accelerator=t["accelerator"],
                         devices=t["devices"], num_nodes=int(t["num_nodes"]),
                         strategy=t["strategy"], precision=precision, callbacks=callbacks,
                         logger=False, enable_progress_bar=bool(t["progress_bar"]), enable_model_summary=False,
                         limit_train_batches=t["limit_train_batches"],
                         # no slice: no validation pass (it would score the training clips under a val_ name)
                         limit_val_batches=t["limit_val_batches"] if has_val else 0,
                         num_sanity_val_steps=0, default_root_dir=str(out_dir), deterministic=False,
                         benchmark=True if gpu else None,  # fixed clip shapes: let cuDNN pick its kernels once
                         max_time=_max_time(t["max_time"]))
    made_dir = not out_dir.exists()  # a run that trains nothing removes the folder it made (not a resumed one's)
    out_dir.mkdir(parents=True, exist_ok=True)  # only now: a config or server error leaves no half-made run
    write_text_atomic(out_dir / "config.yaml", yaml.safe_dump(run_config(cfg), sort_keys=False))
    if client is not None:
        client.log_artifact(run_id, str(out_dir / "config.yaml"))
    status = "FAILED"
    try:
        with warnings.catch_warnings():
            if t["resume"]:  # continuing in its own folder is the point of a resume, not a hazard
                warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
            trainer.fit(module, datamodule=dm, ckpt_path=t["resume"])
        if trainer.global_step == 0 and not t["resume"]:
            raise ActionposeError(
                f"no training step was taken (trainer.max_steps={t['max_steps']}; {len(dm.train_samples)} training "
                f"clips in batches of {cfg['optim']['batch_size']} on {trainer.world_size} device(s)): nothing to test or export")
        status = "FINISHED"
    except MisconfigurationException as e:  # e.g. limit_train_batches=0.01 of 2 batches: Lightning's words, one line
        _remove_untrained(out_dir, made_dir)
        raise ActionposeError(f"training could not start: {' '.join(str(e).split())}") from None
    except ActionposeError:
        _remove_untrained(out_dir, made_dir)
        raise
    except SystemExit:  # Lightning turns Ctrl-C (and SIGTERM, see cli/stopping.py) into exit(1), without a word
        if trainer.state.status.value != "interrupted":
            raise
        status = "KILLED"
        print(_stopped_message(out_dir, trainer.current_epoch, int(cfg["optim"]["epochs"]), t["select"],
                               cfg["data"]["path"]), file=sys.stderr)
        raise KeyboardInterrupt from None
    finally:
        if client is not None and status != "FINISHED":
            client.set_terminated(run_id, "KILLED" if status == "KILLED" else "FAILED")
    try:  # after training: export, test, logging and registration; a failure here ends the MLflow run FAILED
        # "last": the end of the schedule, for when the validation slice is too small or too unlike the test
        # data to pick an epoch (docs/training.md, NW-UCLA); "best" otherwise
        chosen, other = (last_cb, ckpt_cb) if t["select"] == "last" else (ckpt_cb, last_cb)
        best = chosen.best_model_path or other.best_model_path  # "" when none was saved (Path("") is the cwd)
        selected = Path(best)
        if not trainer.is_global_zero:  # other DDP ranks only train; rank 0 exports, tests and logs
            return TrainResult(checkpoint=selected, onnx_path=None, out_dir=out_dir)

        if not best or not selected.is_file():
            raise ActionposeError(f"training produced no checkpoint in {checkpoint_dir(out_dir)}")
        # "last" without a scored validation slice: best.ckpt then holds the last epoch (metrics said "best")
        metrics: dict[str, Any] = {"epochs": trainer.current_epoch, "selected": selected.stem if has_val else "last",
                                   "sec_per_epoch": round(sum(timer.times) / max(1, len(timer.times)), 2)}
        if module.graphed is not None:  # how many training steps a CUDA graph replayed (0 on a CPU), and why not
            metrics["cuda_graph_steps"] = module.graphed.replays
            if module.graphed.disabled:
                metrics["cuda_graphs_off"] = module.graphed.disabled
        if has_val and ckpt_cb.best_model_score is not None:
            metrics["best_val_top1"] = round(float(ckpt_cb.best_model_score), 4)  # val_select = top-1 - <1e-5
        if has_val and "val_top1" in trainer.callback_metrics:
            metrics["last_val_top1"] = round(float(trainer.callback_metrics["val_top1"]), 4)

        from actionpose.training.checkpoint import load_checkpoint
        from actionpose.training.evaluate import TorchPredictor, evaluate, metrics_from_probs, plot_confusion

        onnx_path = None
        if t["export_onnx"]:
            from actionpose.training.export import export_onnx

            model, meta_ck, _ = load_checkpoint(selected)
            onnx_path = out_dir / f"{name}.onnx"
            metrics["onnx_max_abs_diff"] = export_onnx(model, meta_ck, onnx_path)["max_abs_diff"]

        if dm.test_samples:  # reported once for the selected model, never used for selection
            tp = TorchPredictor(selected, device="cuda" if gpu else "cpu")  # on a lent GPU the test takes seconds
            probs = tp.predict_sequences([(s.keypoint, s.score) for s in dm.test_samples], empty="score")
            import numpy as np

            res = metrics_from_probs(probs, np.array([s.label for s in dm.test_samples]), len(dm.classes))
            metrics.update({f"test_{k}": res[k] for k in ("top1", "top5", "mean_class_acc", "n")})
            plot_confusion(res["confusion"], dm.classes, out_dir / "confusion.png",
                           f"{name}: test top1={res['top1']:.4f}")
        write_text_atomic(out_dir / "metrics.json", json.dumps(metrics, indent=1))

        if client is not None:
            from mlflow.entities import Metric

            now = int(time.time() * 1000)
            client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()
                                              if isinstance(v, (int, float))])
            for f in (out_dir / "metrics.json", out_dir / "confusion.png"):
                if f.exists():
                    client.log_artifact(run_id, str(f))
            client.log_artifact(run_id, str(selected), artifact_path="checkpoints")
            if onnx_path is not None:
                client.log_artifact(run_id, str(onnx_path), artifact_path="onnx")
                if cfg["mlflow"]["register"]:
                    from actionpose.training.tracking import log_pyfunc

                    version = log_pyfunc(client, run_id, onnx_path, cfg["mlflow"]["registered_name"] or name)
                    if version:
                        client.set_tag(run_id, "actionpose.registered_model", version)
            client.set_terminated(run_id, "FINISHED")
        return TrainResult(checkpoint=selected, onnx_path=onnx_path, metrics=metrics, run_id=run_id, out_dir=out_dir)
    except BaseException:
        if client is not None:
            client.set_terminated(run_id, "FAILED")  # was left RUNNING forever
        raise
