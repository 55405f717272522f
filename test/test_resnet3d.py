"""ResNet3D (shared 3D voxel encoder) and the PSMNet-style Hourglass3D."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ssc_core.errors import ConfigError
from ssc_core.models.blocks.hourglass import Hourglass3D
from ssc_core.models.blocks.resnet3d import ResNet3D

GN32 = {"type": "GN", "num_groups": 32}


def test_htcl_encoder_stage_shapes_norms_and_gradients():
    torch.manual_seed(0)
    net = ResNet3D(32, [32, 64, 128], [2, 2, 2], [1, 2, 2], norm=GN32)
    x = torch.randn(2, 32, 8, 8, 4)
    outs = net(x)
    assert [tuple(o.shape) for o in outs] == [(2, 32, 8, 8, 4), (2, 64, 4, 4, 2), (2, 128, 2, 2, 1)]
    assert all(isinstance(m, nn.GroupNorm) for m in net.modules() if "Norm" in type(m).__name__)
    assert net.stages[0][0].downsample is None and net.stages[1][0].downsample is not None
    sum(o.mean() for o in outs).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    only_last = ResNet3D(32, [32, 64], [1, 1], [1, 2], norm="BN", out_indices=[1])
    assert [tuple(o.shape) for o in only_last(x)] == [(2, 64, 4, 4, 2)]


def test_htcl_full_size_parameter_count_matches_the_layer_list():
    with torch.device("meta"):
        net = ResNet3D(128, [128, 256, 512], [2, 2, 2], [1, 2, 2], norm=GN32)

    def block(c_in: int, c: int) -> int:
        shortcut = c_in * c + 2 * c if c_in != c else 0
        return c_in * c * 27 + c * c * 27 + 4 * c + shortcut

    expected = 128 * 128 + 2 * 128
    expected += block(128, 128) + block(128, 128) + block(128, 256) + block(256, 256)
    expected += block(256, 512) + block(512, 512)
    assert sum(p.numel() for p in net.parameters()) == expected
    with pytest.raises(ConfigError, match="equally long"):
        ResNet3D(8, [8, 16], [2], [1, 2])
    with pytest.raises(ConfigError, match="out_indices"):
        ResNet3D(8, [8], [1], [1], out_indices=[1])


def test_l2cocc_variant_has_no_input_projection_and_3x3_shortcuts_on_every_stage():
    net = ResNet3D(16, [16, 16, 16], [2, 2, 2], [1, 2, 2], norm="BN", input_proj=False, shortcut="conv3")
    assert isinstance(net.input_proj, nn.Identity)
    for stage in net.stages:
        conv = stage[0].downsample[0]
        assert conv.kernel_size == (3, 3, 3) and stage[1].downsample is None
    assert net.stages[0][0].downsample[0].stride == (1, 1, 1)
    outs = net(torch.randn(1, 16, 8, 8, 4))
    assert [tuple(o.shape) for o in outs] == [(1, 16, 8, 8, 4), (1, 16, 4, 4, 2), (1, 16, 2, 2, 1)]
    with pytest.raises(ConfigError, match="shortcut"):
        ResNet3D(8, [8], [1], [1], shortcut="conv5")


def test_hourglass_keeps_the_shape_and_insists_on_sizes_divisible_by_4():
    torch.manual_seed(0)
    net = Hourglass3D(4)
    x = torch.randn(1, 4, 8, 12, 16)
    out = net(x)
    assert out.shape == x.shape and (out >= 0).all()
    out.mean().backward()
    assert all(p.grad is not None for p in net.parameters())
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.randn(1, 4, 6, 12, 16))
