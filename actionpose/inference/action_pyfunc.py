"""MLflow pyfunc flavour: ``mlflow models serve`` runs the exported ONNX with onnxruntime.

Input: a numpy array (or a DataFrame column of nested lists) ``[N, M, T, V, C]`` of raw keypoints
in the model's layout; output: a DataFrame of class probabilities with one column per class.

Here, outside ``actionpose.training``, because loading the model imports this module: the training
package pulls in torch and Lightning, which a serving environment need not have (``pyfunc_env``).
"""
from __future__ import annotations

import mlflow.pyfunc
import numpy as np


class OnnxActionModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context) -> None:
        from actionpose.inference.predictor import ActionPredictor

        self.predictor = ActionPredictor.from_path(context.artifacts["onnx"])

    def predict(self, context, model_input, params=None):
        import pandas as pd

        from actionpose.errors import ActionposeError

        try:
            if isinstance(model_input, pd.DataFrame):
                x = np.asarray(model_input.iloc[:, 0].tolist(), dtype=np.float32)
            else:
                x = np.asarray(model_input, dtype=np.float32)
        except (TypeError, ValueError):  # numpy's "setting an array element with a sequence" said nothing useful
            raise ActionposeError("model input: not a numeric [N, M, T, V, C] array (rows of different lengths, "
                                  "or not numbers); pad every sample to one M and T (zeros are not-seen joints)") from None
        probs = self.predictor.predict(x)
        return pd.DataFrame(probs, columns=self.predictor.classes)
