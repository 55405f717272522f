"""L2COcc's EVT: depth-aware deformable attention against trilinear sampling of the lifted volume, projection and
stereo proposals round trips, and which voxels get attention or the prior."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ssc_core.models.blocks.evt import EVT, DepthCrossAttention, project_to_image, stereo_proposals
from ssc_core.ops.depth_attn import depth_deform_attn
from ssc_core.types import GridSpec

GEN = torch.Generator().manual_seed(0)
# LiDAR (x fwd, y left, z up) -> camera (x right, y down, z fwd); camera 0.2 m above the LiDAR origin.
T_CAM_VELO = torch.tensor([[0.0, -1, 0, 0], [0, 0, -1, 0.2], [1, 0, 0, 0], [0, 0, 0, 1]])
P2 = torch.tensor([[40.0, 0, 32, 4.0], [0, 40.0, 16, 0], [0, 0, 1, 0]])  # a 4th column, as KITTI's P2
GRID = GridSpec(dims=(16, 16, 4), voxel_size=1.6, origin=(0.0, -12.8, -3.2))
IMAGE_HW = (32, 64)


def test_depth_deform_attention_equals_trilinear_sampling_of_the_lifted_volume():
    h, w, bins, c, q, p = 4, 6, 5, 3, 7, 4
    feats = torch.randn(1, h * w, 1, c, generator=GEN, dtype=torch.float64)
    prob = torch.rand(1, h * w, bins, generator=GEN, dtype=torch.float64).softmax(-1)
    loc = torch.rand(1, q, 1, 1, p, 3, generator=GEN, dtype=torch.float64) * 1.2 - 0.1  # some outside
    weights = torch.rand(1, q, 1, 1, p, generator=GEN, dtype=torch.float64)
    out = depth_deform_attn(feats, prob, [(h, w)], loc, weights)
    volume = prob[0].T.reshape(1, bins, h, w) * feats[0, :, 0].T.reshape(c, 1, h, w)  # (C, D, h, w)
    grid = (2 * loc[0, :, 0, 0] - 1).view(1, q, p, 1, 3)
    sampled = F.grid_sample(volume[None], grid, mode="bilinear", align_corners=False)[0, :, :, :, 0]
    expected = (sampled * weights[0, :, 0, 0][None]).sum(-1).T
    torch.testing.assert_close(out[0], expected, rtol=1e-9, atol=1e-9)


def test_projection_and_stereo_proposals_round_trip_a_voxel_centre():
    post_rot, post_tran = torch.diag(torch.tensor([0.5, 0.5, 1.0])), torch.tensor([1.0, -2.0, 0.0])
    centre = torch.tensor([[6.5 * 1.6, -12.8 + 9.5 * 1.6, -3.2 + 1.5 * 1.6]])  # voxel (6, 9, 1)'s centre
    uv, depth = project_to_image(centre, P2, T_CAM_VELO, post_rot, post_tran)
    cam_z = 10.4
    u_raw = (40 * -2.4 + 32 * cam_z + 4.0) / cam_z
    assert torch.allclose(depth, torch.tensor([cam_z])) and abs(uv[0, 0] - (0.5 * u_raw + 1)) < 1e-4
    stereo = torch.zeros(1, 16, 32)
    col, row = int(round(uv[0, 0].item())), int(round(uv[0, 1].item()))
    stereo[0, row, col] = cam_z
    proposals = stereo_proposals(stereo, P2[None], post_rot[None], post_tran[None],
                                 torch.linalg.inv(T_CAM_VELO)[None], GRID)
    assert proposals.shape == (1, 16, 16, 4) and torch.nonzero(proposals).tolist() == [[0, 6, 9, 1]]
    stereo[0, 0, 0] = 500.0  # far outside the grid: no proposal
    assert stereo_proposals(stereo, P2[None], post_rot[None], post_tran[None], torch.linalg.inv(T_CAM_VELO)[None],
                            GRID).sum() == 1


def test_queries_outside_the_image_take_nothing_from_it():
    attn = DepthCrossAttention(16, heads=4, points=2, dropout=0.0)
    queries = torch.randn(3, 16, generator=GEN)
    ref = torch.tensor([[0.5, 0.5, 0.5], [0.2, 0.7, 0.3], [0.5, 0.5, 0.5]])
    visible = torch.tensor([True, True, False])
    value = torch.randn(4 * 6, 16, generator=GEN, requires_grad=True)
    prob = torch.rand(4 * 6, 5, generator=GEN).softmax(-1).requires_grad_()
    out = attn(queries, ref, visible, value, prob, (4, 6))
    assert torch.allclose(out[2], attn.output_proj.bias + queries[2])
    out[:2].sum().backward()
    assert value.grad.abs().sum() > 0 and prob.grad.abs().sum() > 0


def test_evt_updates_proposals_by_attention_and_the_rest_by_the_prior():
    evt = EVT(16, GRID, depth_range=(1.75, 57.75), layers=2, heads=4, points=2, dropout=0.0).eval()
    volume = torch.randn(2, 16, *GRID.dims, generator=GEN)
    proposals = torch.zeros(2, *GRID.dims, dtype=torch.bool)
    proposals[0, 6, 9, 1] = proposals[0, 3, 8, 2] = True  # sample 1: none -> every voxel is a query
    context = torch.randn(2, 16, 4, 8, generator=GEN)
    prob = torch.rand(2, 112, 4, 8, generator=GEN).softmax(1)
    args = (P2.expand(2, 3, 4), T_CAM_VELO.expand(2, 4, 4), torch.eye(3).expand(2, 3, 3), torch.zeros(2, 3),
            IMAGE_HW)
    out = evt(volume, proposals, context, prob, *args)
    assert out.shape == volume.shape
    prior = evt.mlp_prior(volume[0].flatten(1).T).T.reshape(volume[0].shape)
    rest = ~proposals[0]
    assert torch.allclose(out[0][:, rest], prior[:, rest], atol=1e-6)
    assert not torch.allclose(out[0][:, 6, 9, 1], prior[:, 6, 9, 1])
    assert not torch.allclose(out[1], evt.mlp_prior(volume[1].flatten(1).T).T.reshape(volume[1].shape))
