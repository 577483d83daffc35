"""``models:/NAME/VERSION`` (or ``models:/NAME@ALIAS``) -> the registered model's ONNX file, downloaded.

Why: a team shares one MLflow server; ``actionpose tag --model models:/falls/3`` must run exactly the
model a colleague registered, without anyone copying files around. Training registers a pyfunc whose
``artifacts/`` folder holds the exported ``.onnx`` (with its preprocessing metadata), so the ONNX file
alone is enough to build the predictor. The server is the one training used:
``MLFLOW_TRACKING_URI`` (or the local ``sqlite:///mlflow.db`` default, see training/tracking.py).
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from actionpose.errors import ActionposeError

PREFIX = "models:/"


def cache_root() -> Path:
    return Path(os.environ.get("ACTIONPOSE_CACHE", Path.home() / ".cache" / "actionpose")) / "registry"


def resolve_registry_model(uri: str, tracking_uri: str | None = None) -> Path:
    """Download ``uri`` from the MLflow model registry (fresh each call: aliases move) -> local .onnx path."""
    from actionpose.training.tracking import tracking_uri as default_uri

    if not uri.startswith(PREFIX) or len(uri) <= len(PREFIX):
        raise ActionposeError(f"{uri}: expected models:/NAME/VERSION or models:/NAME@ALIAS")
    server = tracking_uri or default_uri()
    if server.startswith("sqlite:///") and not Path(server[len("sqlite:///"):]).exists():
        # looking a model up must not create an empty store (MLflow would make mlflow.db here and then say
        # the model does not exist): say where we looked instead
        raise ActionposeError(f"{uri}: no MLflow store at {server} (no such file); run from the folder your "
                              "training runs used, or set MLFLOW_TRACKING_URI to your tracking server")
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    key = hashlib.sha1(f"{server}|{uri}".encode()).hexdigest()[:16]
    dest = cache_root() / key
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=dest.parent))
    # no "Downloading artifacts: n/110" bars on stderr (a model carries its code: 110 files)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        try:  # the pyfunc's artifacts/ folder alone (the ONNX file): 0.04 s against 6 s for the whole model with its
            # code from a tracking server
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"{uri}/artifacts", dst_path=str(tmp),
                                                             tracking_uri=server, registry_uri=server))
        except MlflowException:  # another model layout, or no such model: the whole model (says which)
            local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp),
                                                             tracking_uri=server, registry_uri=server))
    except MlflowException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ActionposeError(f"{uri}: not available from the MLflow registry at {server} "
                              f"({str(e.message).splitlines()[0][:200]})") from None
    except Exception as e:  # connection refused, timeouts: one line, not a traceback
        shutil.rmtree(tmp, ignore_errors=True)
        raise ActionposeError(f"{uri}: cannot reach the MLflow registry at {server} ({type(e).__name__})") from None
    onnx = sorted(local.rglob("*.onnx")) if local.is_dir() else ([local] if local.suffix == ".onnx" else [])
    if not onnx:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ActionposeError(f"{uri}: registered model has no .onnx artifact (register it with actionpose train)")
    rel = onnx[0].relative_to(tmp)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)  # whole download appears at once; a concurrent reader never sees half of it
    return dest / rel
