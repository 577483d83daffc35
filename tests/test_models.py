"""Models: every registered preset runs on every layout; registry errors are clear."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from actionpose.errors import ActionposeError
from actionpose.models import build_model, list_models
from actionpose.skeleton import get_layout, list_layouts

TINY = dict(base_channels=8, num_stages=3, inflate_stages=(3,), down_stages=(3,))


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("layout", list_layouts())
def test_forward_every_model_every_layout(name, layout):
    torch.manual_seed(0)
    model = build_model(name, layout, num_classes=5, in_channels=3, **TINY).eval()
    v = get_layout(layout).num_joints
    x = torch.randn(2, 2, 12, v, 3)
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, 5)
    assert torch.isfinite(out).all()
    # persons are averaged: swapping them changes nothing
    with torch.no_grad():
        assert torch.allclose(model(x.flip(1)), out, atol=1e-5)


@pytest.mark.parametrize("name", list_models())
def test_default_size_forward_backward(name):
    model = build_model(name, "body13", num_classes=4, in_channels=2)
    x = torch.randn(1, 1, 8, 13, 2)
    out = model(x)
    out.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    assert out.shape == (1, 4)


def test_adjacency_comes_from_layout():
    model = build_model("stgcnpp", "coco17", 3, 3, **TINY)
    a = model.backbone.gcn[0].gcn.A.detach().numpy()
    np.testing.assert_allclose(a, get_layout("coco17").adjacency("spatial"))
    assert model.backbone.gcn[0].gcn.A.requires_grad  # ST-GCN++: learnable adjacency
    st = build_model("stgcn", "coco17", 3, 3, **TINY)
    assert not st.backbone.gcn[0].gcn.A.requires_grad and st.backbone.gcn[0].gcn.PA.requires_grad


def _ctrgc_reference(x, sd, A, alpha, k):
    """The paper's CTR-GCN spatial module, one subset at a time, from per-subset weights (convs.{i}.conv1-4):
    conv the full sequence, then pool over time - the order of the original code."""
    conv = lambda i, j, z: torch.nn.functional.conv2d(z, sd[f"convs.{i}.conv{j}.weight"],  # noqa: E731
                                                      sd[f"convs.{i}.conv{j}.bias"])
    y = 0
    for i in range(k):
        x1, x2 = conv(i, 1, x).mean(-2), conv(i, 2, x).mean(-2)
        topo = conv(i, 4, torch.tanh(x1.unsqueeze(-1) - x2.unsqueeze(-2))) * alpha + A[i]
        y = y + torch.matmul(conv(i, 3, x), topo)
    return y


def test_ctrgcn_refines_the_layout_topology_per_channel():
    """CTR-GCN starts from the layout's adjacency (learnable), alpha = 0. The fused module computes exactly
    the paper's per-subset topology refinement (checked against a loop over subsets, with per-subset weights
    loaded through the old state-dict layout), and with alpha = 0 reduces to the plain sum_k (x @ A[k])."""
    from actionpose.models.blocks import UnitCTRGCN

    torch.manual_seed(0)
    model = build_model("ctrgcn", "coco17", 3, 3, **TINY)
    gcn = model.backbone.gcn[0].gcn
    np.testing.assert_allclose(gcn.A.detach().numpy(), get_layout("coco17").adjacency("spatial"))
    assert gcn.A.requires_grad and gcn.alpha.item() == 0

    a = torch.rand(3, 17, 17)
    unit = UnitCTRGCN(4, 6, a, with_res=False)
    old = {f"convs.{i}.conv{j}.{p}": torch.randn(shape) * 0.5
           for i in range(3) for j, (o, c) in {1: (8, 4), 2: (8, 4), 3: (6, 4), 4: (6, 8)}.items()
           for p, shape in (("weight", (o, c, 1, 1)), ("bias", (o,)))}
    fused = {k: v for k, v in unit.state_dict().items() if not k.startswith(("qk.", "value.", "refine."))}
    unit.load_state_dict({**fused, **old})  # strict: every per-subset key is consumed, none missing
    unit.eval()
    with torch.no_grad():
        unit.bn.weight.fill_(1.0)  # CTR-GCN starts it at 1e-6, which would make every comparison below vacuous
    bn = lambda y: unit.act(unit.bn(y))  # noqa: E731
    x = torch.randn(2, 4, 5, 17)
    with torch.no_grad():
        for alpha in (0.0, 0.7):
            unit.alpha.fill_(alpha)
            torch.testing.assert_close(unit(x), bn(_ctrgc_reference(x, old, a, alpha, 3)), rtol=1e-5, atol=1e-5)
        unit.alpha.fill_(0.0)
        plain = sum(torch.einsum("nctu,uv->nctv", torch.nn.functional.conv2d(
            x, old[f"convs.{i}.conv3.weight"], old[f"convs.{i}.conv3.bias"]), a[i]) for i in range(3))
        torch.testing.assert_close(unit(x), bn(plain), rtol=1e-5, atol=1e-5)
        unit.alpha.fill_(1.0)
        refined = unit(x)
        assert not torch.allclose(refined, bn(plain), atol=1e-3)
        # the refinement is per sample: swapping samples swaps outputs exactly
        torch.testing.assert_close(unit(x.flip(0)), refined.flip(0))


def test_ctrgcn_has_the_papers_temporal_module_and_size():
    """`ctrgcn` is CTR-GCN as published: its multi-scale temporal module ends every branch in BN and has no
    mixing 1x1 after the concatenation; on NTU-60 that gives the paper's size (1.46 M parameters; 1.45 M
    here). `ctrgcn_pp`, the earlier hybrid with ST-GCN++'s temporal module, is 18 % larger."""
    from actionpose.models.blocks import MSTCN, MultiScaleTCN

    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    ctr, pp = build_model("ctrgcn", "ntu25", 60, 3), build_model("ctrgcn_pp", "ntu25", 60, 3)
    assert all(isinstance(b.tcn, MultiScaleTCN) for b in ctr.backbone.gcn)
    assert all(isinstance(b.tcn, MSTCN) for b in pp.backbone.gcn)
    assert 1.44e6 < n(ctr) < 1.47e6 and n(pp) > 1.15 * n(ctr)
    tcn = ctr.backbone.gcn[4].tcn  # the first stride-2 stage: 64 -> 128 channels, half the frames
    assert [type(b[-1]).__name__ for b in tcn.branches] == ["UnitTCN", "UnitTCN", "BatchNorm2d", "BatchNorm2d"]
    x = torch.randn(2, 128, 16, 25)
    assert tcn(x).shape == (2, 128, 8, 25)
    y = build_model("ctrgcn_small", "kinect20", 10, 3).eval()(torch.randn(2, 1, 52, 20, 3))
    assert y.shape == (2, 10) and torch.isfinite(y).all()


def test_old_ctrgcn_checkpoints_load_as_ctrgcn_pp(tmp_path):
    """A checkpoint whose config says `ctrgcn_small` but whose weights hold ST-GCN++'s temporal module
    (written before `ctrgcn` became the paper's model) is rebuilt as `ctrgcn_pp_small` with its own outputs."""
    from actionpose.training.checkpoint import legacy_model_name, load_checkpoint

    torch.manual_seed(0)
    old = build_model("ctrgcn_pp_small", "kinect20", 4, 3).eval()
    meta = {"layout": "kinect20", "classes": list("abcd"), "in_channels": 3}
    ckpt = {"hyper_parameters": {"meta": meta, "config": {"model": {"name": "ctrgcn_small"}}},
            "state_dict": {f"model.{k}": v for k, v in old.state_dict().items()}}
    torch.save(ckpt, tmp_path / "old.ckpt")
    model, _, config = load_checkpoint(tmp_path / "old.ckpt")
    assert config["model"]["name"] == "ctrgcn_pp_small"
    x = torch.randn(2, 1, 12, 20, 3)
    with torch.no_grad():
        torch.testing.assert_close(model(x), old(x))
    new_state = build_model("ctrgcn_small", "kinect20", 4, 3).state_dict()
    assert legacy_model_name("ctrgcn_small", new_state) == "ctrgcn_small"
    assert legacy_model_name("stgcnpp", old.state_dict()) == "stgcnpp"


def test_small_is_smaller():
    n = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n(build_model("stgcnpp_small", "ntu25", 60, 3)) < n(build_model("stgcnpp", "ntu25", 60, 3)) / 3
    assert n(build_model("ctrgcn_small", "ntu25", 60, 3)) < n(build_model("ctrgcn", "ntu25", 60, 3)) / 3


def test_variable_time_length():
    model = build_model("stgcnpp_small", "body13", 3, 3).eval()
    with torch.no_grad():
        for t in (1, 7, 40):
            assert model(torch.randn(1, 1, t, 13, 3)).shape == (1, 3)


def test_registry_errors():
    with pytest.raises(ActionposeError, match="allowed values: .*stgcnpp"):
        build_model("resnet", "body13", 3)
    with pytest.raises(ActionposeError, match="model.widht: unknown model option"):
        build_model("stgcn", "body13", 3, widht=3)
    with pytest.raises(ActionposeError, match="unknown layout"):
        build_model("stgcn", "nope", 3)


def test_register_model_checks_the_preset_when_it_is_registered():
    """A misspelt preset option was accepted and failed only when a run built the model, naming STGCNBlock."""
    from actionpose.models import register_model

    with pytest.raises(ActionposeError, match=r"register_model\('probe_typo'\): unknown option 'base_channel'; "
                                              r"allowed: base_channels"):
        register_model("probe_typo", base_channel=16)
    with pytest.raises(ActionposeError, match=r"register_model\('probe_bad'\): model.tcn_type: 'mstc'"):
        register_model("probe_bad", tcn_type="mstc")
    assert "probe_typo" not in list_models() and "probe_bad" not in list_models()
    with pytest.raises(ActionposeError, match="'stgcnpp' is already registered"):
        register_model("stgcnpp", base_channels=8)


@pytest.mark.parametrize("option, value, allowed", [("gcn_adaptive", "sometimes", "null, init, offset, importance"),
                                                    ("tcn_type", "x", "unit_tcn, mstcn, mstcn_ctr, ms_tcn"),
                                                    ("gcn_type", "gat", "unit_gcn, ctrgc"),
                                                    ("gcn_with_res", "yes", "true, false")])
def test_model_options_with_a_fixed_set_of_values_list_them(option, value, allowed):
    """model.gcn_adaptive=sometimes said "adaptive='sometimes'" (another key's name, no allowed values)."""
    with pytest.raises(ActionposeError, match=f"model.{option}: '{value}'; allowed values: {allowed}"):
        build_model("stgcnpp_small", "body13", 3, 2, **{option: value})
