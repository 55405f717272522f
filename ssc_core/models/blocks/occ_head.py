"""OccHead, the voxel classifier of the occupancy codebases (OpenOccupancy / HTCL / CGFormer / L2COcc): a 3x3x3
conv to half the channels (no bias), norm (GroupNorm(32) in all of them), ReLU, a 1x1x1 conv to the classes (no
bias) at the work grid, then trilinear upsampling (``align_corners=False``) to the scene grid."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ssc_core.models.blocks.norm import NormSpec, build_norm


class OccHead(nn.Module):
    """(B, in_channels, x, y, z) -> (B, num_classes, *out_size) logits. ``coarse(x)`` gives the logits at the input's
    resolution; ``forward(x, out_size)`` upsamples them (no resampling when the sizes already agree)."""

    def __init__(self, in_channels: int, num_classes: int, norm: NormSpec | None = None) -> None:
        super().__init__()
        mid = in_channels // 2
        self.conv = nn.Sequential(
            nn.Conv3d(in_channels, mid, 3, padding=1, bias=False),
            build_norm(norm or {"type": "GN", "num_groups": 32}, mid, 3), nn.ReLU(inplace=True),
            nn.Conv3d(mid, num_classes, 1, bias=False))

    def coarse(self, x: torch.Tensor) -> torch.Tensor:
        """Logits at the input's resolution, (B, num_classes, x, y, z)."""
        return self.conv(x)

    def forward(self, x: torch.Tensor, out_size: Sequence[int]) -> torch.Tensor:
        logits = self.coarse(x)
        if tuple(logits.shape[2:]) == tuple(out_size):
            return logits
        return F.interpolate(logits, size=tuple(out_size), mode="trilinear", align_corners=False)
