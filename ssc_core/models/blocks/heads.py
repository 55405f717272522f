"""Per-voxel classification heads: SGN's and VoxFormer's dense Header (x2 trilinear upsample + LN + Linear),
HASSC's convolutional head (logits at the work grid, then x2 trilinear) and the sparse semantic header (LN +
Linear on (N, C) seed features).

The dense heads share one interface: ``forward(features)`` gives the logits at the output grid and
``coarse_logits(features)`` the logits at the features' own (work) grid, which HASSC's hard-voxel mining reads."""

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

    def coarse_logits(self, x: torch.Tensor) -> torch.Tensor:
        """LayerNorm + Linear at the features' own grid: (B, C, X, Y, Z) -> (B, num_classes, X, Y, Z)."""
        return self.classifier(self.norm(x.permute(0, 2, 3, 4, 1))).permute(0, 4, 1, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.scale != 1:
            x = F.interpolate(x, scale_factor=self.scale, mode="trilinear", align_corners=True)
        return self.coarse_logits(x)


class ConvHeader(nn.Module):
    """HASSC's head: Conv3d 3x3x3 (channels -> hidden, no bias) -> GroupNorm -> ReLU -> Conv3d 1x1x1 (hidden ->
    num_classes, no bias) gives logits at the work grid; forward upsamples them x``scale`` trilinearly
    (align_corners=False). (B, C, X, Y, Z) -> (B, num_classes, sX, sY, sZ)."""

    def __init__(self, channels: int, num_classes: int, hidden: int = 64, groups: int = 32, scale: int = 2) -> None:
        super().__init__()
        self.scale = scale
        self.convs = nn.Sequential(
            nn.Conv3d(channels, hidden, 3, padding=1, bias=False), nn.GroupNorm(min(groups, hidden), hidden),
            nn.ReLU(inplace=True), nn.Conv3d(hidden, num_classes, 1, bias=False),
        )

    def coarse_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits at the features' own grid: (B, C, X, Y, Z) -> (B, num_classes, X, Y, Z)."""
        return self.convs(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.coarse_logits(x)
        if self.scale == 1:
            return logits
        return F.interpolate(logits, scale_factor=self.scale, mode="trilinear", align_corners=False)


class SparseHeader(nn.Module):
    """(N, C) -> (N, num_classes) with LayerNorm + Linear."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.norm(x))
