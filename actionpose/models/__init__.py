"""Model registry: ``build_model(name, layout, num_classes, in_channels, **cfg)``: ST-GCN, ST-GCN++, CTR-GCN.

Each entry is a preset of :class:`~actionpose.models.stgcn.STGCN` keyword arguments; ``cfg``
overrides any of them (``base_channels``, ``num_stages``, ``inflate_stages``, ``down_stages``,
``ch_ratio``, ``tcn_dropout``, ``dropout``). ``*_small`` variants are for fast CPU inference.
"""
from __future__ import annotations

from typing import Any

import torch

from actionpose.errors import ActionposeError
from actionpose.models.stgcn import GCNHead, SkeletonGCN, STGCN
from actionpose.skeleton import Layout, get_layout

_STGCN = dict(gcn_adaptive="importance", gcn_with_res=False, tcn_type="unit_tcn")
_STGCNPP = dict(gcn_adaptive="init", gcn_with_res=True, tcn_type="mstcn")
# CTR-GCN (Chen et al. 2021): channel-wise topology refinement graph convs and the paper's own multi-scale
# temporal module (kernel 5, dilations 1-2, a BN closing every branch), 10 stages as in its code.
_CTRGCN = dict(gcn_type="ctrgc", gcn_with_res=True, tcn_type="ms_tcn")
# ctrgcn_pp: CTR-GCN's graph convs with ST-GCN++'s temporal module (those branches, then BN-ReLU-1x1 and BN).
# It was this project's `ctrgcn` until 2026-11-26 15:10 UTC and is the architecture of the shipped CTR-GCN
# models (nwucla_joint = nwucla_ctr_joint.onnx, nwucla_ctr_bone.onnx); their checkpoints load as ctrgcn_pp.
_CTRGCN_PP = dict(gcn_type="ctrgc", gcn_with_res=True, tcn_type="mstcn_ctr")
_SMALL = dict(base_channels=32, num_stages=6, inflate_stages=(3, 5), down_stages=(3, 5))

MODELS: dict[str, dict[str, Any]] = {
    "stgcn": dict(_STGCN),
    "stgcnpp": dict(_STGCNPP),
    "stgcn_small": dict(_STGCN, **_SMALL),
    "stgcnpp_small": dict(_STGCNPP, **_SMALL),
    "ctrgcn": dict(_CTRGCN),
    "ctrgcn_small": dict(_CTRGCN, **_SMALL),
    "ctrgcn_pp": dict(_CTRGCN_PP),
    "ctrgcn_pp_small": dict(_CTRGCN_PP, **_SMALL),
}

# Keys a config may set for any model (besides the presets' own).
MODEL_KEYS = ("base_channels", "num_stages", "inflate_stages", "down_stages", "ch_ratio", "tcn_dropout",
              "dropout", "gcn_adaptive", "gcn_with_res", "tcn_type", "gcn_type")


def _check_sizes(kw: dict[str, Any]) -> None:
    """Sizes and rates a config can get wrong; torch would only say "negative dimension" mid-build."""
    def num(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    for key in ("base_channels", "num_stages"):
        if key in kw and not (isinstance(kw[key], int) and not isinstance(kw[key], bool) and kw[key] >= 1):
            raise ActionposeError(f"model.{key}: must be an integer >= 1, got {kw[key]!r}")
    if "ch_ratio" in kw and not (num(kw["ch_ratio"]) and kw["ch_ratio"] > 0):
        raise ActionposeError(f"model.ch_ratio: must be a number > 0, got {kw['ch_ratio']!r}")
    for key in ("dropout", "tcn_dropout"):
        if key in kw and not (num(kw[key]) and 0 <= kw[key] < 1):
            raise ActionposeError(f"model.{key}: must be a number in [0, 1), got {kw[key]!r}")
    for key, allowed in (("gcn_adaptive", (None, "init", "offset", "importance")), ("gcn_type", ("unit_gcn", "ctrgc")),
                         ("tcn_type", ("unit_tcn", "mstcn", "mstcn_ctr", "ms_tcn")), ("gcn_with_res", (True, False))):
        if key in kw and not any(kw[key] is a or (isinstance(a, str) and kw[key] == a) for a in allowed):
            raise ActionposeError(f"model.{key}: {kw[key]!r}; allowed values: "
                                  + ", ".join("null" if a is None else str(a).lower() for a in allowed))
    for key in ("inflate_stages", "down_stages"):
        stages = kw.get(key, ())
        if not isinstance(stages, (list, tuple)) or not all(isinstance(s, int) and not isinstance(s, bool)
                                                            and 1 <= s <= int(kw.get("num_stages", 10)) for s in stages):
            raise ActionposeError(f"model.{key}: must be a list of stage numbers in 1..num_stages "
                                  f"({kw.get('num_stages', 10)}), got {stages!r}")


def register_model(name: str, **preset: Any) -> None:
    """Add a named preset (e.g. a wider ST-GCN++ for GPU training).

    Its options are checked here, as a config's are: a misspelt ``base_channel=16`` was accepted and failed
    only when a run built the model, in the words of an inner block (``STGCNBlock.__init__() got an unexpected
    keyword argument``), after the data had been loaded."""
    if name in MODELS:
        raise ActionposeError(f"model {name!r} is already registered")
    unknown = sorted(set(preset) - set(MODEL_KEYS))
    if unknown:
        raise ActionposeError(f"register_model({name!r}): unknown option {unknown[0]!r}; allowed: {', '.join(MODEL_KEYS)}")
    try:
        _check_sizes(preset)
    except ActionposeError as e:
        raise ActionposeError(f"register_model({name!r}): {e}") from None
    MODELS[name] = dict(preset)


def list_models() -> list[str]:
    return sorted(MODELS)


def build_model(name: str, layout: str | Layout, num_classes: int, in_channels: int = 3,
                **cfg: Any) -> SkeletonGCN:
    """Build a recognizer for ``layout`` taking ``[N, M, T, V, in_channels]`` -> logits ``[N, num_classes]``."""
    if name not in MODELS:
        raise ActionposeError(f"model.name: unknown model {name!r}; allowed values: {', '.join(list_models())}")
    unknown = sorted(set(cfg) - set(MODEL_KEYS))
    if unknown:
        raise ActionposeError(f"model.{unknown[0]}: unknown model option; allowed: {', '.join(MODEL_KEYS)}")
    lay = get_layout(layout)
    kwargs = {**MODELS[name], **cfg}
    _check_sizes(kwargs)
    dropout = float(kwargs.pop("dropout", 0.0))
    for key in ("inflate_stages", "down_stages"):
        if key in kwargs:
            kwargs[key] = tuple(int(i) for i in kwargs[key])
    A = torch.tensor(lay.adjacency("spatial"), dtype=torch.float32)
    try:
        backbone = STGCN(A, in_channels=int(in_channels), **kwargs)
    except (TypeError, ValueError, RuntimeError) as e:
        raise ActionposeError(f"model {name}: invalid option ({str(e).splitlines()[0]})") from None
    return SkeletonGCN(backbone, GCNHead(backbone.out_channels, int(num_classes), dropout=dropout))
