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


def test_ctrgcn_refines_the_layout_topology_per_channel():
    """CTR-GCN starts from the layout's adjacency (learnable) and, with alpha = 0 as initialised, its graph
    product equals the plain ``x @ A[k]`` aggregation; a non-zero alpha makes it depend on the sample."""
    from actionpose.models.blocks import CTRGC

    torch.manual_seed(0)
    model = build_model("ctrgcn", "coco17", 3, 3, **TINY)
    gcn = model.backbone.gcn[0].gcn
    np.testing.assert_allclose(gcn.A.detach().numpy(), get_layout("coco17").adjacency("spatial"))
    assert gcn.A.requires_grad and gcn.alpha.item() == 0
    unit = CTRGC(4, 6).eval()
    x, a = torch.randn(2, 4, 5, 17), torch.rand(17, 17)
    plain = torch.einsum("nctu,uv->nctv", unit.conv3(x), a)
    torch.testing.assert_close(unit(x, a, torch.zeros(1)), plain)
    refined = unit(x, a, torch.ones(1))
    assert not torch.allclose(refined, plain)
    # the refinement is per sample: swapping samples swaps outputs exactly
    torch.testing.assert_close(unit(x.flip(0), a, torch.ones(1)), refined.flip(0))


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
