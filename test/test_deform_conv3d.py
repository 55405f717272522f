"""DeformConv3dHW (3D deformable conv, offsets in H and W, grid_sample) against plain and shifted Conv3d and a
per-voxel bilinear reference; gradients by gradcheck."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ssc_core.ops import DeformConv3dHW, deform_conv3d_hw


def test_fresh_layer_is_the_plain_conv3d():
    torch.manual_seed(0)
    layer = DeformConv3dHW(3, 5)
    x = torch.randn(2, 3, 4, 6, 7)
    torch.testing.assert_close(layer(x), F.conv3d(x, layer.weight, layer.bias, padding=1), rtol=1e-5, atol=1e-5)


def test_constant_integer_offset_equals_convolving_the_shifted_input():
    torch.manual_seed(1)
    layer = DeformConv3dHW(2, 4, bias=False)
    dh, dw = -1.0, 2.0
    layer.conv_offset.bias.data.copy_(torch.tensor([dh, dw]).repeat(27))
    x = torch.randn(1, 2, 5, 8, 9)
    # tap (a, b, c) at (d, h, w) reads (d + a - 1, h + b - 1 + dh, w + c - 1 + dw): a valid conv of the zero-padded
    # input cropped at the shifted window
    pad = 3
    full = F.conv3d(F.pad(x, (pad, pad, pad, pad, 1, 1)), layer.weight)
    top, left = pad - 1 + int(dh), pad - 1 + int(dw)
    expected = full[:, :, :, top:top + 8, left:left + 9]
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)


def _bilinear(img: torch.Tensor, y: float, x: float) -> torch.Tensor:
    """img (C, H, W) at fractional (y, x), zero outside."""
    c, h, w = img.shape
    y0, x0 = math.floor(y), math.floor(x)
    out = torch.zeros(c, dtype=img.dtype)
    for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
        for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
            if 0 <= yy < h and 0 <= xx < w:
                out += wy * wx * img[:, yy, xx]
    return out


def test_fractional_offsets_match_a_per_voxel_bilinear_reference():
    torch.manual_seed(2)
    x = torch.randn(1, 2, 3, 4, 5, dtype=torch.float64)
    weight = torch.randn(3, 2, 3, 3, 3, dtype=torch.float64)
    offset = torch.randn(1, 54, 3, 4, 5, dtype=torch.float64) * 1.5
    out = deform_conv3d_hw(x, offset, weight)
    expected = torch.zeros(1, 3, 3, 4, 5, dtype=torch.float64)
    for d in range(3):
        for h in range(4):
            for w in range(5):
                tap = 0
                for a in range(3):
                    for b in range(3):
                        for c in range(3):
                            dd = d + a - 1
                            if 0 <= dd < 3:
                                y = h + b - 1 + offset[0, 2 * tap, d, h, w].item()
                                xx = w + c - 1 + offset[0, 2 * tap + 1, d, h, w].item()
                                expected[0, :, d, h, w] += weight[:, :, a, b, c] @ _bilinear(x[0, :, dd], y, xx)
                            tap += 1
    torch.testing.assert_close(out, expected)


def test_gradients_match_finite_differences():
    torch.manual_seed(3)
    x = torch.randn(1, 1, 2, 2, 3, dtype=torch.float64, requires_grad=True)
    offset = (torch.rand(1, 54, 2, 2, 3, dtype=torch.float64) * 1.6 - 0.8).requires_grad_()  # away from integers
    weight = torch.randn(1, 1, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(deform_conv3d_hw, (x, offset, weight), eps=1e-6, atol=1e-5, fast_mode=True)
    layer = DeformConv3dHW(1, 2)
    torch.nn.init.normal_(layer.conv_offset.weight, std=0.3)
    layer(x.float()).square().sum().backward()
    assert layer.conv_offset.weight.grad.abs().sum() > 0 and layer.weight.grad.abs().sum() > 0


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="odd"):
        DeformConv3dHW(2, 2, kernel_size=2)
    with pytest.raises(ValueError, match="offset must be"):
        deform_conv3d_hw(torch.randn(1, 2, 3, 4, 4), torch.randn(1, 27, 3, 4, 4), torch.randn(2, 2, 3, 3, 3))
