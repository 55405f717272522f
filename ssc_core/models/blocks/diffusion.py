"""Dense 3D context blocks of SGN's semantic diffusion (SDB): anisotropic MPAC convs and ASPP3D, no norms.

All take and return (B, C, X, Y, Z) float tensors at the same resolution.
"""

from __future__ import annotations

import torch
from torch import nn


class MPAC(nn.Module):
    """Anisotropic convolution (as in AIC-Net): three sequential axis passes (z, then y, then x); each pass runs
    1-D convs of sizes ``kernels`` (bias + ReLU) and mixes them with per-voxel softmax weights predicted from
    the input by a 1x1x1 conv. Output ReLU(mixed + x) when ``residual``."""

    def __init__(self, channels: int, kernels: tuple[int, ...] = (3, 5, 7), residual: bool = True) -> None:
        super().__init__()
        self.kernels, self.residual = tuple(kernels), residual
        self.conv_mx = nn.Conv3d(channels, 3 * len(self.kernels), 1, bias=False)
        self.axis_convs = nn.ModuleList()
        for axis in (4, 3, 2):
            convs = nn.ModuleList()
            for k in self.kernels:
                size = [1, 1, 1]
                size[axis - 2] = k
                convs.append(nn.Conv3d(channels, channels, tuple(size), padding=tuple(s // 2 for s in size)))
            self.axis_convs.append(convs)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, *spatial = x.shape
        weights = self.conv_mx(x).view(b, 3, len(self.kernels), *spatial).softmax(dim=2)
        out = x
        for a, convs in enumerate(self.axis_convs):
            out = sum(weights[:, a, j : j + 1] * torch.relu(conv(out)) for j, conv in enumerate(convs))
        return self.relu(out + x) if self.residual else out


class ASPP3D(nn.Module):
    """1x1x1 reduce to channels/2, three parallel 3x3x3 convs (dilations 1, 2, 4), concat, 1x1x1 fuse, ReLU."""

    def __init__(self, channels: int, dilations: tuple[int, ...] = (1, 2, 4)) -> None:
        super().__init__()
        mid = channels // 2
        self.reduce = nn.Conv3d(channels, mid, 1)
        self.branches = nn.ModuleList(nn.Conv3d(mid, mid, 3, padding=d, dilation=d) for d in dilations)
        self.fuse = nn.Conv3d(mid * len(dilations), channels, 1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.reduce(x)
        return self.relu(self.fuse(torch.cat([branch(y) for branch in self.branches], dim=1)))


class SDB(nn.Module):
    """Semantic diffusion block: Conv3d 3x3x3 (in -> out), ``depth`` x MPAC(out), ASPP3D(out).
    (B, in_channels, X, Y, Z) -> (B, out_channels, X, Y, Z)."""

    def __init__(self, in_channels: int, out_channels: int, depth: int = 3) -> None:
        super().__init__()
        self.conv_in = nn.Conv3d(in_channels, out_channels, 3, padding=1)
        self.diffusion = nn.Sequential(*[MPAC(out_channels) for _ in range(depth)])
        self.aspp = ASPP3D(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.aspp(self.diffusion(self.conv_in(x)))
