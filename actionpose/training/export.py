"""ONNX export with dynamic batch/persons/time axes, metadata and an onnxruntime parity check."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from actionpose.data.atomic import atomic_path
from actionpose.data.transforms import preprocess_keys
from actionpose.errors import ActionposeError
from actionpose.inference.predictor import META_KEY

OPSET = 17


def onnx_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """The metadata keys the predictor reads (see ``ActionPredictor``)."""
    keys = preprocess_keys() + ("classes", "coords", "in_channels", "model", "dataset", "layout_def", "val_slice")
    out = {k: meta[k] for k in keys if k in meta}
    if "layout_def" not in out and "layout" in meta:
        from actionpose.skeleton import layout_definition

        definition = layout_definition(meta["layout"])
        if definition is not None:
            out["layout_def"] = definition
    return out


def export_onnx(model: nn.Module, meta: dict[str, Any], out: str | Path, atol: float = 1e-4,
                check: bool = True) -> dict[str, float]:
    """Export ``model`` (input ``[N, M, T, V, C]``) to ``out`` atomically; verify ORT vs PyTorch.

    Returns ``{"max_abs_diff": ...}``; raises if the difference exceeds ``atol``.
    """
    import onnx

    model = model.eval().cpu()
    out = Path(out)
    m, t, v, c = int(meta.get("max_persons", 1)), int(meta["clip_len"]), len_joints(meta), int(meta["in_channels"])
    example = torch.randn(2, m, t, v, c)
    with atomic_path(out) as tmp:
        with torch.no_grad():
            torch.onnx.export(model, (example,), str(tmp), input_names=["keypoints"], output_names=["logits"],
                              dynamic_axes={"keypoints": {0: "batch", 1: "persons", 2: "frames"},
                                            "logits": {0: "batch"}},
                              opset_version=OPSET, dynamo=False)
        proto = onnx.load(str(tmp))
        entry = proto.metadata_props.add()
        entry.key, entry.value = META_KEY, json.dumps(onnx_meta(meta))
        proto.doc_string = f"actionpose {meta.get('model', '')} on {meta['layout']}: {len(meta['classes'])} classes"
        onnx.checker.check_model(proto)
        onnx.save(proto, str(tmp))
        try:
            diff, scale = parity(model, tmp, m, v, c, t, return_scale=True) if check else (float("nan"), 1.0)
        except ActionposeError as e:
            raise ActionposeError(f"{out}: {e}; not exported") from None
        # 1e-4 absolute for logits up to 1, relative beyond (float32 rounding grows with the logit size)
        if check and not diff <= atol * max(1.0, scale):
            raise ActionposeError(f"{out}: ONNX Runtime differs from PyTorch by {diff:.2e} "
                                  f"(> {atol} x max(1, |logit| {scale:.3g}))")
    return {"max_abs_diff": diff, "max_abs_logit": scale}


def len_joints(meta: dict[str, Any]) -> int:
    from actionpose.skeleton import get_layout

    return get_layout(meta["layout"]).num_joints


def parity(model: nn.Module, onnx_path: str | Path, m: int, v: int, c: int, t: int,
           return_scale: bool = False):
    """Max |ORT - PyTorch| over random inputs of several batch and time sizes.

    Inputs are uniform in [-1, 1], the range preprocessing produces (normalised coordinates).
    With ``return_scale`` also returns the largest |logit| seen.
    """
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    worst, scale = 0.0, 0.0
    for n, tt in ((1, t), (3, t), (2, max(8, t // 2 + 3))):
        x = rng.uniform(-1, 1, (n, m, tt, v, c)).astype(np.float32)
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
        if not (np.isfinite(ref).all() and np.isfinite(got).all()):
            # max() over NaN differences gave 0.0: a NaN model passed the check and was exported
            raise ActionposeError("the model outputs NaN or infinite logits (damaged weights, or a diverged "
                                  "training run)")
        worst = max(worst, float(np.abs(ref - got).max()))
        scale = max(scale, float(np.abs(ref).max()))
    return (worst, scale) if return_scale else worst
