"""ONNX export with dynamic batch/persons/time axes, metadata and an onnxruntime parity check."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from actionpose.data.atomic import atomic_path
from actionpose.errors import ActionposeError
from actionpose.inference.predictor import META_KEY

OPSET = 17


def onnx_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """The metadata keys the predictor reads (see ``ActionPredictor``)."""
    keys = ("layout", "classes", "clip_len", "num_clips", "stream", "norm", "max_persons", "with_score", "coords",
            "in_channels", "model", "dataset")
    return {k: meta[k] for k in keys if k in meta}


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
        diff = parity(model, tmp, m, v, c, t) if check else float("nan")
        if check and not diff <= atol:
            raise ActionposeError(f"{out}: ONNX Runtime differs from PyTorch by {diff:.2e} (> {atol})")
    return {"max_abs_diff": diff}


def len_joints(meta: dict[str, Any]) -> int:
    from actionpose.skeleton import get_layout

    return get_layout(meta["layout"]).num_joints


def parity(model: nn.Module, onnx_path: str | Path, m: int, v: int, c: int, t: int) -> float:
    """Max |ORT - PyTorch| over a few random inputs of different batch and time sizes."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    worst = 0.0
    for n, tt in ((1, t), (3, t), (2, max(8, t // 2 + 3))):
        x = rng.standard_normal((n, m, tt, v, c)).astype(np.float32)
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
        worst = max(worst, float(np.abs(ref - got).max()))
    return worst
