"""ST-GCN / ST-GCN++ / CTR-GCN building blocks: graph convolution over joints, temporal convolution over frames.

Module and parameter names follow PYSKL (``pyskl/models/gcns/utils``) so a PYSKL state dict loads
into these modules unchanged — the benchmark uses that to check identical outputs for identical
weights. The graph product is a dense batched einsum with the layout's ``[K, V, V]`` adjacency:
with at most a few dozen joints that is one small matmul, far faster than per-edge message passing.
"""
from __future__ import annotations

import torch
from torch import nn


def _projection(in_channels: int, out_channels: int) -> nn.Module:
    """A graph unit's residual path: identity, or 1x1 conv + BN when the width changes (PYSKL names)."""
    if in_channels == out_channels:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1), nn.BatchNorm2d(out_channels))


class UnitGCN(nn.Module):
    """Spatial graph convolution: 1x1 conv to ``K`` subsets, then aggregate with ``A[k]``.

    ``adaptive``: ``None`` (fixed A), ``"init"`` (A is a learnable parameter initialised from the
    layout, ST-GCN++), ``"importance"`` (learnable edge weights multiplying A, original ST-GCN),
    ``"offset"`` (learnable additive offset).
    """

    def __init__(self, in_channels: int, out_channels: int, A: torch.Tensor, adaptive: str | None = "importance",
                 with_res: bool = False):
        super().__init__()
        if adaptive not in (None, "init", "offset", "importance"):
            raise ValueError(f"adaptive={adaptive!r}")
        self.num_subsets = A.size(0)
        self.adaptive = adaptive
        self.with_res = with_res
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU()
        if adaptive == "init":
            self.A = nn.Parameter(A.clone())
        else:
            self.register_buffer("A", A.clone())
        if adaptive in ("offset", "importance"):
            self.PA = nn.Parameter(A.clone())
            if adaptive == "offset":
                nn.init.uniform_(self.PA, -1e-6, 1e-6)
            else:
                nn.init.constant_(self.PA, 1)
        self.conv = nn.Conv2d(in_channels, out_channels * A.size(0), 1)
        if with_res:
            self.down = _projection(in_channels, out_channels)

    def graph(self) -> torch.Tensor:
        if self.adaptive == "offset":
            return self.A + self.PA
        if self.adaptive == "importance":
            return self.A * self.PA
        return self.A

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, t, v = x.shape
        res = self.down(x) if self.with_res else 0
        k = self.num_subsets
        # == einsum("nkctv,kvw->nctw"), written as one GEMM over (k, v): measured faster in ONNX Runtime
        y = self.conv(x).view(n, k, -1, t, v).permute(0, 2, 3, 1, 4).reshape(-1, k * v)
        y = (y @ self.graph().reshape(k * v, v)).view(n, -1, t, v)
        return self.act(self.bn(y) + res)


class UnitTCN(nn.Module):
    """Temporal convolution ``(k x 1)`` + BN (original ST-GCN)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 9, stride: int = 1,
                 dilation: int = 1, norm: bool = True, dropout: float = 0.0):
        super().__init__()
        pad = (kernel_size + (kernel_size - 1) * (dilation - 1) - 1) // 2
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=(kernel_size, 1), padding=(pad, 0),
                              stride=(stride, 1), dilation=(dilation, 1))
        self.bn = nn.BatchNorm2d(out_channels) if norm else nn.Identity()
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.bn(self.conv(x)))


MS_CFG = ((3, 1), (3, 2), (3, 3), (3, 4), ("max", 3), "1x1")
CTR_MS_CFG = ((5, 1), (5, 2), ("max", 3), "1x1")  # ctrgcn_pp: CTR-GCN's branches in ST-GCN++'s module


class MSTCN(nn.Module):
    """Multi-branch temporal convolution of ST-GCN++: dilations 1-4, a max-pool and a 1x1 branch."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, dropout: float = 0.0,
                 ms_cfg=MS_CFG):
        super().__init__()
        nb = len(ms_cfg)
        mid = out_channels // nb
        rem = out_channels - mid * (nb - 1)
        self.act = nn.ReLU()
        branches = []
        for i, cfg in enumerate(ms_cfg):
            bc = rem if i == 0 else mid
            if cfg == "1x1":
                branches.append(nn.Conv2d(in_channels, bc, kernel_size=1, stride=(stride, 1)))
            elif cfg[0] == "max":
                branches.append(nn.Sequential(
                    nn.Conv2d(in_channels, bc, kernel_size=1), nn.BatchNorm2d(bc), self.act,
                    nn.MaxPool2d(kernel_size=(cfg[1], 1), stride=(stride, 1), padding=(1, 0))))
            else:
                branches.append(nn.Sequential(
                    nn.Conv2d(in_channels, bc, kernel_size=1), nn.BatchNorm2d(bc), self.act,
                    UnitTCN(bc, bc, kernel_size=cfg[0], stride=stride, dilation=cfg[1], norm=False)))
        self.branches = nn.ModuleList(branches)
        tin = mid * (nb - 1) + rem
        self.transform = nn.Sequential(nn.BatchNorm2d(tin), self.act, nn.Conv2d(tin, out_channels, kernel_size=1))
        self.bn = nn.BatchNorm2d(out_channels)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = torch.cat([b(x) for b in self.branches], dim=1)
        return self.drop(self.bn(self.transform(feat)))


class MultiScaleTCN(nn.Module):
    """CTR-GCN's own temporal module (``MultiScale_TemporalConv``, shared with MS-G3D and PYSKL's CTR-GCN).

    Per dilation a 1x1 conv, BN, ReLU and a ``kernel_size x 1`` dilated conv with BN; a max-pool branch and a
    strided 1x1 branch, each ending in BN; the branches are concatenated and that is the output. It differs
    from ST-GCN++'s :class:`MSTCN` (the temporal module of ``ctrgcn_pp``): every branch ends in its own BN
    and there is no BN-ReLU-1x1 ``transform`` mixing the branches, so it has fewer parameters
    (CTR-GCN on NTU-60: 1.45 M here, 1.46 M in the paper). Convs start from CTR-GCN's ``weights_init``
    (Kaiming normal, fan-out, zero bias) and BN scales from N(1, 0.02).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5, stride: int = 1,
                 dilations: tuple[int, ...] = (1, 2), dropout: float = 0.0):
        super().__init__()
        nb = len(dilations) + 2
        bc = out_channels // nb
        last = out_channels - bc * (nb - 1)  # CTR-GCN asserts divisibility; any width works here
        branches: list[nn.Module] = [nn.Sequential(
            nn.Conv2d(in_channels, bc, kernel_size=1), nn.BatchNorm2d(bc), nn.ReLU(),
            UnitTCN(bc, bc, kernel_size=kernel_size, stride=stride, dilation=d)) for d in dilations]
        branches.append(nn.Sequential(
            nn.Conv2d(in_channels, bc, kernel_size=1), nn.BatchNorm2d(bc), nn.ReLU(),
            nn.MaxPool2d(kernel_size=(3, 1), stride=(stride, 1), padding=(1, 0)), nn.BatchNorm2d(bc)))
        branches.append(nn.Sequential(nn.Conv2d(in_channels, last, kernel_size=1, stride=(stride, 1)),
                                      nn.BatchNorm2d(last)))
        self.branches = nn.ModuleList(branches)
        self.drop = nn.Dropout(dropout)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(torch.cat([b(x) for b in self.branches], dim=1))


class UnitCTRGCN(nn.Module):
    """CTR-GCN's spatial module (Chen et al., ICCV 2021): channel-wise topology refinement, BN, residual, ReLU.

    Every output channel gets its own topology per adjacency subset: the learnable ``A[k]`` plus ``alpha``
    times a refinement computed per sample from pairwise differences of temporally pooled joint features.
    That lets different channels model different joint relations, which is what lifts CTR-GCN over ST-GCN
    on cross-view data.

    The paper's per-subset modules (``conv1``-``conv4`` for each of the K subsets) are computed here for
    all subsets at once: one 1x1 conv for the K value projections, one for the 2K pooled query/key
    projections - applied *after* the temporal mean, which is exact for a 1x1 conv and T times cheaper -
    one grouped conv for the K refinements and one batched matmul. Same function, same parameter count,
    a third fewer ops per training step (790 -> 520 for the full model): on a lent H200 this model's step
    cost was set by kernel launches (90 ms per step whatever the batch), not by arithmetic. State dicts in the per-subset layout
    (``convs.{k}.conv{1..4}``) still load.
    """

    def __init__(self, in_channels: int, out_channels: int, A: torch.Tensor, with_res: bool = True,
                 rel_reduction: int = 8):
        super().__init__()
        k = self.num_subsets = A.size(0)
        self.rel = rel = 8 if in_channels <= 16 else in_channels // rel_reduction
        self.out_channels = out_channels
        self.A = nn.Parameter(A.clone())
        self.alpha = nn.Parameter(torch.zeros(1))
        self.qk = nn.Conv2d(in_channels, 2 * k * rel, 1)          # [conv1 of each subset | conv2 of each]
        self.value = nn.Conv2d(in_channels, k * out_channels, 1)  # conv3 of each subset
        self.refine = nn.Conv2d(k * rel, k * out_channels, 1, groups=k)  # conv4 of each subset
        self.with_res = with_res
        if with_res:
            self.down = _projection(in_channels, out_channels)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU()
        convs = [(self.qk, rel), (self.value, out_channels), (self.refine, out_channels)]
        if with_res and isinstance(self.down, nn.Sequential):
            convs.append((self.down[0], out_channels))
        for conv, step in convs:  # slice by slice, so each subset's conv gets the paper's own fan-out
            nn.init.zeros_(conv.bias)
            with torch.no_grad():
                for i in range(0, conv.out_channels, step):
                    nn.init.kaiming_normal_(conv.weight[i:i + step], mode="fan_out")
        nn.init.constant_(self.bn.weight, 1e-6)  # CTR-GCN: each block starts close to its residual path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, t, v = x.shape
        k, rel, c = self.num_subsets, self.rel, self.out_channels
        q, key = self.qk(x.mean(-2, keepdim=True)).squeeze(-2).split(k * rel, dim=1)  # [N, K*R, V] each
        topo = self.refine(torch.tanh(q.unsqueeze(-1) - key.unsqueeze(-2)))  # [N, K*C, V, V]
        topo = topo.view(n, k, c, v, v) * self.alpha + self.A.unsqueeze(1)  # + A[k] for every channel
        y = torch.matmul(self.value(x).view(n, k, c, t, v), topo).sum(1)  # out[v] = sum_k,u x_k[u] A_k[u, v]
        return self.act(self.bn(y) + (self.down(x) if self.with_res else 0))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Per-subset checkpoints (``convs.{k}.conv1..conv4``, models trained before the fusion) -> fused."""
        if f"{prefix}convs.0.conv1.weight" in state_dict:
            for fused, per_subset in (("qk", ("conv1", "conv2")), ("value", ("conv3",)), ("refine", ("conv4",))):
                for p in ("weight", "bias"):  # subset order inside each old conv, as the fused channels are laid out
                    state_dict[f"{prefix}{fused}.{p}"] = torch.cat([
                        state_dict.pop(f"{prefix}convs.{i}.{name}.{p}") for name in per_subset
                        for i in range(self.num_subsets)])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class STGCNBlock(nn.Module):
    """GCN -> TCN with a residual connection (PYSKL ``STGCNBlock``)."""

    def __init__(self, in_channels: int, out_channels: int, A: torch.Tensor, stride: int = 1,
                 residual: bool = True, gcn_adaptive: str | None = "importance", gcn_with_res: bool = False,
                 tcn_type: str = "unit_tcn", tcn_dropout: float = 0.0, gcn_type: str = "unit_gcn"):
        super().__init__()
        if gcn_type == "unit_gcn":
            self.gcn = UnitGCN(in_channels, out_channels, A, adaptive=gcn_adaptive, with_res=gcn_with_res)
        elif gcn_type == "ctrgc":
            self.gcn = UnitCTRGCN(in_channels, out_channels, A, with_res=gcn_with_res)
        else:
            raise ValueError(f"gcn_type={gcn_type!r}; allowed: unit_gcn, ctrgc")
        if tcn_type == "unit_tcn":
            self.tcn = UnitTCN(out_channels, out_channels, 9, stride=stride, dropout=tcn_dropout)
        elif tcn_type == "mstcn":
            self.tcn = MSTCN(out_channels, out_channels, stride=stride, dropout=tcn_dropout)
        elif tcn_type == "mstcn_ctr":
            self.tcn = MSTCN(out_channels, out_channels, stride=stride, dropout=tcn_dropout, ms_cfg=CTR_MS_CFG)
        elif tcn_type == "ms_tcn":
            self.tcn = MultiScaleTCN(out_channels, out_channels, stride=stride, dropout=tcn_dropout)
        else:
            raise ValueError(f"tcn_type={tcn_type!r}; allowed: unit_tcn, mstcn, mstcn_ctr, ms_tcn")
        self.relu = nn.ReLU()
        self.residual_mode = "none" if not residual else (
            "identity" if in_channels == out_channels and stride == 1 else "conv")
        if self.residual_mode == "conv":
            self.residual = UnitTCN(in_channels, out_channels, kernel_size=1, stride=stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.residual_mode == "none":
            return self.relu(self.tcn(self.gcn(x)))
        res = x if self.residual_mode == "identity" else self.residual(x)
        return self.relu(self.tcn(self.gcn(x)) + res)
