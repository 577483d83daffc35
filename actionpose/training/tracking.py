"""MLflow tracking: local SQLite store by default, per-epoch metrics, artifacts, registered pyfunc model.

``MLFLOW_TRACKING_URI`` (or ``mlflow.tracking_uri`` in the config) selects any MLflow server;
otherwise runs go to ``sqlite:///<cwd>/mlflow.db`` with artifacts in ``<cwd>/mlartifacts``.
"""
from __future__ import annotations

import hashlib
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl

from actionpose.errors import ActionposeError


def redact_uri(uri: str) -> str:
    """A tracking URI fit to print: ``user:password@`` becomes ``***@``."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(uri)
        if parts.username or parts.password:
            return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))
    except ValueError:
        pass
    return uri


def tracking_uri(cfg_uri: str | None = None) -> str:
    return cfg_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def _artifact_root(uri: str) -> str | None:
    """Keep a local SQLite store's artifacts beside the database (MLflow's default is ``./mlruns`` in cwd)."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).resolve().parent / "mlartifacts").as_uri()
    return None


def start_run(cfg: dict[str, Any], resume_run_id: str | None = None):
    """Create/find the experiment and start a run; returns ``(client, run_id)``.

    ``resume_run_id`` (the run a resumed checkpoint was logged to): that run is continued, so one run's
    curves cover the whole training, when this tracking store has it; otherwise a new run is started."""
    import logging

    from mlflow.tracking import MlflowClient

    logging.getLogger("alembic").setLevel(logging.WARNING)
    uri = tracking_uri(cfg["mlflow"]["tracking_uri"])
    _probe_server(uri)
    try:
        client = MlflowClient(tracking_uri=uri)  # MLflow 3 refuses a folder path here
    except Exception as e:  # noqa: BLE001 - MlflowException ("filesystem tracking backend ... maintenance mode")
        raise _store_error(uri, e) from None
    name = cfg["mlflow"]["experiment"]
    if resume_run_id:
        try:
            client.update_run(resume_run_id, status="RUNNING")
            return client, resume_run_id
        except Exception:  # noqa: BLE001 - another store, or the run was deleted: log to a new run
            pass
    try:
        exp = client.get_experiment_by_name(name)
        exp_id = exp.experiment_id if exp else client.create_experiment(name, artifact_location=_artifact_root(uri))
        run = client.create_run(exp_id, run_name=cfg.get("name"), tags={"actionpose.model": cfg["model"]["name"]})
    except Exception as e:  # noqa: BLE001 - MLflow raises its own, requests' and SQLAlchemy's errors
        raise _store_error(uri, e) from None
    return client, run.info.run_id


def _store_error(uri: str, e: Exception) -> ActionposeError:
    text = str(e).strip()
    first = (text.splitlines() or [type(e).__name__])[0]
    if "maintenance mode" in text and "MLFLOW_ALLOW_FILE_STORE" in text:
        # MLflow 3's refusal of a folder store is 450 characters; cut at 200 it lost the two ways out
        first = ("MLflow 3 keeps folder stores read-only: migrate with `mlflow migrate-filestore`, or set "
                 "MLFLOW_ALLOW_FILE_STORE=true to use it as it is")
    first = first if len(first) <= 300 else first[:297] + "..."
    local = uri.startswith("file:") or "://" not in uri
    folder = uri[len("file://"):] if uri.startswith("file://") else uri[len("file:"):] if uri.startswith("file:") else uri
    hint = f" (a local store is a SQLite file: sqlite:///{Path(folder).resolve() / 'mlflow.db'})" if local else ""
    return ActionposeError(f"MLflow tracking store {redact_uri(uri)}: cannot start a run ({first}){hint}; fix "
                           "MLFLOW_TRACKING_URI / mlflow.tracking_uri, or train without it: mlflow.enabled=false "
                           "(or --no-mlflow)")


def _probe_server(uri: str, timeout_s: float = 5.0) -> None:
    """One TCP connect to an http(s) tracking server before MLflow's own client: that one retries a refused
    connection with back-off for about two minutes, printing nothing (a training run looked hung)."""
    from urllib.parse import urlsplit

    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return
    import socket

    try:
        with socket.create_connection((parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)),
                                      timeout=timeout_s):
            pass
    except OSError as e:
        raise ActionposeError(f"MLflow tracking store {redact_uri(uri)}: cannot connect ({e.strerror or e}); fix "
                              "MLFLOW_TRACKING_URI / mlflow.tracking_uri, or train without it: mlflow.enabled=false "
                              "(or --no-mlflow)") from None


def fingerprint(path: str | Path) -> str:
    """SHA-256 of the dataset file (first 16 hex digits): which data a run saw."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


class MlflowEpochLogger(pl.Callback):
    """Logs every epoch's logged metrics (train and validation) to the run."""

    def __init__(self, client, run_id: str):
        self.client, self.run_id = client, run_id
        self._validated: int | None = None  # the epoch whose validation ran last

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._validated = trainer.current_epoch

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """One point per metric per epoch, logged here: Lightning has run this epoch's validation by now
        and ``callback_metrics`` holds both halves fresh. (At ``on_validation_epoch_end`` it still holds
        the previous validation's numbers: logging there too put every validation value in the history
        twice, the second time one epoch late.) Validation numbers are logged only in an epoch that ran
        validation, so a stale value is never repeated."""
        from mlflow.entities import Metric
        import time

        now, epoch = int(time.time() * 1000), trainer.current_epoch
        fresh_val = self._validated == epoch
        metrics = [Metric(k, float(v), now, epoch) for k, v in trainer.callback_metrics.items()
                   if getattr(v, "numel", lambda: 1)() == 1 and (fresh_val or not k.startswith("val"))]
        if metrics:
            self.client.log_batch(self.run_id, metrics=metrics)


def log_pyfunc(client, run_id: str, onnx_path: Path, registered_name: str | None) -> str | None:
    """Log an MLflow pyfunc model that runs the ONNX file with onnxruntime; register it if named."""
    import mlflow
    import mlflow.pyfunc

    mlflow.set_tracking_uri(client._tracking_client.tracking_uri)
    # MLflow's advice to the author of a pyfunc model (type hints, code-based logging) and its artifact
    # progress bars were printed into every training's results; they say nothing to the person training
    quiet = logging.getLogger("mlflow")
    level = quiet.level
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        quiet.setLevel(logging.ERROR)
        # record=True keeps them off the console even though MLflow installs warning filters of its own
        with warnings.catch_warnings(record=True):
            from actionpose.inference.action_pyfunc import OnnxActionModel  # MLflow warns when it is defined
            from actionpose.inference.pyfunc_env import pyfunc_environment

            with mlflow.start_run(run_id=run_id), pyfunc_environment() as env:
                info = mlflow.pyfunc.log_model(name="model", python_model=OnnxActionModel(),
                                               artifacts={"onnx": str(onnx_path)}, **env)
            if registered_name:
                mv = mlflow.register_model(info.model_uri, registered_name)
                return f"{mv.name}/{mv.version}"
    finally:
        quiet.setLevel(level)
    return None
