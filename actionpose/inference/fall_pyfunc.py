"""MLflow pyfunc flavour of :class:`~actionpose.inference.fall.FallDetector`.

    from actionpose.inference.fall_pyfunc import log_fall_model
    info = log_fall_model("fall")                       # inside an active MLflow run, or starts one
    model = mlflow.pyfunc.load_model(info.model_uri)
    model.predict(pd.DataFrame({"keypoints": [window.tolist()], "layout": ["coco17"], "fps": [30.0]}))

Input rows: ``keypoints`` [T][V][2|3] (nested lists), ``layout`` (default coco17), ``fps`` (default 30).
Output: a DataFrame with ``prob``, ``is_fall`` (the calibrated threshold from the sidecar), ``windows``,
``peak_time`` and ``fall_start`` per row (a row longer than the model's 2.13 s is read whole: :class:`~actionpose.inference.fall.FallResult`).
"""
from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import numpy as np

from actionpose.inference.pyfunc_env import pyfunc_environment


class FallPyfunc(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:  # noqa: ANN001
        from actionpose.inference.fall import FallDetector

        self.detector = FallDetector.from_pretrained(context.artifacts["onnx"])

    def predict(self, context, model_input, params=None):  # noqa: ANN001
        import pandas as pd

        df = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        results = []
        for _, row in df.iterrows():
            layout = row["layout"] if "layout" in df and isinstance(row["layout"], str) else "coco17"
            fps = float(row["fps"]) if "fps" in df else 30.0
            results.append(self.detector.predict(np.asarray(row["keypoints"], np.float32), layout=layout, fps=fps))
        return pd.DataFrame({"prob": [r.prob for r in results], "is_fall": [r.is_fall for r in results],
                             "windows": [r.windows for r in results], "peak_time": [r.peak_time for r in results],
                             "fall_start": [r.fall_start for r in results]})


def log_fall_model(name_or_path: str = "fall", artifact_path: str = "fall_detector",
                   registered_name: str | None = None) -> Any:
    """Log the ONNX model and its sidecar (threshold, debounce) as a pyfunc model."""
    artifacts = _artifacts(name_or_path)  # an unknown model is refused before the code is copied
    with pyfunc_environment() as env:
        return mlflow.pyfunc.log_model(artifact_path, python_model=FallPyfunc(), artifacts=artifacts,
                                       registered_model_name=registered_name, **env)


def save_fall_model(path: str, name_or_path: str = "fall") -> str:
    """Write the pyfunc model to a local folder (``mlflow models serve -m PATH`` serves it)."""
    artifacts = _artifacts(name_or_path)
    with pyfunc_environment() as env:
        mlflow.pyfunc.save_model(path, python_model=FallPyfunc(), artifacts=artifacts, **env)
    return path


def _artifacts(name_or_path: str) -> dict[str, str]:
    """The ONNX model and, where it has one, its sidecar (threshold, debounce)."""
    from actionpose.inference.fall import resolve_fall_model

    onnx = resolve_fall_model(name_or_path)
    artifacts = {"onnx": str(onnx)}
    if onnx.with_suffix(".json").exists():
        artifacts["sidecar"] = str(onnx.with_suffix(".json"))
    return artifacts
