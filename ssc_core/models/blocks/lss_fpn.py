"""GeneralizedLSSFPN (BEVFusion's neck, used by CGFormer and L2COcc) for 2D maps and 3D volumes.

Top-down over N input levels (finest first), giving N - 1 outputs: starting from the coarsest level, each level i
< N - 1 gets the running map resized to its size and concatenated to it, then a 1x1 conv -> norm -> act
("lateral") and a 3x3 conv -> norm -> act ("fpn"); the result is the running map for the next finer level.
Convolutions have no bias (they are followed by a norm).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ssc_core.errors import ConfigError
from ssc_core.models.blocks.norm import NormSpec, build_norm

GN32: dict = {"type": "GN", "num_groups": 32}

ACTIVATIONS = ("relu", "leaky_relu")


def make_activation(kind: str) -> nn.Module:
    """'relu' or 'leaky_relu' (slope 0.01, mmcv's default)."""
    if kind not in ACTIVATIONS:
        raise ConfigError(f"activation must be one of {ACTIVATIONS}, got {kind!r}")
    return nn.ReLU(inplace=True) if kind == "relu" else nn.LeakyReLU(0.01, inplace=True)


class GeneralizedLSSFPN(nn.Module):
    """in_channels: channels of the N input levels (finest first); out_channels: width of every output;
    dims: 2 (maps, bilinear resize) or 3 (volumes, trilinear resize); norm: a ``build_norm`` spec (L2COcc: GN(32)
    in 3D, BatchNorm without running statistics in 2D); activation as in ``make_activation``; align_corners of the
    resize.

    forward(list of N (B, in_channels[i], *spatial_i)) -> list of N - 1 (B, out_channels, *spatial_i), finest first.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int, dims: int = 3, norm: NormSpec = GN32,
                 activation: str = "relu", align_corners: bool = False) -> None:
        super().__init__()
        if dims not in (2, 3):
            raise ConfigError(f"GeneralizedLSSFPN dims must be 2 or 3, got {dims}")
        if len(in_channels) < 2:
            raise ConfigError(f"GeneralizedLSSFPN needs at least two input levels, got {list(in_channels)}")
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        self.mode = "bilinear" if dims == 2 else "trilinear"
        self.align_corners = align_corners
        self.in_channels = list(in_channels)
        last = len(in_channels) - 1
        self.lateral = nn.ModuleList()
        self.fpn = nn.ModuleList()
        for i in range(last):
            above = in_channels[i + 1] if i == last - 1 else out_channels
            self.lateral.append(nn.Sequential(conv(in_channels[i] + above, out_channels, 1, bias=False),
                                              build_norm(norm, out_channels, dims), make_activation(activation)))
            self.fpn.append(nn.Sequential(conv(out_channels, out_channels, 3, padding=1, bias=False),
                                          build_norm(norm, out_channels, dims), make_activation(activation)))

    def forward(self, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if len(inputs) != len(self.in_channels):
            raise ConfigError(f"GeneralizedLSSFPN built for {len(self.in_channels)} levels got {len(inputs)}")
        running = inputs[-1]
        outs: list[torch.Tensor] = []
        for i in range(len(inputs) - 2, -1, -1):
            up = F.interpolate(running, size=inputs[i].shape[2:], mode=self.mode, align_corners=self.align_corners)
            running = self.fpn[i](self.lateral[i](torch.cat([inputs[i], up], dim=1)))
            outs.insert(0, running)
        return outs
