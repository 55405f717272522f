"""PSMNet-style 3D hourglass and its conv + norm unit, as the stereo / temporal cost-volume networks of HTCL
(``gwc_encoder.hourglass``, ``convbn_3d``) use them; generic over the norm so other stereo methods can reuse it.

``conv_norm_3d(in, out, kernel, stride, padding, norm)``: Conv3d (no bias) + norm (GN(2) in HTCL).
``Hourglass3D(C)``: C -> 2C (stride 2) -> 2C -> 4C (stride 2) -> 4C (each conv + norm + ReLU), then transposed
convs 4C -> 2C and 2C -> C (stride 2, BatchNorm3d as the original) with 1x1x1 conv + norm "redirect" skips
from the matching encoder level, ReLU after each sum. Shape-preserving; every spatial size must be divisible by 4.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssc_core.models.blocks.norm import NormSpec, build_norm

GN2: dict = {"type": "GN", "num_groups": 2}


def conv_norm_3d(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, padding: int = 1,
                 norm: NormSpec = GN2) -> nn.Sequential:
    """Conv3d without bias followed by ``norm``: (B, in, D, H, W) -> (B, out, D/stride, H/stride, W/stride)."""
    return nn.Sequential(nn.Conv3d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                                   bias=False), build_norm(norm, out_channels, 3))


def _up(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose3d(in_channels, out_channels, 3, stride=2, padding=1, output_padding=1,
                                            bias=False), nn.BatchNorm3d(out_channels))


class Hourglass3D(nn.Module):
    """(B, C, D, H, W) -> (B, C, D, H, W); D, H, W divisible by 4 (see the module docstring)."""

    def __init__(self, channels: int, norm: NormSpec = GN2) -> None:
        super().__init__()
        c = channels
        self.conv1 = nn.Sequential(conv_norm_3d(c, 2 * c, 3, 2, 1, norm), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(conv_norm_3d(2 * c, 2 * c, 3, 1, 1, norm), nn.ReLU(inplace=True))
        self.conv3 = nn.Sequential(conv_norm_3d(2 * c, 4 * c, 3, 2, 1, norm), nn.ReLU(inplace=True))
        self.conv4 = nn.Sequential(conv_norm_3d(4 * c, 4 * c, 3, 1, 1, norm), nn.ReLU(inplace=True))
        self.conv5 = _up(4 * c, 2 * c)
        self.conv6 = _up(2 * c, c)
        self.redir1 = conv_norm_3d(c, c, 1, 1, 0, norm)
        self.redir2 = conv_norm_3d(2 * c, 2 * c, 1, 1, 0, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(s % 4 for s in x.shape[2:]):
            raise ValueError(f"Hourglass3D needs spatial sizes divisible by 4, got {tuple(x.shape[2:])}")
        conv2 = self.conv2(self.conv1(x))
        conv4 = self.conv4(self.conv3(conv2))
        conv5 = F.relu(self.conv5(conv4) + self.redir2(conv2), inplace=True)
        return F.relu(self.conv6(conv5) + self.redir1(x), inplace=True)
