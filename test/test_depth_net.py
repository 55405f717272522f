"""BEVDepth-style DepthNet (shared by HTCL and L2COcc): camera vector layout, shapes, camera gating, size."""

from __future__ import annotations

import pytest
import torch

from ssc_core.errors import ConfigError
from ssc_core.models.blocks.depth_net import DepthNet, camera_features


def camera_inputs(batch: int = 2) -> dict:
    P = torch.tensor([[700.0, 0, 600, 46.9], [0, 700, 180, 0.12], [0, 0, 1, 0.006]]).expand(batch, 1, 3, 4).clone()
    T = torch.eye(4).expand(batch, 1, 4, 4).clone()
    T[:, 0, :3, 3] = torch.tensor([0.27, 0.0, -0.08])
    post_rot = torch.diag(torch.tensor([0.5, 0.5, 1.0])).expand(batch, 1, 3, 3).clone()
    post_tran = torch.tensor([0.0, -3.0, 0.0]).expand(batch, 1, 3).clone()
    return {"P": P, "post_rot": post_rot, "post_tran": post_tran, "T_velo_cam": T}


def test_camera_vector_has_htcls_30_values_in_order_and_27_or_33_for_the_other_layouts():
    c = camera_inputs()
    cam = camera_features(**c)
    assert cam.shape == (2, 1, 30)
    assert cam[0, 0, :7].tolist() == pytest.approx([700, 700, 600, 180, 46.9, 0.12, 0.006])
    assert cam[0, 0, 7:13].tolist() == pytest.approx([0.5, 0, 0, 0, 0.5, -3.0])
    assert cam[0, 0, 13:18].tolist() == [1, 0, 0, 1, 1]  # identity bda
    assert cam[0, 0, 18:].tolist() == pytest.approx(c["T_velo_cam"][0, 0, :3, :4].reshape(-1).tolist())
    assert camera_features(c["P"][..., :3], c["post_rot"], c["post_tran"], c["T_velo_cam"]).shape[-1] == 27
    bda = torch.eye(4).expand(2, 4, 4).clone()
    bda[:, :3, 3] = torch.tensor([1.0, 2.0, 3.0])
    cam33 = camera_features(**c, bda=bda)
    assert cam33.shape[-1] == 33 and cam33[0, 0, 18:21].tolist() == [1.0, 2.0, 3.0]


def test_depth_and_context_shapes_gradients_and_camera_gating():
    torch.manual_seed(0)
    net = DepthNet(16, 16, 8, depth_bins=12, cam_channels=30).train()
    x = torch.randn(2, 16, 8, 12)
    cam = camera_features(**camera_inputs()).reshape(2, 30)
    depth, context = net(x, cam)
    assert depth.shape == (2, 12, 8, 12) and context.shape == (2, 8, 8, 12)
    (depth.square().mean() + context.square().mean()).backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert net.depth_conv[4].conv_offset.weight.grad.abs().sum() > 0  # the offsets learn from the start
    net.eval()
    same = torch.cat([x[:1], x[:1]])
    other = cam.clone()
    other[1, 0] *= 0.5  # another focal length
    with torch.no_grad():
        d_same, c_same = net(same, torch.cat([cam[:1], cam[:1]]))
        d_other, c_other = net(same, torch.cat([cam[:1], other[1:]]))
    torch.testing.assert_close(d_same[0], d_same[1])
    assert not torch.allclose(d_other[0], d_other[1]) and not torch.allclose(c_other[0], c_other[1])
    with pytest.raises(ValueError, match="camera features"):
        net(x, cam[:, :27])
    with pytest.raises(ConfigError, match="dcn_groups"):
        DepthNet(16, 18, 8, 12, dcn_groups=4)


def test_l2cocc_depth_path_narrows_to_the_depth_bins_in_its_first_block():
    net = DepthNet(32, 24, 8, depth_bins=12, cam_channels=33, norm="BN", reduce_norm="BN", cam_norm="BN",
                   pool_norm="BN", block_channels=12)
    first = net.depth_conv[0]
    assert first.conv1.out_channels == 12 and first.downsample.kernel_size == (3, 3)
    assert net.depth_conv[3].project[0].out_channels == 12 and net.depth_conv[5].in_channels == 12
    depth, context = net(torch.randn(2, 32, 8, 16), torch.randn(2, 33))
    assert depth.shape == (2, 12, 8, 16) and context.shape == (2, 8, 8, 16)


def test_htcl_size_matches_the_analytic_count_of_the_layer_list():
    with torch.device("meta"):
        net = DepthNet(640, 640, 128, depth_bins=112, cam_channels=30, dcn_groups=4)
    c, m, d = 640, 640, 112
    norm = 2 * m
    expected = (
        c * m * 9 + m + norm  # reduce_conv 3x3 (bias) + GN
        + 2 * 30  # GN over the camera vector
        + 2 * ((30 * m + m) + (m * m + m))  # context / depth MLPs
        + 2 * 2 * (m * m + m)  # two SE layers
        + m * 128 + 128  # context 1x1
        + 3 * (2 * m * m * 9 + 2 * norm)  # BasicBlocks
        + m * m + 3 * m * m * 9 + 4 * norm + m * m + norm + 5 * m * m + norm  # ASPP
        + m * (m // 4) * 9 + (m * 18 * 9 + 18)  # DCN groups 4 + its offset conv
        + m * d + d  # depth 1x1
    )
    assert sum(p.numel() for p in net.parameters()) == expected
