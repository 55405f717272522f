"""LMSCNet-style 2D BEV U-Net and its 3D segmentation head: SGN's voxel proposal network and VoxFormer's query
proposal network (LMSCNet_SS) end in them.

The BEV U-Net treats the grid's Z voxels as channels (f = Z): input (B, f, X, Y) at full resolution, output
(B, f/2, X/2, Y/2), whose channels are read as the Z/2 voxels of the half-resolution grid.
"""

from __future__ import annotations

import torch
from torch import nn

from ssc_core.errors import ConfigError


def _double_conv(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1), nn.ReLU(inplace=True)]


class BEVUNet(nn.Module):
    """Encoder at 1/1, 1/2, 1/4, 1/8 (channels f, 1.5f, 2f, 2.5f), decoder back to 1/2 with skips.
    (B, f, X, Y) -> (B, f/2, X/2, Y/2); f and X, Y must be divisible by 8."""

    def __init__(self, f: int) -> None:
        super().__init__()
        if f % 8:
            raise ConfigError(f"the BEV U-Net needs the grid's Z size divisible by 8, got {f}")
        f15, f2, f25, f8, f4 = f * 3 // 2, 2 * f, f * 5 // 2, f // 8, f // 4
        self.enc1 = nn.Sequential(*_double_conv(f, f))
        self.enc2 = nn.Sequential(nn.MaxPool2d(2), *_double_conv(f, f15))
        self.enc3 = nn.Sequential(nn.MaxPool2d(2), *_double_conv(f15, f2))
        self.enc4 = nn.Sequential(nn.MaxPool2d(2), *_double_conv(f2, f25))
        self.conv_out_1_8 = nn.Conv2d(f25, f8, 3, padding=1)
        self.deconv1_8 = nn.ConvTranspose2d(f8, f8, 6, stride=2, padding=2)
        self.conv1_4 = nn.Conv2d(f2 + f8, f2, 3, padding=1)
        self.conv_out_1_4 = nn.Conv2d(f2, f4, 3, padding=1)
        self.deconv1_4 = nn.ConvTranspose2d(f4, f4, 6, stride=2, padding=2)
        self.deconv_1_8__1_2 = nn.ConvTranspose2d(f8, f8, 4, stride=4)
        self.conv1_2 = nn.Conv2d(f15 + f4 + f8, f15, 3, padding=1)
        self.conv_out_1_2 = nn.Conv2d(f15, f // 2, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % 8 or x.shape[-2] % 8:
            raise ConfigError(f"the BEV U-Net needs X and Y divisible by 8, got {tuple(x.shape[-2:])}")
        e2 = self.enc2(self.enc1(x))
        e3 = self.enc3(e2)
        out_1_8 = self.conv_out_1_8(self.enc4(e3))
        d4 = self.relu(self.conv1_4(torch.cat([self.deconv1_8(out_1_8), e3], dim=1)))
        out_1_4 = self.conv_out_1_4(d4)
        d2 = torch.cat([self.deconv1_4(out_1_4), e2, self.deconv_1_8__1_2(out_1_8)], dim=1)
        return self.conv_out_1_2(self.relu(self.conv1_2(d2)))


class SegmentationHead3D(nn.Module):
    """LMSCNet's 3D head with SGN's guidance layer.

    Takes (B, in_channels, X, Y, Z); conv0 (3x3x3 + ReLU) to ``channels``, a residual sum of parallel dilated
    branches (conv-BN-ReLU-conv-BN), ReLU; returns (logits (B, num_classes, X, Y, Z), guidance features
    (B, channels, X, Y, Z) from a conv-BN-ReLU guidance layer, or None without ``guidance``)."""

    def __init__(self, in_channels: int, channels: int, num_classes: int, dilations: tuple[int, ...] = (1, 2, 3),
                 guidance: bool = True) -> None:
        super().__init__()
        self.conv0 = nn.Conv3d(in_channels, channels, 3, padding=1)
        self.branches = nn.ModuleList(
            nn.Sequential(
                nn.Conv3d(channels, channels, 3, padding=d, dilation=d, bias=False), nn.BatchNorm3d(channels),
                nn.ReLU(inplace=True),
                nn.Conv3d(channels, channels, 3, padding=d, dilation=d, bias=False), nn.BatchNorm3d(channels),
            )
            for d in dilations
        )
        self.guidance_layer = (
            nn.Sequential(nn.Conv3d(channels, channels, 3, padding=1), nn.BatchNorm3d(channels), nn.ReLU(inplace=True))
            if guidance else None
        )
        self.conv_classes = nn.Conv3d(channels, num_classes, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = torch.relu(self.conv0(x))
        x = torch.relu(x + sum(branch(x) for branch in self.branches))
        guide = self.guidance_layer(x) if self.guidance_layer is not None else None
        return self.conv_classes(x), guide


def complete_in_bev(bev: BEVUNet, head: SegmentationHead3D, grid: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """LMSCNet's single-scale completion at 1:2: a (B, X, Y, Z) float grid (Z as the BEV U-Net's channels) ->
    ``bev`` -> (B, 1, X/2, Y/2, Z/2) -> ``head``. Returns the head's (logits, guidance or None)."""
    half = bev(grid.permute(0, 3, 1, 2)).permute(0, 2, 3, 1).unsqueeze(1)
    return head(half)


class LMSCNetSS(nn.Module):
    """LMSCNet_SS as VoxFormer's query proposal network uses it: BEV U-Net + SegmentationHead3D without guidance.
    (B, X, Y, Z) float occupancy -> (B, num_classes, X/2, Y/2, Z/2) logits. (SGN's SVPN ends in the same two parts
    with 1 class and the guidance layer, through ``complete_in_bev``.)"""

    def __init__(self, z_dim: int, num_classes: int = 2, channels: int = 8) -> None:
        super().__init__()
        self.bev = BEVUNet(z_dim)
        self.head = SegmentationHead3D(1, channels, num_classes, guidance=False)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        return complete_in_bev(self.bev, self.head, grid)[0]
