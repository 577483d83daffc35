"""The environment of actionpose's MLflow pyfunc models: the code they run and what pip must install.

Why: actionpose is not on PyPI, so a model that asked pip for "actionpose" (or whose requirements MLflow
inferred) could only be served where someone had installed it by hand. A logged model carries the
actionpose code it runs instead (``code_paths``: the package without its bundled models and videos,
~1 MB) and asks pip only for numpy and onnxruntime, pinned to the versions it was logged with;
``mlflow models serve`` builds the model's own environment from them. The predictors import nothing
else (no torch, OpenCV or Lightning), which a test checks by loading a model where actionpose is not
installed.
"""
from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np


def pyfunc_code(folder: Path) -> str:
    """A copy of the actionpose package in ``folder`` for ``code_paths``, without assets and caches (the
    predictor needs code only: the model is the logged ONNX artifact)."""
    import actionpose

    dst = folder / "actionpose"
    shutil.copytree(Path(actionpose.__file__).parent, dst,
                    ignore=shutil.ignore_patterns("assets", "__pycache__", "*.pyc"))
    return str(dst)


def pyfunc_requirements() -> list[str]:
    """What the predictor imports, pinned to this environment's versions."""
    import onnxruntime

    return [f"numpy=={np.__version__}", f"onnxruntime=={onnxruntime.__version__}"]


@contextlib.contextmanager
def pyfunc_environment() -> Iterator[dict[str, Any]]:
    """``code_paths`` and ``pip_requirements`` for ``mlflow.pyfunc.log_model`` / ``save_model``, valid inside
    the block (the code copy lives in a temporary folder until MLflow has copied it into the model)."""
    with tempfile.TemporaryDirectory() as tmp:
        yield {"code_paths": [pyfunc_code(Path(tmp))], "pip_requirements": pyfunc_requirements()}
