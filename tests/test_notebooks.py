"""Both notebooks execute top to bottom (nbclient, the venv's own kernel) on the repo's small data.

Committed notebooks carry no outputs (they are stripped in git); the executed copies go to tmp.
The quickstart uses the shipped ``penn`` model, or, in a checkout without shipped models, the model
the training notebook just exported (so it is always executed, never skipped).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="notebook tests need the dev extra (nbformat, nbclient, ipykernel)")
nbclient = pytest.importorskip("nbclient", reason="notebook tests need the dev extra (nbformat, nbclient, ipykernel)")
pytest.importorskip("ipykernel", reason="notebook tests need the dev extra (nbformat, nbclient, ipykernel)")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _execute(name: str, env: dict[str, str], tmp: Path):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    old = dict(os.environ)
    os.environ.update(env)  # the kernel inherits the environment
    try:
        client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                         resources={"metadata": {"path": str(NOTEBOOKS)}})
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    nbformat.write(nb, tmp / name)
    return nb


def _text(nb) -> str:
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            out.append(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")))
    return "\n".join(out)


def _images(nb) -> int:
    return sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))


def test_notebooks_are_stripped():
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: outputs not stripped"


@pytest.mark.slow
def test_notebooks_execute(tmp_path):
    from actionpose.inference.predictor import ASSETS, MODEL_ALIASES

    train_out = tmp_path / "train"
    nb = _execute("train_your_own.ipynb", {"ACTIONPOSE_NB_OUT": str(train_out), "MLFLOW_TRACKING_URI": ""},
                  tmp_path)
    text = _text(nb)
    assert "ONNX vs PyTorch max abs diff" in text and "predicted:" in text
    assert _images(nb) >= 2  # metric curves + confusion matrix
    assert (train_out / "mine.onnx").exists() and (train_out / "mlflow.db").exists()

    shipped = (ASSETS / f"{MODEL_ALIASES['penn']}.onnx").exists()
    model = "penn" if shipped else str(train_out / "mine.onnx")
    quick_out = tmp_path / "quick"
    nb = _execute("quickstart.ipynb", {"ACTIONPOSE_NB_OUT": str(quick_out), "ACTIONPOSE_NB_MODEL": model}, tmp_path)
    text = _text(nb)
    assert "classes:" in text and "(true: squat)" in text and "(true: pushup)" in text
    assert (quick_out / "tags.json").exists() and (quick_out / "overlay.mp4").exists()
    assert _images(nb) >= 3  # timeline, overlay frames, sample timeline
