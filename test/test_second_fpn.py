"""SECONDFPN / SECONDFPN3D (shared HTCL / L2COcc necks) and the norm builder they use."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ssc_core.errors import ConfigError
from ssc_core.models.blocks.norm import build_norm
from ssc_core.models.blocks.second_fpn import SECONDFPN, SECONDFPN3D

EFFNET_B7_CHANNELS = [48, 80, 224, 640, 2560]


def test_htcl_image_neck_meets_at_stride_8_with_640_channels_and_the_analytic_parameter_count():
    neck = SECONDFPN(EFFNET_B7_CHANNELS, [128] * 5, [0.5, 1, 2, 4, 4])
    h, w = 48, 160  # stride-8 size of a 384 x 1280 image
    feats = [torch.randn(1, c, h * 8 // s, w * 8 // s) for c, s in zip(EFFNET_B7_CHANNELS, [4, 8, 16, 32, 32])]
    out = neck(feats)
    assert out.shape == (1, 640, h, w) and neck.out_channels == 640
    assert (out >= 0).all()  # ReLU last
    # conv k=s=2 (stride 0.5), deconv k=1, k=2, k=4, k=4; no biases; BN gamma + beta per level
    kernels = [2 * 2, 1, 2 * 2, 4 * 4, 4 * 4]
    expected = sum(c * 128 * k for c, k in zip(EFFNET_B7_CHANNELS, kernels)) + 5 * 2 * 128
    assert sum(p.numel() for p in neck.parameters()) == expected
    first, second = neck.deblocks[0][0], neck.deblocks[1][0]
    assert isinstance(first, nn.Conv2d) and first.stride == (2, 2) and first.kernel_size == (2, 2)
    assert isinstance(second, nn.ConvTranspose2d) and second.kernel_size == (1, 1)
    bn = neck.deblocks[0][1]
    assert isinstance(bn, nn.BatchNorm2d) and bn.eps == 1e-3 and bn.momentum == 0.01


def test_transposed_level_spreads_each_input_cell_over_a_stride_block():
    neck = SECONDFPN([1], [1], [2], norm={"type": "GN", "num_groups": 1})
    deconv = neck.deblocks[0][0]
    with torch.no_grad():
        deconv.weight.fill_(1.0)
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    up = deconv(x)
    assert torch.equal(up[0, 0], torch.tensor([[1.0, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]))


def test_htcl_3d_neck_uses_group_norm_and_gives_384_channels_at_the_first_level_size():
    neck = SECONDFPN3D([128, 256, 512], [128] * 3, [1, 2, 4])
    feats = [torch.randn(1, 128, 8, 8, 4), torch.randn(1, 256, 4, 4, 2), torch.randn(1, 512, 2, 2, 1)]
    out = neck(feats)
    assert out.shape == (1, 384, 8, 8, 4)
    assert isinstance(neck.deblocks[2][0], nn.ConvTranspose3d) and neck.deblocks[2][0].kernel_size == (4, 4, 4)
    gn = neck.deblocks[0][1]
    assert isinstance(gn, nn.GroupNorm) and gn.num_groups == 32
    out.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in neck.parameters())


def test_bad_strides_and_mismatched_levels_are_named():
    with pytest.raises(ConfigError, match="1/n"):
        SECONDFPN([8], [8], [0.3])
    with pytest.raises(ConfigError, match="integers"):
        SECONDFPN([8], [8], [1.5])
    with pytest.raises(ConfigError, match="equally long"):
        SECONDFPN([8, 8], [8], [1, 2])
    neck = SECONDFPN([4, 4], [4, 4], [1, 2], norm="BN")
    with pytest.raises(ValueError, match="one size"):
        neck([torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)])


def test_norm_builder_makes_the_named_layers_and_rejects_the_rest():
    assert isinstance(build_norm("BN", 6, 3), nn.BatchNorm3d)
    assert isinstance(build_norm({"type": "BN", "eps": 1e-3}, 6, 1), nn.BatchNorm1d)
    gn = build_norm({"type": "GN", "num_groups": 2}, 30, 1)
    assert isinstance(gn, nn.GroupNorm) and gn.num_groups == 2
    with pytest.raises(ConfigError, match="cannot normalise"):
        build_norm({"type": "GN", "num_groups": 4}, 30, 2)
    with pytest.raises(ConfigError, match="'BN' or 'GN'"):
        build_norm("LN", 8, 2)
    with pytest.raises(ConfigError, match="num_groups and eps"):
        build_norm({"type": "GN", "groups": 2}, 8, 2)
