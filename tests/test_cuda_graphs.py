"""trainer.cuda_graphs: the wrapper's logic, with the capture API replaced by a CPU stand-in.

The stand-in does what ``torch.cuda.make_graphed_callables`` does to a module - patches its ``forward``
with a closure that, in training mode, copies the input into the static sample tensor captured at
capture time and runs on that (so a batch of another shape fails, as a real graph's ``copy_`` does) -
without a GPU. What a real graph replays is checked on a lent GPU by ``benchmarks/train_step_rate.py
--cuda-graphs`` (eager vs graphed parameters after the same steps)."""
from __future__ import annotations

import copy
import functools
from pathlib import Path

import pytest
import torch

from actionpose.errors import ActionposeError
from actionpose.models import build_model
from actionpose.training import make_config, train
from actionpose.training import module as module_mod
from actionpose.training.cuda_graphs import GraphedTrainForward

from test_training import _tiny_config, penn_pkl  # noqa: F401 - the fixture is used by name


def fake_make(module: torch.nn.Module, sample_args: tuple, calls: list | None = None):
    (static,) = sample_args
    orig = module.forward

    def new_fwd(x):
        if module.training:
            static.copy_(x)  # raises for another shape, like a graph's static input
            if calls is not None:
                calls.append(tuple(x.shape))
            return orig(static)
        return orig(x)

    module.forward = new_fwd
    return module


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("stgcnpp_small", "coco17", 4, 3, base_channels=8, num_stages=3, inflate_stages=[3],
                       down_stages=[3])


def test_replays_match_eager_and_other_shapes_run_eagerly():
    calls: list = []
    model = _model().train()
    ref = copy.deepcopy(model)
    g = GraphedTrainForward(model, make=functools.partial(fake_make, calls=calls), require_cuda=False)
    x = torch.randn(4, 1, 8, 17, 3)
    out, out_ref = g(x), ref(x)
    assert "forward" not in model.__dict__  # the module's own forward is back after capture
    torch.testing.assert_close(out, out_ref)
    out.sum().backward()
    out_ref.sum().backward()
    for p, q in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad)
    x2 = torch.randn(4, 1, 8, 17, 3)
    torch.testing.assert_close(g(x2), ref(x2))
    assert g.replays == 2 and len(calls) == 2
    small = torch.randn(3, 1, 8, 17, 3)  # a last partial batch
    torch.testing.assert_close(g(small), ref(small))
    assert g.replays == 2 and len(calls) == 2
    model.eval(), ref.eval()
    torch.testing.assert_close(g(x), ref(x))  # eval (running statistics): eager, never the graph
    assert g.replays == 2
    copy.deepcopy(model)  # a plain module: checkpoints, deepcopy and export see no graph


def test_copies_start_uncaptured():
    import pickle

    model = _model().train()
    g = GraphedTrainForward(model, make=fake_make, require_cuda=False)
    x = torch.randn(2, 1, 8, 17, 3)
    g(x)
    assert g.graphed is not None
    for c in (copy.deepcopy(g), pickle.loads(pickle.dumps(g))):
        assert c.graphed is None and c.replays == 0 and c.model is not model
        torch.testing.assert_close(c.model.state_dict(), model.state_dict())


def test_capture_failure_warns_once_and_trains_eagerly():
    def broken(module, args):
        module.forward = lambda x: x  # half-patched, then the capture fails
        raise RuntimeError("operation not permitted when stream is capturing\nmore detail")

    model = _model().train()
    g = GraphedTrainForward(model, make=broken, require_cuda=False)
    x = torch.randn(2, 1, 8, 17, 3)
    with pytest.warns(RuntimeWarning, match=r"CUDA graph capture failed \(RuntimeError: operation not permitted "
                                            r"when stream is capturing\); training eagerly"):
        out = g(x)
    assert out.shape == (2, 4) and "forward" not in model.__dict__ and g.replays == 0
    g(x)  # no second capture attempt
    assert g.disabled and g.replays == 0


def test_cpu_input_never_captures():
    def must_not_run(module, args):
        raise AssertionError("captured on a CPU tensor")

    g = GraphedTrainForward(_model().train(), make=must_not_run)
    with pytest.warns(RuntimeWarning, match="CUDA graphs need a CUDA device, the training batch is on cpu"):
        assert g(torch.randn(2, 1, 8, 17, 3)).shape == (2, 4)
    assert g(torch.randn(2, 1, 8, 17, 3)).shape == (2, 4) and g.graphed is None and g.replays == 0


def test_config_key_is_checked():
    with pytest.raises(ActionposeError, match="trainer.cuda_graphs.*true or false"):
        make_config({"trainer": {"cuda_graphs": "yes"}})
    assert make_config({})["trainer"]["cuda_graphs"] is False


def test_training_run_with_graphs_replays_and_exports(tmp_path: Path, penn_pkl, monkeypatch):  # noqa: F811
    calls: list = []
    monkeypatch.setattr(module_mod, "GraphedTrainForward", functools.partial(
        GraphedTrainForward, make=functools.partial(fake_make, calls=calls), require_cuda=False))
    res = train(_tiny_config(tmp_path, penn_pkl, trainer={"cuda_graphs": True, "max_steps": 3}, optim={"epochs": 3},
                             mlflow={"enabled": False}))
    assert len(calls) == 3 and len(set(calls)) == 1  # every step through the "graph", one shape
    assert res.checkpoint.exists() and res.metrics["onnx_max_abs_diff"] <= 1e-4
    assert res.metrics["cuda_graph_steps"] == 3 and "cuda_graphs_off" not in res.metrics
