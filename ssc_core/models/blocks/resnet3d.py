"""3D ResNet encoder for voxel features (the occupancy codebases' ``CustomResNet3D``), shared by HTCL and L2COcc.

``ResNet3D(in_channels, channels, blocks, strides, norm)``: an input projection (1x1x1 conv, no bias, norm, ReLU,
in -> channels[0]) and one stage per entry of ``channels``, each ``blocks[i]`` BasicBlock3D's with the first one
strided by ``strides[i]`` (a 1x1x1 strided conv + norm on the shortcut when the shape changes). HTCL:
``ResNet3D(128, [128, 256, 512], [2, 2, 2], [1, 2, 2], norm=GN(32))`` ("depth 18, num_stage 3"), giving
(B, 128, X, Y, Z), (B, 256, X/2, Y/2, Z/2), (B, 512, X/4, Y/4, Z/4). L2COcc (CGFormer's variant):
``ResNet3D(128, [128] * 3, [n] * 3, [1, 2, 2], norm="BN", input_proj=False, shortcut="conv3")``: no input
projection, and the first block of every stage has a strided 3x3x3 conv + norm shortcut even where the shape does
not change. Convolutions are Kaiming-initialised (fan_out, ReLU), BatchNorm weight 1 / bias 0, as the original.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ssc_core.errors import ConfigError
from ssc_core.models.blocks.norm import NormSpec, build_norm

SHORTCUTS = ("auto", "conv3")


class BasicBlock3D(nn.Module):
    """3x3x3 conv (stride) - norm - ReLU - 3x3x3 conv - norm, plus the (projected) input, ReLU.
    (B, in_channels, X, Y, Z) -> (B, channels, X/stride, Y/stride, Z/stride). shortcut: 'auto' (identity, or a
    strided 1x1x1 conv + norm when the shape changes) or 'conv3' (always a strided 3x3x3 conv + norm)."""

    def __init__(self, in_channels: int, channels: int, stride: int = 1, norm: NormSpec = "BN",
                 shortcut: str = "auto") -> None:
        super().__init__()
        if shortcut not in SHORTCUTS:
            raise ConfigError(f"ResNet3D shortcut must be one of {SHORTCUTS}, got {shortcut!r}")
        self.conv1 = nn.Conv3d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = build_norm(norm, channels, 3)
        self.conv2 = nn.Conv3d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = build_norm(norm, channels, 3)
        self.downsample = None
        if shortcut == "conv3":
            self.downsample = nn.Sequential(nn.Conv3d(in_channels, channels, 3, stride=stride, padding=1, bias=False),
                                            build_norm(norm, channels, 3))
        elif stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(nn.Conv3d(in_channels, channels, 1, stride=stride, bias=False),
                                            build_norm(norm, channels, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = self.bn2(self.conv2(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)), inplace=True)


class ResNet3D(nn.Module):
    """forward((B, in_channels, X, Y, Z)) -> list of the stage outputs listed in ``out_indices`` (all stages by
    default), stage i at ``channels[i]`` and the cumulative stride of ``strides[:i + 1]``. ``input_proj``: start
    with the 1x1x1 projection (HTCL) or feed the first block directly (L2COcc); ``shortcut``: the first block of
    every stage's shortcut (see BasicBlock3D)."""

    def __init__(self, in_channels: int, channels: Sequence[int], blocks: Sequence[int], strides: Sequence[int],
                 norm: NormSpec = "BN", out_indices: Sequence[int] | None = None, input_proj: bool = True,
                 shortcut: str = "auto") -> None:
        super().__init__()
        if not len(channels) == len(blocks) == len(strides) or not channels:
            raise ConfigError(f"ResNet3D needs equally long non-empty channels / blocks / strides, got "
                              f"{list(channels)} / {list(blocks)} / {list(strides)}")
        self.out_indices = tuple(range(len(channels))) if out_indices is None else tuple(out_indices)
        if any(i not in range(len(channels)) for i in self.out_indices):
            raise ConfigError(f"ResNet3D out_indices {list(self.out_indices)} outside 0..{len(channels) - 1}")
        self.input_proj = nn.Identity()
        prev = in_channels
        if input_proj:
            self.input_proj = nn.Sequential(nn.Conv3d(in_channels, channels[0], 1, bias=False),
                                            build_norm(norm, channels[0], 3), nn.ReLU(inplace=True))
            prev = channels[0]
        stages = []
        for width, count, stride in zip(channels, blocks, strides):
            layers = [BasicBlock3D(prev, width, stride, norm, shortcut)]
            layers += [BasicBlock3D(width, width, 1, norm) for _ in range(int(count) - 1)]
            stages.append(nn.Sequential(*layers))
            prev = width
        self.stages = nn.ModuleList(stages)
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.input_proj(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                outs.append(x)
        return outs
