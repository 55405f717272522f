"""Per-voxel classification heads: SGN's dense Header (x2 trilinear upsample + LN + Linear) and the sparse
semantic header (LN + Linear on (N, C) seed features)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class UpsampleHeader(nn.Module):
    """(B, C, X, Y, Z) -> (B, num_classes, sX, sY, sZ): trilinear x``scale`` (align_corners=True) then LayerNorm
    and Linear over channels at each voxel."""

    def __init__(self, channels: int, num_classes: int, scale: int = 2) -> None:
        super().__init__()
        self.scale = scale
        self.norm = nn.LayerNorm(channels)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale != 1:
            x = F.interpolate(x, scale_factor=self.scale, mode="trilinear", align_corners=True)
        return self.classifier(self.norm(x.permute(0, 2, 3, 4, 1))).permute(0, 4, 1, 2, 3)


class SparseHeader(nn.Module):
    """(N, C) -> (N, num_classes) with LayerNorm + Linear."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.norm(x))
