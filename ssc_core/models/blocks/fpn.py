"""Single-level FPN neck (SGN's mmdet FPN with num_outs=1): 1x1 lateral conv then 3x3 output conv, both with
bias, no norm, no activation."""

from __future__ import annotations

import torch
from torch import nn


class SingleLevelFPN(nn.Module):
    """(N, in_channels, h, w) -> (N, out_channels, h, w)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.lateral_conv = nn.Conv2d(in_channels, out_channels, 1)
        self.fpn_conv = nn.Conv2d(out_channels, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fpn_conv(self.lateral_conv(x))
