"""Every ``bash`` and ``python`` block of the user guide pages owned here runs, in order, from a scratch copy
of the repository root (symlinks to tests/, configs/, serve/) on the bundled fixtures.

A block preceded by ``<!-- docs-test: needs the shipped fall model -->`` (the service) runs with the shipped
``fall`` model, or, in a checkout without it, with a toy stand-in trained here on the Penn fixture clips
relabelled fall/no_fall (``ACTIONPOSE_FALL_MODEL``): the block tests deployment mechanics, not accuracy. ``bash`` blocks run with
``set -euo pipefail``, so any failing command fails the test with the block and its output.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = ["index.md", "data.md", "layouts.md", "extending.md", "deploy.md", "distributed.md"]
FENCE = re.compile(r"(<!-- docs-test: ([^>]*?) -->\n)?```(bash|python)\n(.*?)```", re.S)


def blocks(doc: str) -> list[tuple[str, str, str | None]]:
    """``[(language, code, requirement or None)]`` in document order."""
    text = (REPO / "docs" / doc).read_text()
    return [(m.group(3), m.group(4), m.group(2)) for m in FENCE.finditer(text)]


def _fall_model_present() -> bool:
    from actionpose.inference.fall import resolve_fall_model

    try:
        resolve_fall_model("fall")
        return True
    except Exception:  # noqa: BLE001 - any failure to resolve means "not installed"
        return False


def _workdir(tmp: Path) -> Path:
    for name in ("tests", "configs", "serve", "notebooks", "actionpose"):
        if (REPO / name).exists():
            (tmp / name).symlink_to(REPO / name)
    (tmp / "data").mkdir()
    (tmp / "runs").mkdir()
    return tmp


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RAY_ADDRESS", "ACTIONPOSE_"))}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", PYTHONWARNINGS="ignore",
               ACTIONPOSE_CACHE=str(tmp / "cache"), PYTHONPATH=str(tmp), MPLBACKEND="Agg")
    return env


def test_docs_have_tested_blocks():
    for doc in DOCS:
        assert blocks(doc), f"{doc}: no tested bash/python block"
    assert sum(lang == "bash" for doc in DOCS for lang, _, _ in blocks(doc)) >= 10
    assert "RESULTS_TABLE" not in (REPO / "docs" / "distributed.md").read_text()


def _toy_fall_model(tmp: Path) -> Path:
    from actionpose.data.format import SkeletonDataset, save_dataset
    from actionpose.data.importers import convert
    from actionpose.training import make_config, train

    ds = convert("penn", REPO / "tests" / "fixtures" / "datasets" / "penn")
    for a in ds.annotations:
        a["label"] = 0 if ds.classes[a["label"]] == "pushup" else 1
    save_dataset(SkeletonDataset(ds.annotations, ds.layout, ["fall", "no_fall"], ds.split), tmp / "toy_fall.pkl")
    res = train(make_config({
        "name": "toy_fall", "data": {"path": str(tmp / "toy_fall.pkl"), "val_fraction": 0, "layout": "body13"},
        "preprocess": {"clip_len": 16, "test_clips": 1}, "model": {"name": "stgcn_small", "base_channels": 16},
        "optim": {"epochs": 1, "batch_size": 2}, "mlflow": {"enabled": False}, "trainer": {"progress_bar": False},
        "output": {"dir": str(tmp / "toy_fall")}}))
    return res.onnx_path


@pytest.mark.slow
@pytest.mark.parametrize("doc", DOCS)
def test_doc_blocks_run(doc, tmp_path):
    work = _workdir(tmp_path)
    env = _env(tmp_path)
    for i, (lang, code, needs) in enumerate(blocks(doc)):
        if needs and "fall model" in needs and not _fall_model_present():
            env["ACTIONPOSE_FALL_MODEL"] = str(_toy_fall_model(tmp_path))
        cmd = ["bash", "-euo", "pipefail", "-c", code] if lang == "bash" else [sys.executable, "-c", code]
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            out, err = proc.communicate(timeout=600)
        finally:  # servers a failed block started in the background die with it
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()
        assert proc.returncode == 0, (f"{doc} block {i} ({lang}) failed ({proc.returncode}):\n{code}\n"
                                      f"--- stdout\n{out[-2000:]}\n--- stderr\n{err[-3000:]}")


def test_the_dockerfile_copies_what_exists_and_its_documented_run_can_write_its_database():
    """The image cannot be built here (no Docker daemon), so what can be read is checked: every COPY source
    exists, the CMD is the documented start command, and every documented ``docker run`` mounts the data
    folder so the image's non-root user can write to it. The docs showed ``-v $PWD/serve_data:/app/serve_data``:
    a host folder keeps its host owner (root when Docker creates it), so uid 10001 could not create the
    database and the container exited (probe)."""
    dockerfile = (REPO / "serve" / "Dockerfile").read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            for src in line.split()[1:-1]:
                assert (REPO / src).exists(), f"Dockerfile copies {src}, which is not in the repository"
    assert 'CMD ["python", "-m", "serve", "--host", "0.0.0.0", "--port", "8000"]' in dockerfile
    assert re.search(r"^USER app$", dockerfile, re.M) and "useradd --create-home --uid 10001 app" in dockerfile
    texts = {"serve/Dockerfile": dockerfile, **{f"docs/{d}": (REPO / "docs" / d).read_text()
                                                for d in ("fall.md", "deploy.md")}}
    runs = [(where, m.group(0)) for where, text in texts.items()
            for m in re.finditer(r"docker run [^`\n]*", text)]
    mounts = [(where, m) for where, cmd in runs for m in re.findall(r"-v (\S+):/app/serve_data", cmd)]
    assert mounts, "no documented docker run mounts /app/serve_data"
    for where, source in mounts:  # a named volume: Docker starts it with the image folder's owner (the app user)
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", source), f"{where}: -v {source}: a host folder"
