"""Deformable 2D convolution (DCN v1, optionally modulated v2) on ``torchvision.ops.deform_conv2d``.

The module predicts its own sampling offsets from the input with a convolution of the same kernel, stride,
padding and dilation, zero-initialised so that a fresh layer starts as the plain convolution (mmcv's
``DeformConv2dPack`` / ``ModulatedDeformConv2dPack`` behaviour, used by HTCL's BEVDepth-style DepthNet).
Offsets are laid out as torchvision and mmcv both expect: for each deformable group and kernel tap, (dy, dx)
in input pixels.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torchvision.ops import deform_conv2d


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


class DeformConv2d(nn.Module):
    """Deformable convolution with learned offsets. (N, C_in, H, W) -> (N, C_out, H_out, W_out).

    ``groups`` splits the channels of the convolution itself (as ``nn.Conv2d``); ``deform_groups`` gives each
    group of input channels its own offsets; ``modulated`` adds DCN v2's sigmoid mask (initialised to 0.5 x the
    plain convolution, as mmcv's modulated layer does)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int] = 3,
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 1,
                 dilation: int | tuple[int, int] = 1, groups: int = 1, deform_groups: int = 1,
                 bias: bool = False, modulated: bool = False) -> None:
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"channels {in_channels} -> {out_channels} are not divisible by groups={groups}")
        if in_channels % deform_groups:
            raise ValueError(f"in_channels {in_channels} is not divisible by deform_groups={deform_groups}")
        self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
        self.padding, self.dilation = _pair(padding), _pair(dilation)
        self.groups, self.deform_groups, self.modulated = groups, deform_groups, modulated
        kh, kw = self.kernel_size
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, kh, kw))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        per_tap = 3 if modulated else 2
        self.conv_offset = nn.Conv2d(in_channels, deform_groups * per_tap * kh * kw, self.kernel_size, self.stride,
                                     self.padding, self.dilation, bias=True)
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_offset(x)
        mask = None
        if self.modulated:
            taps = self.deform_groups * self.kernel_size[0] * self.kernel_size[1]
            offset, mask = out[:, : 2 * taps], torch.sigmoid(out[:, 2 * taps:])
        else:
            offset = out
        if x.device.type == "cpu" and (torch.is_autocast_enabled("cpu") or x.dtype in (torch.float16, torch.bfloat16)):
            # torchvision's CPU kernel has no half-precision version and no CPU autocast rule (on CUDA it runs
            # under autocast): compute in float32, hand back the dtype the offset conv produced
            bias = None if self.bias is None else self.bias.float()
            with torch.autocast("cpu", enabled=False):
                result = deform_conv2d(x.float(), offset.float(), self.weight.float(), bias, stride=self.stride,
                                       padding=self.padding, dilation=self.dilation,
                                       mask=None if mask is None else mask.float())
            return result.to(out.dtype)
        return deform_conv2d(x, offset, self.weight, self.bias, stride=self.stride, padding=self.padding,
                             dilation=self.dilation, mask=mask)
