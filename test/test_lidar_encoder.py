"""L2COcc-L's LiDAR tokenizer: the six point features, the crop, scatter-max into the grid, batch statistics."""

from __future__ import annotations

import pytest
import torch

from ssc_core.errors import DataFormatError
from ssc_core.models.blocks.lidar_encoder import LidarVoxelEncoder, lidar_point_features
from ssc_core.types import GridSpec

GRID = GridSpec(dims=(8, 8, 4), voxel_size=0.4, origin=(0.0, -1.6, -0.8))


def test_point_features_are_offset_from_the_voxel_centre_absolute_xy_and_intensity():
    points = torch.tensor([[0, 0.5, -1.5, 0.1, 0.7],
                           [1, 3.1, 1.5, -0.7, 0.2],
                           [0, 3.2, 0.0, 0.0, 0.9],    # x on the far face: outside (strict crop)
                           [0, -0.1, 0.0, 0.0, 0.9]])  # behind the grid
    feats, coords = lidar_point_features(points, GRID)
    assert coords.tolist() == [[0, 1, 0, 2], [1, 7, 7, 0]]
    centre = torch.tensor([1.5 * 0.4, -1.6 + 0.5 * 0.4, -0.8 + 2.5 * 0.4])
    assert torch.allclose(feats[0, :3], points[0, 1:4] - centre, atol=1e-6)
    assert feats[0, 3:].tolist() == pytest.approx([0.5, -1.5, 0.7])
    assert feats.shape == (2, 6)


def test_each_voxel_holds_the_channel_max_of_its_points_and_empty_voxels_are_zero():
    enc = LidarVoxelEncoder(GRID, out_channels=5)
    points = torch.tensor([[0, 0.5, 0.1, 0.1, 0.1], [0, 0.55, 0.15, 0.12, 0.9], [0, 2.0, -1.0, 0.5, 0.3],
                           [1, 1.0, 1.0, 0.0, 0.5], [1, 1.1, 1.1, 0.1, 0.4]])
    volume = enc(points, batch_size=2)
    assert volume.shape == (2, 5, 8, 8, 4)
    feats, coords = lidar_point_features(points, GRID)
    per_point = enc.point_mlp(feats)
    expected = torch.maximum(per_point[0], per_point[1])
    b, i, j, k = coords[0].tolist()
    assert torch.allclose(volume[b, :, i, j, k], expected, atol=1e-6)
    occupied = (volume.abs().sum(1) > 0).sum().item()
    assert occupied == len({tuple(c) for c in coords.tolist()}) == 3


def test_batch_statistics_are_used_in_eval_mode_too():
    enc = LidarVoxelEncoder(GRID, out_channels=4).eval()
    points = torch.tensor([[0, 0.5, 0.1, 0.1, 0.1], [0, 2.5, -1.0, 0.5, 0.9], [0, 1.0, 1.0, 0.0, 0.5]])
    assert all(not m.track_running_stats for m in enc.modules() if isinstance(m, torch.nn.BatchNorm1d))
    shifted = points.clone()
    shifted[:, 4] += 5.0  # every intensity shifted: the first BatchNorm removes the shift
    assert torch.allclose(enc(points, 1), enc(shifted, 1), atol=1e-4)


def test_clouds_with_fewer_than_two_points_in_range_give_an_empty_volume():
    enc = LidarVoxelEncoder(GRID, out_channels=4)
    assert enc(torch.zeros(0, 5), 1).abs().sum() == 0
    assert enc(torch.tensor([[0, 0.5, 0.1, 0.1, 0.1], [0, 90.0, 0.0, 0.0, 0.0]]), 1).abs().sum() == 0
    with pytest.raises(DataFormatError, match=r"\(P, 5\)"):
        enc(torch.zeros(3, 4), 1)
