"""Lift-splat (shared LSS block): frustum geometry against explicit projection, voxel pooling against a loop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssc_core.data.synthetic.options import default_calib
from ssc_core.models.blocks.lss import (
    LiftSplat,
    depth_bins,
    frustum_to_lidar,
    lift,
    make_frustum,
    splat,
    voxel_index,
)
from ssc_core.types import GridSpec

GRID = GridSpec(dims=(16, 16, 4), voxel_size=3.2, origin=(0.0, -25.6, -2.0))


def calib_tensors(scale: float, top: float) -> dict:
    """Real KITTI calibration (P2 with its 4th column) and a resize-by-``scale`` + crop-``top``-rows transform."""
    calib = default_calib()
    post_rot = torch.diag(torch.tensor([scale, scale, 1.0]))
    post_tran = torch.tensor([0.0, -top, 0.0])
    return {
        "P": torch.from_numpy(calib.P2).float()[None, None],
        "post_rot": post_rot[None, None],
        "post_tran": post_tran[None, None],
        "T_velo_cam": torch.from_numpy(np.linalg.inv(calib.T_cam0_velo)).float()[None, None],
        "P2": calib.P2, "Tr": calib.T_cam0_velo,
    }


def test_depth_bins_of_htcl():
    bins = depth_bins(2.0, 58.0, 0.5)
    assert len(bins) == 112 and bins[0] == 2.0 and bins[-1] == 57.5
    with pytest.raises(ValueError):
        depth_bins(5.0, 2.0, 0.5)


def test_frustum_points_project_back_to_their_pixels_through_p2_and_the_image_transform():
    c = calib_tensors(scale=1280 / 1226, top=2.0)
    frustum = make_frustum((384, 1280), (6, 10), torch.tensor([3.0, 20.0, 55.0]))
    pts = frustum_to_lidar(frustum, c["P"], c["post_rot"], c["post_tran"], c["T_velo_cam"])[0, 0]
    assert pts.shape == (3, 6, 10, 3)
    # forward: raw pixel = P2 @ Tr @ x (the exact KITTI camera-2 projection), then tensor pixel = post transform
    homo = np.concatenate([pts.reshape(-1, 3).double().numpy(), np.ones((pts.numel() // 3, 1))], axis=1)
    cam = (c["P2"] @ c["Tr"] @ homo.T).T
    raw_uv = cam[:, :2] / cam[:, 2:3]
    tensor_uv = raw_uv * (1280 / 1226) + np.array([0.0, -2.0])
    np.testing.assert_allclose(tensor_uv, frustum[..., :2].reshape(-1, 2).numpy(), atol=2e-3)
    np.testing.assert_allclose(cam[:, 2], frustum[..., 2].reshape(-1).numpy(), atol=1e-4)  # P2[2, 3] ~ 6 mm


def test_bda_moves_the_points_rigidly():
    c = calib_tensors(1.0, 0.0)
    frustum = make_frustum((96, 320), (3, 4), torch.tensor([10.0]))
    bda = torch.eye(4)[None]
    bda[0, :3, :3] = torch.tensor([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
    bda[0, :3, 3] = torch.tensor([1.0, 2.0, 3.0])
    plain = frustum_to_lidar(frustum, c["P"], c["post_rot"], c["post_tran"], c["T_velo_cam"])
    moved = frustum_to_lidar(frustum, c["P"], c["post_rot"], c["post_tran"], c["T_velo_cam"], bda)
    expected = plain @ bda[0, :3, :3].T + bda[0, :3, 3]
    torch.testing.assert_close(moved, expected)


def test_voxel_index_floors_and_discards_points_outside_the_grid():
    pts = torch.tensor([[[0.1, -25.5, -1.9], [3.3, -25.5, -1.9], [-0.1, 0.0, 0.0], [51.1, 25.5, 10.9],
                         [10.0, 0.0, 0.0]]])
    idx = voxel_index(pts, GRID)
    discard = GRID.num_voxels
    i, j, k = 10.0 // 3.2, 25.6 // 3.2, 2.0 // 3.2
    assert idx.tolist() == [0, 16 * 4, discard, discard, int((i * 16 + j) * 4 + k)]
    two = voxel_index(torch.cat([pts, pts]), GRID)
    discard_two = 2 * GRID.num_voxels  # the discard slot follows the last voxel of the last sample
    assert two.tolist() == [0, 64, discard_two, discard_two, 224] + [v + GRID.num_voxels for v in (0, 64)] + [
        discard_two, discard_two, 224 + GRID.num_voxels]


def test_splat_sums_features_per_voxel_like_a_python_loop_and_passes_gradients():
    gen = torch.Generator().manual_seed(0)
    pts = torch.rand(2, 200, 3, generator=gen) * torch.tensor([60.0, 60.0, 16.0]) + torch.tensor([-5.0, -30.0, -4.0])
    feats = torch.randn(2, 200, 5, generator=gen, requires_grad=True)
    out = splat(feats, voxel_index(pts, GRID), GRID)
    assert out.shape == (2, 5, 16, 16, 4)
    expected = torch.zeros(2, 5, 16, 16, 4)
    inside = torch.zeros(2, 200, dtype=torch.bool)
    for b in range(2):
        for p in range(200):
            ijk = torch.floor((pts[b, p] - torch.tensor(GRID.origin)) / GRID.voxel_size).long()
            if all(0 <= int(v) < d for v, d in zip(ijk, GRID.dims)):
                expected[b, :, ijk[0], ijk[1], ijk[2]] += feats[b, p].detach()
                inside[b, p] = True
    torch.testing.assert_close(out, expected)
    assert 0 < inside.sum() < inside.numel()
    out.sum().backward()
    assert torch.equal(feats.grad, inside.float().unsqueeze(-1).expand(-1, -1, 5))


def test_a_one_hot_depth_lands_its_context_in_the_voxel_of_that_depth():
    c = calib_tensors(1.0, 0.0)
    depths = torch.tensor([5.0, 10.0, 20.0, 40.0])
    module = LiftSplat((96, 320), (4, 8), depths, GRID)
    index = module.geometry(c["P"], c["post_rot"], c["post_tran"], c["T_velo_cam"])
    prob = torch.zeros(1, 1, 4, 4, 8)
    prob[0, 0, 2, 3, 5] = 1.0  # pixel (row 3, col 5) certainly at 20 m
    context = torch.arange(3.0).view(1, 1, 3, 1, 1).expand(1, 1, 3, 4, 8) + 1.0
    volume = module(lift(prob, context), index)
    nonzero = torch.nonzero(volume.sum(1)[0])
    assert len(nonzero) == 1
    point = frustum_to_lidar(module.frustum, c["P"], c["post_rot"], c["post_tran"], c["T_velo_cam"])[0, 0, 2, 3, 5]
    expected = torch.floor((point - torch.tensor(GRID.origin)) / GRID.voxel_size).long()
    assert nonzero[0].tolist() == expected.tolist()
    assert volume[0, :, expected[0], expected[1], expected[2]].tolist() == [1.0, 2.0, 3.0]


def test_frustum_is_made_on_the_depth_bins_device():
    frustum = make_frustum((96, 320), (12, 40), torch.zeros(4, device="meta"))
    assert frustum.device.type == "meta" and frustum.shape == (4, 12, 40, 3)
