"""MLflow pyfunc flavour: ``mlflow models serve`` runs the exported ONNX with onnxruntime.

Input, either:

* an array ``[N, M, T, V, C]`` of raw keypoints in the model's layout (REST: ``{"inputs": [...]}``). Samples of
  different lengths are padded with all-zero frames at the end; those trailing frames are dropped before
  scoring, so a padded batch scores as each sample alone would (sampled as empty frames, padding to the
  longest of 120 UTD-MHAD test clips lowered top-1 from 55.8 to 40.0 %);
* a DataFrame (REST: ``{"dataframe_split": ...}``) with a ``keypoint`` column of nested lists ``[M][T][V][C]``,
  one sample per row, of any length, and optionally a ``keypoint_score`` column ``[M][T][V]`` (without it a
  joint at (0, 0) is unseen and every other joint seen, as in the predictor).

A model trained with scores (``preprocess.with_score``) also takes each joint's score as one more channel
after its coordinates (C = 3 for 2D, 4 for 3D), in either form: the array form had no other place for
it, and scored every seen joint as 1 (one probe's clip: ``run`` 0.61 with its real scores, ``sit`` 0.99 without).

Output: a DataFrame of class probabilities, one column per class. Input that cannot be scored is refused
with an ``MlflowException`` (``INVALID_PARAMETER_VALUE``): MLflow's scoring server then answers 400 with the
reason itself, where any other exception came back as a generic message over a 20-40-line stack trace.

Here, outside ``actionpose.training``, because loading the model imports this module: the training
package pulls in torch and Lightning, which a serving environment need not have (``pyfunc_env``).
"""
from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import numpy as np


def trim_padding(keypoint: np.ndarray, score: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """``[M, T, V, C]`` without its trailing frames in which no person has any joint off (0, 0) (padding);
    at least one frame is kept."""
    seen = np.any(np.nan_to_num(keypoint) != 0, axis=(0, 2, 3))
    t = int(np.flatnonzero(seen)[-1]) + 1 if seen.any() else keypoint.shape[1]
    return keypoint[:, :t], None if score is None else score[:, :t]


class OnnxActionModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from actionpose.inference.predictor import ActionPredictor

        self.predictor = ActionPredictor.from_path(context.artifacts["onnx"])

    def predict(self, context, model_input, params=None):
        import pandas as pd
        from mlflow.exceptions import INVALID_PARAMETER_VALUE, MlflowException

        from actionpose.errors import ActionposeError

        try:
            cfg = self.predictor.config
            sequences = _sequences(model_input, self.predictor.coords if cfg.with_score else None)
            probs = self.predictor.predict_sequences(sequences) if sequences else \
                np.zeros((0, self.predictor.num_classes), np.float32)
        except ActionposeError as e:
            raise MlflowException(str(e), error_code=INVALID_PARAMETER_VALUE) from None
        return pd.DataFrame(probs, columns=self.predictor.classes)


def _sequences(model_input: Any, coords: int | None = None) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """``[(keypoint [M, T, V, C], score [M, T, V] or None), ...]`` from an array or a DataFrame, padding trimmed.
    ``coords``: the model's coordinate count when it reads scores; a keypoint with one channel more carries them."""
    import pandas as pd

    from actionpose.errors import ActionposeError

    def array(value: Any, what: str, ndim: int) -> np.ndarray:
        try:
            a = np.asarray(value, dtype=np.float32)
        except (TypeError, ValueError):  # numpy's "setting an array element with a sequence" said nothing useful
            raise ActionposeError(f"{what}: not a numeric array (rows of different lengths, or not numbers); give "
                                  "one sample per DataFrame row, or pad samples with all-zero frames at the end "
                                  "(trailing all-zero frames are ignored)") from None
        if a.ndim != ndim:
            raise ActionposeError(f"{what}: {a.ndim} dimensions, expected {ndim} "
                                  f"({'[N, M, T, V, C]' if ndim == 5 else '[M, T, V, C]' if ndim == 4 else '[M, T, V]'})")
        return a

    if isinstance(model_input, pd.DataFrame):
        if model_input.shape[1] == 0:
            raise ActionposeError("model input: a DataFrame with no columns; give a 'keypoint' column")
        known = ("keypoint", "keypoint_score")
        # one unnamed column (an integer label): a plain list, as MLflow sends it; one column *named* otherwise
        # ('keypoints', 'kp') is a misspelling, and was scored as the keypoints without a word
        unnamed = model_input.shape[1] == 1 and not isinstance(model_input.columns[0], str)
        if "keypoint" in model_input or not unnamed:
            extra = [str(c) for c in model_input.columns if c not in known]
            if extra or "keypoint" not in model_input:  # a misspelt keypoint_scores was dropped, a 'kp' column scored
                what = f"unknown column(s) {', '.join(map(repr, extra))}" if extra else "no 'keypoint' column"
                raise ActionposeError(f"model input: {what}; the columns are 'keypoint' and, optionally, "
                                      "'keypoint_score'")
        kp_col = model_input["keypoint"] if "keypoint" in model_input else model_input.iloc[:, 0]
        sc_col = model_input["keypoint_score"] if "keypoint_score" in model_input else None
        out = []
        for i, value in enumerate(kp_col.tolist()):
            kp = array(value, f"row {i} keypoint", 4)
            sc = None if sc_col is None else array(sc_col.iloc[i], f"row {i} keypoint_score", 3)
            if sc is not None and sc.shape != kp.shape[:3]:
                raise ActionposeError(f"row {i} keypoint_score: shape {list(sc.shape)}, expected {list(kp.shape[:3])}")
            if coords is not None and kp.shape[-1] == coords + 1:
                if sc is not None:
                    raise ActionposeError(f"row {i}: scores given twice, as a last keypoint channel and as "
                                          "keypoint_score; give one")
                kp, sc = kp[..., :coords], kp[..., coords]
            out.append(trim_padding(kp, sc))
        return out
    if hasattr(model_input, "__len__") and len(model_input) == 0:
        return []  # an empty batch: an empty answer
    x = array(model_input, "model input", 5)
    if coords is not None and x.shape[-1] == coords + 1:
        return [trim_padding(sample[..., :coords], sample[..., coords]) for sample in x]
    return [trim_padding(sample) for sample in x]
