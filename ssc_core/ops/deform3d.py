"""Deformable 3D convolution with learned offsets in H and W only (HTCL's D3D ``DeformConvPack_d`` with
``dimension='HW'``), in pure PyTorch.

For input (N, C, D, H, W), kernel k x k x k (odd, stride 1, "same" padding k // 2), tap (a, b, c) of output
voxel (d, h, w) reads the input at depth d + a - k//2 (an integer: D is not deformed) and at the fractional
position (h + b - k//2 + dh, w + c - k//2 + dw), bilinearly, zero outside the volume; (dh, dw) is the tap's offset
at that voxel, predicted by a k x k x k convolution of the input (2 channels per tap, ordered (dh, dw) tap by tap,
taps in (a, b, c) C order), zero-initialised, so a fresh layer is the plain Conv3d. Each tap is one 2-D
``grid_sample`` over the (H, W) slices of the depth-shifted input; the layer then sums ``W[:, :, a, b, c] @
sample`` over the taps. Autograd keeps the k^3 samples: about k^3 x C x D x H x W values per call.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class DeformConv3dHW(nn.Module):
    """(N, in_channels, D, H, W) -> (N, out_channels, D, H, W), offsets in H and W (see the module docstring).
    ``bias`` as D3D (on by default)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, bias: bool = True) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"DeformConv3dHW needs an odd kernel size, got {kernel_size}")
        self.kernel_size = int(kernel_size)
        k = self.kernel_size
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, k, k, k))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        self.conv_offset = nn.Conv3d(in_channels, 2 * k ** 3, k, padding=k // 2, bias=True)
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1.0 / math.sqrt(in_channels * k ** 3)
            nn.init.uniform_(self.bias, -bound, bound)
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return deform_conv3d_hw(x, self.conv_offset(x), self.weight, self.bias)


def deform_conv3d_hw(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor,
                     bias: torch.Tensor | None = None) -> torch.Tensor:
    """The functional form: x (N, C, D, H, W); offset (N, 2 k^3, D, H, W) as (dh, dw) per tap; weight (O, C, k, k,
    k); bias (O,) or None. Returns (N, O, D, H, W)."""
    n, c, depth, height, width = x.shape
    k = weight.shape[-1]
    r = k // 2
    if offset.shape != (n, 2 * k ** 3, depth, height, width):
        raise ValueError(f"offset must be {(n, 2 * k ** 3, depth, height, width)}, got {tuple(offset.shape)}")
    padded = F.pad(x, (0, 0, 0, 0, r, r))  # zero depth slices beyond the volume
    ys = torch.arange(height, device=x.device, dtype=offset.dtype).view(1, 1, height, 1)
    xs = torch.arange(width, device=x.device, dtype=offset.dtype).view(1, 1, 1, width)
    scale_y, scale_x = 2.0 / max(height - 1, 1), 2.0 / max(width - 1, 1)
    out = None
    tap = 0
    for a in range(k):
        slices = padded[:, :, a:a + depth].permute(0, 2, 1, 3, 4).reshape(n * depth, c, height, width)
        for b in range(k):
            for cc in range(k):
                dy = offset[:, 2 * tap].reshape(n * depth, height, width)
                dx = offset[:, 2 * tap + 1].reshape(n * depth, height, width)
                gy = (ys[0] + (b - r) + dy) * scale_y - 1.0
                gx = (xs[0] + (cc - r) + dx) * scale_x - 1.0
                grid = torch.stack([gx, gy], dim=-1).to(slices.dtype)
                sample = F.grid_sample(slices, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
                term = torch.einsum("oc,nchw->nohw", weight[:, :, a, b, cc].to(sample.dtype), sample)
                out = term if out is None else out + term
                tap += 1
    out = out.view(n, depth, -1, height, width).permute(0, 2, 1, 3, 4)
    if bias is not None:
        out = out + bias.to(out.dtype).view(1, -1, 1, 1, 1)
    return out.contiguous()
