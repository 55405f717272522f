"""DeformConv2d (torchvision.ops.deform_conv2d with learned offsets) against plain convolutions."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ssc_core.ops import DeformConv2d


def test_fresh_layer_is_the_plain_grouped_convolution():
    torch.manual_seed(0)
    layer = DeformConv2d(8, 12, 3, padding=1, groups=4, bias=True)
    layer.bias.data.uniform_(-1, 1)
    x = torch.randn(2, 8, 7, 9)
    expected = F.conv2d(x, layer.weight, layer.bias, padding=1, groups=4)
    torch.testing.assert_close(layer(x), expected)


def test_modulated_fresh_layer_is_half_the_plain_convolution():
    torch.manual_seed(1)
    layer = DeformConv2d(4, 6, 3, padding=2, dilation=2, modulated=True)
    x = torch.randn(1, 4, 8, 8)
    torch.testing.assert_close(layer(x), 0.5 * F.conv2d(x, layer.weight, padding=2, dilation=2))


def test_constant_integer_offset_equals_convolving_the_shifted_input():
    torch.manual_seed(2)
    layer = DeformConv2d(3, 5, 3, padding=1, deform_groups=1)
    dy, dx = 1.0, -2.0
    offsets = torch.tensor([dy, dx]).repeat(9)  # (dy, dx) per kernel tap
    layer.conv_offset.bias.data.copy_(offsets)
    x = torch.randn(1, 3, 10, 12)
    # Tap k of output (y, x) reads input (y + ky - 1 + dy, x + kx - 1 + dx), zero outside the image: a valid
    # convolution of the zero-padded input, cropped at the shifted window.
    pad, h, w = 3, 10, 12
    full = F.conv2d(F.pad(x, (pad, pad, pad, pad)), layer.weight)
    top, left = pad - 1 + int(dy), pad - 1 + int(dx)
    expected = full[:, :, top:top + h, left:left + w]
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)


def test_gradients_match_finite_differences():
    torch.manual_seed(3)
    layer = DeformConv2d(2, 2, 3, padding=1, groups=1, deform_groups=2, modulated=True, bias=True).double()
    torch.nn.init.normal_(layer.conv_offset.weight, std=0.3)
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda inp: layer(inp), (x,), eps=1e-6, atol=1e-5)
    layer(x).sum().backward()
    assert layer.conv_offset.weight.grad.abs().sum() > 0 and layer.weight.grad.abs().sum() > 0


def test_half_precision_input_on_cpu_runs_in_float32_and_keeps_its_dtype():
    torch.manual_seed(4)
    layer = DeformConv2d(4, 4, 3, padding=1, groups=2)
    x = torch.randn(1, 4, 6, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = layer(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), layer(x), rtol=5e-2, atol=5e-2)
