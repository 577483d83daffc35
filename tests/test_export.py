"""ONNX export: dynamic axes, metadata, ORT vs PyTorch parity (1e-4), CLI on a real checkpoint."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from actionpose.cli import main
from actionpose.errors import ActionposeError
from actionpose.inference.predictor import META_KEY, ActionPredictor
from actionpose.models import build_model
from actionpose.training.export import export_onnx, parity

TINY = dict(base_channels=8, num_stages=3, inflate_stages=(3,), down_stages=(3,))


def _meta(layout="body13", coords=2, classes=("a", "b", "c"), **kw):
    return {"layout": layout, "classes": list(classes), "clip_len": 16, "num_clips": 2, "stream": "joint",
            "norm": "sequence", "max_persons": 1, "with_score": False, "coords": coords, "in_channels": coords,
            "model": "stgcnpp", **kw}


@pytest.mark.parametrize("name", ["stgcn", "stgcnpp", "ctrgcn"])
def test_export_parity_and_metadata(tmp_path, name):
    torch.manual_seed(0)
    model = build_model(name, "body13", 3, 2, **TINY).eval()
    with torch.no_grad():  # make BN non-trivial so parity is meaningful
        for m in model.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
            if hasattr(m, "alpha"):  # CTR-GCN: switch the per-sample topology refinement on
                m.alpha.fill_(0.7)
    out = tmp_path / "m.onnx"
    res = export_onnx(model, _meta(), out)
    # 1e-4, relative once logits pass 1: the tampered BN statistics above blow CTR-GCN's logits up to ~1e3,
    # where float32 itself only resolves ~1e-4 absolute
    tol = 1e-4 * max(1.0, res["max_abs_logit"])
    assert res["max_abs_diff"] <= tol
    proto = onnx.load(str(out))
    meta = json.loads({p.key: p.value for p in proto.metadata_props}[META_KEY])
    assert meta["layout"] == "body13" and meta["classes"] == ["a", "b", "c"] and meta["clip_len"] == 16
    dims = [d.dim_param for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims[:3] == ["batch", "persons", "frames"]
    # dynamic batch, persons and time: a shape never seen at export time
    diff, scale = parity(model, out, m=2, v=13, c=2, t=23, return_scale=True)
    assert diff <= 1e-4 * max(1.0, scale)


def test_export_refuses_broken_parity(tmp_path):
    model = build_model("stgcn", "body13", 3, 2, **TINY).eval()
    with pytest.raises(ActionposeError, match="differs from PyTorch"):
        export_onnx(model, _meta(), tmp_path / "m.onnx", atol=-1.0)
    assert not (tmp_path / "m.onnx").exists()  # atomic: nothing half-written


def test_predictor_from_exported_file(tmp_path):
    model = build_model("stgcnpp", "body13", 3, 2, **TINY).eval()
    export_onnx(model, _meta(), tmp_path / "m.onnx")
    pred = ActionPredictor.from_path(tmp_path / "m.onnx")
    assert (pred.layout, pred.clip_len, pred.stream, pred.classes) == ("body13", 16, "joint", ["a", "b", "c"])
    kp = np.random.default_rng(0).uniform(0, 500, (4, 1, 30, 13, 2)).astype(np.float32)
    probs = pred.predict(kp)
    assert probs.shape == (4, 3)
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)


def test_export_cli_bad_checkpoint(tmp_path, capsys):
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["export", "--model", str(bad), "-o", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "bad.ckpt" in err and err.count("\n") == 1
    assert main(["export", "--model", str(tmp_path / "missing.ckpt"), "-o", str(tmp_path / "x.onnx")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    (tmp_path / "empty.ckpt").write_bytes(b"")  # was an IndexError traceback (torch's message is empty)
    assert main(["export", "--model", str(tmp_path / "empty.ckpt"), "-o", str(tmp_path / "x.onnx")]) == 2
    assert "empty.ckpt: empty file, not a checkpoint" in capsys.readouterr().err
    assert main(["export", "--model", str(bad), "-o", str(bad)]) == 2  # -o onto the checkpoint itself
    assert "is the input file" in capsys.readouterr().err and bad.read_bytes() == b"not a checkpoint"
    assert main(["export", "--model", str(bad), "-o", str(tmp_path / "model.pkl")]) == 2  # an ONNX file named .pkl
    assert "--output" in capsys.readouterr().err and not (tmp_path / "model.pkl").exists()
    torch.save({"state_dict": {}}, tmp_path / "other.ckpt")
    assert main(["export", "--model", str(tmp_path / "other.ckpt"), "-o", str(tmp_path / "x.onnx")]) == 2
    assert "not an actionpose checkpoint" in capsys.readouterr().err
    import pickle  # a dataset pickle given by mistake: torch's weights-only loader refuses its objects

    with open(tmp_path / "data.pkl", "wb") as f:
        pickle.dump({"split": {"train": ["a"]}, "annotations": [{"label": 0}], "x": ActionposeError("x")}, f, protocol=4)
    assert main(["export", "--model", str(tmp_path / "data.pkl"), "-o", str(tmp_path / "x.onnx")]) == 2
    cap = capsys.readouterr()
    assert cap.err.count("\n") == 1 and "data.pkl: not a readable checkpoint" in cap.err and "weights_only" not in cap.err
    assert "Warning" not in cap.err + cap.out and not (tmp_path / "x.onnx").exists()


def test_export_refuses_a_model_that_outputs_nan(tmp_path):
    """max() over NaN differences gave 0.0, so a model with a NaN weight passed the parity check."""
    model = build_model("stgcn", "body13", 3, 2, **TINY).eval()
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm2d))
    bn.running_var[0] = float("nan")
    with pytest.raises(ActionposeError, match="NaN or infinite logits"):
        export_onnx(model, _meta(), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_a_checkpoint_of_a_preset_not_registered_here_says_how_to_load_it(tmp_path, capsys):
    """A preset registered in code (docs/extending.md) does not travel inside the checkpoint; a fresh process
    said only "model.name: unknown model", naming neither the checkpoint nor the way to register it."""
    ckpt = tmp_path / "custom.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"meta": _meta(), "config": {"model": {"name": "probe_tiny"}}}},
               ckpt)
    assert main(["export", "--model", str(ckpt), "-o", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "custom.ckpt: its model 'probe_tiny' is not registered in this process" in err
    assert "ACTIONPOSE_PLUGINS" in err and not (tmp_path / "x.onnx").exists()
