"""Shared MLflow: a real ``mlflow server`` (SQLite backend, proxied artifact store in tmp) on 127.0.0.1.

A tiny model is trained against it through ``MLFLOW_TRACKING_URI`` (``actionpose train``), then read
back from the registry by name and version by ``actionpose tag --model models:/NAME/VERSION``. The
server always dies with the test (its own process group), and every wait is bounded.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from test_ddp import TINY_CONFIG, tiny_penn

MLFLOW = Path(sys.executable).with_name("mlflow")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    if not MLFLOW.exists():
        pytest.skip(f"{MLFLOW} not installed")
    port = _free_port()
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen([str(MLFLOW), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                             "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
                             "--artifacts-destination", str(tmp_path / "artifacts")],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"mlflow server exited ({proc.returncode}): {(tmp_path / 'server.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("mlflow server did not answer /health within 120 s")
            time.sleep(0.5)
        yield url
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
        log.close()


@pytest.mark.slow
def test_train_against_server_then_tag_with_registered_model(mlflow_server, tmp_path):
    from mlflow.tracking import MlflowClient

    from actionpose.data.format import SkeletonDataset, load_dataset, save_dataset

    data = tiny_penn(tmp_path)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY_CONFIG.format(data=data).replace("name: tiny", "name: shared_tiny"))
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server, "ACTIONPOSE_CACHE": str(tmp_path / "cache"),
           "PYTHONWARNINGS": "ignore"}
    train = subprocess.run([sys.executable, "-m", "actionpose", "train", "-c", str(cfg),
                            f"output.dir={tmp_path / 'run'}"], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=300)
    assert train.returncode == 0, train.stderr[-3000:]
    assert not (tmp_path / "mlflow.db").exists()  # nothing went to the local default store

    client = MlflowClient(mlflow_server)
    [mv] = client.search_model_versions("name='shared_tiny'")
    assert mv.version in (1, "1") and mv.status == "READY"
    run = client.get_run(mv.run_id)
    assert run.info.status == "FINISHED" and {"val_top1", "test_top1"} <= set(run.data.metrics)
    assert (tmp_path / "artifacts").is_dir() and any((tmp_path / "artifacts").rglob("*.onnx"))

    ds = load_dataset(data)
    one = tmp_path / "one.pkl"
    test_clip = [a for a in ds.annotations if a["frame_dir"] in ds.split["test"]][:1]
    save_dataset(SkeletonDataset(test_clip, ds.layout, ds.classes, {}), one)
    out = tmp_path / "tags.json"
    tag = subprocess.run([sys.executable, "-m", "actionpose", "tag", str(one), "--model", "models:/shared_tiny/1",
                          "--json", str(out), "--quiet"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=180)
    assert tag.returncode == 0, tag.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["model"] == "models:/shared_tiny/1"
    downloaded = list((tmp_path / "cache").rglob("*.onnx"))
    assert len(downloaded) == 1
    # only the model's artifacts/ came down, not the code it carries for serving (110 files, 6 s), and no bars
    assert not list((tmp_path / "cache").rglob("*.py")) and "Downloading artifacts" not in tag.stderr
    from actionpose.inference.predictor import ActionPredictor

    assert ActionPredictor.from_path(downloaded[0]).classes == ds.classes
    assert downloaded[0].read_bytes() == (tmp_path / "run" / "shared_tiny.onnx").read_bytes()

    missing = subprocess.run([sys.executable, "-m", "actionpose", "tag", str(one), "--model",
                              "models:/shared_tiny/7", "--quiet"], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=180)
    assert missing.returncode == 2
    assert "error: models:/shared_tiny/7: not available from the MLflow registry" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_a_registry_lookup_without_a_store_creates_none(tmp_path):
    """`--model models:/NAME/1` in a folder without mlflow.db made an empty store there (and two INFO
    lines) before saying the model did not exist."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    r = subprocess.run([sys.executable, "-m", "actionpose", "eval", "--model", "models:/penn/1", "--data", "x.pkl"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "no MLflow store at sqlite:///" in r.stderr and r.stderr.count("\n") == 1
    assert not (tmp_path / "mlflow.db").exists()


def test_an_unreachable_tracking_server_is_one_line_at_once(tmp_path):
    """MLflow's client retried a refused connection for ~2 minutes, printing nothing (training looked hung)."""
    import socket
    import time

    from actionpose.errors import ActionposeError
    from actionpose.training.tracking import start_run

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    with pytest.raises(ActionposeError, match=r"cannot connect.*--no-mlflow"):
        start_run({"mlflow": {"tracking_uri": f"http://127.0.0.1:{port}", "experiment": "x"}, "name": "n",
                   "model": {"name": "stgcn"}})
    assert time.monotonic() - t0 < 10
