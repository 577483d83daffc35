"""ST-GCN (Yan et al. 2018) and ST-GCN++ (PYSKL) as plain ``nn.Module``s.

Input ``[N, M, T, V, C]`` (batch, persons, frames, joints, channels) like PYSKL; output logits
``[N, K]`` averaged over persons. The graph comes from the layout object, so any layout works.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from actionpose.models.blocks import STGCNBlock

EPS = 1e-4


class STGCN(nn.Module):
    """Backbone: data BN over (V, C), then ``num_stages`` GCN/TCN blocks (PYSKL ``STGCN``)."""

    def __init__(self, A: torch.Tensor, in_channels: int = 3, base_channels: int = 64, ch_ratio: float = 2,
                 num_stages: int = 10, inflate_stages: Sequence[int] = (5, 8), down_stages: Sequence[int] = (5, 8),
                 **block_kwargs):
        super().__init__()
        self.data_bn = nn.BatchNorm1d(in_channels * A.size(1))
        blocks_cfg = dict(block_kwargs)
        first_cfg = {k: v for k, v in blocks_cfg.items() if k != "tcn_dropout"}
        modules = []
        if in_channels != base_channels:
            modules.append(STGCNBlock(in_channels, base_channels, A, 1, residual=False, **first_cfg))
        inflate_times = 0
        channels = base_channels
        for i in range(2, num_stages + 1):
            stride = 1 + (i in down_stages)
            if i in inflate_stages:
                inflate_times += 1
            out_channels = int(base_channels * ch_ratio ** inflate_times + EPS)
            modules.append(STGCNBlock(channels, out_channels, A, stride, **blocks_cfg))
            channels = out_channels
        self.out_channels = channels
        self.gcn = nn.ModuleList(modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, m, t, v, c = x.shape
        x = x.permute(0, 1, 3, 4, 2).reshape(n * m, v * c, t)
        x = self.data_bn(x)
        x = x.view(n * m, v, c, t).permute(0, 2, 3, 1).contiguous()  # [NM, C, T, V]
        for block in self.gcn:
            x = block(x)
        return x.reshape((n, m) + x.shape[1:])


class GCNHead(nn.Module):
    """Global average pool over (T, V), mean over persons, dropout, linear (PYSKL ``GCNHead``)."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc_cls = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.mean(dim=(3, 4)).mean(dim=1)  # [N, M, C, T, V] -> [N, C]
        return self.fc_cls(self.dropout(x))


class SkeletonGCN(nn.Module):
    """Backbone + head; the whole recognizer, as exported to ONNX."""

    def __init__(self, backbone: STGCN, head: GCNHead):
        super().__init__()
        self.backbone = backbone
        self.cls_head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cls_head(self.backbone(x))
