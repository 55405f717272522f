"""DDRNet's 3D residual blocks (Li et al., CVPR 2019) as 3D-Sketch and CleanerS use them: the factorised bottleneck
and a two-level encoder-decoder built from it.

``DDRBottleneck3D``: 1x1x1 reduce -> (1x1x3) -> (1x3x1) -> (3x1x1) convolutions along the last, middle and first
axis (each dilated, strided when the block downsamples), with the outputs of the earlier factorised convolutions
added to the later ones (average-pooled to match when strided), 1x1x1 expand, residual, ReLU.
``DDRUNet3D``: two stages of four bottlenecks (stride 2 then dilations 1, 2, 3; F -> F at 1/2, F -> 2F at 1/4), two
stride-2 transposed convolutions back to full size with a skip from the first stage: (B, F, X, Y, Z) ->
(B, F, X, Y, Z) for X, Y, Z divisible by 4.

Difference from the CleanerS code: it builds the three pooling shortcuts of a bottleneck even when the block is not
strided (where they are never used); here they exist only in strided blocks, so the parameter count is lower by
3 * planes^2 (+ BatchNorm) per unstrided block.
"""

from __future__ import annotations

import torch
from torch import nn


def _bn(channels: int, momentum: float) -> nn.BatchNorm3d:
    return nn.BatchNorm3d(channels, momentum=momentum)


def _pooled(planes: int, kernel: tuple[int, int, int], momentum: float) -> nn.Sequential:
    return nn.Sequential(nn.AvgPool3d(kernel, stride=kernel), nn.Conv3d(planes, planes, 1, bias=False),
                         _bn(planes, momentum))


class DDRBottleneck3D(nn.Module):
    """(B, in_channels, X, Y, Z) -> (B, planes * expansion, X / stride, Y / stride, Z / stride).

    ``downsample`` maps the input onto the output's shape for the residual (needed when stride or width change)."""

    def __init__(self, in_channels: int, planes: int, expansion: int = 4, stride: int = 1, dilation: int = 1,
                 downsample: nn.Module | None = None, bn_momentum: float = 0.1) -> None:
        super().__init__()
        d, s = dilation, stride
        self.conv1 = nn.Conv3d(in_channels, planes, 1, bias=False)
        self.bn1 = _bn(planes, bn_momentum)
        self.conv2 = nn.Conv3d(planes, planes, (1, 1, 3), stride=(1, 1, s), dilation=(1, 1, d), padding=(0, 0, d),
                               bias=False)
        self.bn2 = _bn(planes, bn_momentum)
        self.conv3 = nn.Conv3d(planes, planes, (1, 3, 1), stride=(1, s, 1), dilation=(1, d, 1), padding=(0, d, 0),
                               bias=False)
        self.bn3 = _bn(planes, bn_momentum)
        self.conv4 = nn.Conv3d(planes, planes, (3, 1, 1), stride=(s, 1, 1), dilation=(d, 1, 1), padding=(d, 0, 0),
                               bias=False)
        self.bn4 = _bn(planes, bn_momentum)
        self.conv5 = nn.Conv3d(planes, planes * expansion, 1, bias=False)
        self.bn5 = _bn(planes * expansion, bn_momentum)
        self.relu = nn.ReLU()
        self.downsample = downsample
        self.stride = stride
        if stride != 1:
            self.pool2 = _pooled(planes, (1, s, 1), bn_momentum)  # out2 onto out3's shape
            self.pool3 = _pooled(planes, (s, 1, 1), bn_momentum)  # out2 onto out4's shape
            self.pool4 = _pooled(planes, (s, 1, 1), bn_momentum)  # out3 onto out4's shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = self.relu(self.bn1(self.conv1(x)))
        out2 = self.bn2(self.conv2(out1))
        out3 = self.bn3(self.conv3(self.relu(out2)))
        if self.stride != 1:
            out2 = self.pool2(out2)
        out3 = out3 + out2
        out4 = self.bn4(self.conv4(self.relu(out3)))
        if self.stride != 1:
            out2, out3 = self.pool3(out2), self.pool4(out3)
        out4 = out4 + out2 + out3
        out5 = self.bn5(self.conv5(self.relu(out4)))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out5 + residual)


def ddr_stage(in_channels: int, out_channels: int, bn_momentum: float = 0.1) -> nn.Sequential:
    """Four bottlenecks: a stride-2 one (in -> out, residual through avg-pool + 1x1x1 conv + BN) and three at
    dilations 1, 2, 3 (out -> out). ``out_channels`` must be ``in_channels`` or twice it."""
    planes = in_channels // 4
    if out_channels % planes or in_channels % 4:
        raise ValueError(f"DDR stage {in_channels} -> {out_channels}: channels must be divisible by 4 and out a "
                         f"multiple of in / 4")
    downsample = nn.Sequential(nn.AvgPool3d(2, stride=2), nn.Conv3d(in_channels, out_channels, 1, bias=False),
                               _bn(out_channels, bn_momentum))
    blocks = [DDRBottleneck3D(in_channels, planes, out_channels // planes, stride=2, downsample=downsample,
                              bn_momentum=bn_momentum)]
    blocks += [DDRBottleneck3D(out_channels, out_channels // 4, 4, dilation=d, bn_momentum=bn_momentum)
               for d in (1, 2, 3)]
    return nn.Sequential(*blocks)


def _up(in_channels: int, out_channels: int, bn_momentum: float, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.ConvTranspose3d(in_channels, out_channels, 3, stride=2, padding=1, output_padding=1),
        _bn(out_channels, bn_momentum), nn.ReLU()]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class DDRUNet3D(nn.Module):
    """(B, F, X, Y, Z) -> (B, F, X, Y, Z): DDR stages to F at 1/2 and 2F at 1/4, transposed convolutions back with a
    skip from 1/2; ``up_dropout`` after the first transposed convolution (CleanerS's TSDF net uses 0.3)."""

    def __init__(self, channels: int, bn_momentum: float = 0.1, up_dropout: float = 0.0) -> None:
        super().__init__()
        self.layer1 = ddr_stage(channels, channels, bn_momentum)
        self.layer2 = ddr_stage(channels, 2 * channels, bn_momentum)
        self.up1 = _up(2 * channels, channels, bn_momentum, up_dropout)
        self.up2 = _up(channels, channels, bn_momentum, 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(d % 4 for d in x.shape[2:]):
            raise ValueError(f"DDRUNet3D needs spatial dims divisible by 4, got {tuple(x.shape[2:])}")
        skip = self.layer1(x)
        return self.up2(self.up1(self.layer2(skip)) + skip)
