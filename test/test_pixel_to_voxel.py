"""Lifting 2D features into the voxel grid (ssc_core/models/blocks/pixel_to_voxel.py): the scatter through the
pixel -> voxel map and the "3D init" of CleanerS / 3D-Sketch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ssc_core.models.blocks.pixel_to_voxel import fill_empty_voxels, pixels_to_voxels

DIMS = (3, 2, 4)


def test_each_mapped_pixel_writes_its_feature_into_its_voxel_and_shared_voxels_average():
    features = torch.arange(2 * 2 * 3, dtype=torch.float32).reshape(1, 2, 2, 3)  # (B, C, H, W)
    mapping2d = torch.tensor([[[0, -1, 5], [23, 5, -1]]])  # pixels (0, 2) and (1, 1) share voxel 5
    volume = pixels_to_voxels(features, mapping2d, DIMS)
    assert volume.shape == (1, 2, *DIMS)
    flat = volume.flatten(2)[0]  # (C, voxels)
    torch.testing.assert_close(flat[:, 0], features[0, :, 0, 0])
    torch.testing.assert_close(flat[:, 23], features[0, :, 1, 0])
    torch.testing.assert_close(flat[:, 5], (features[0, :, 0, 2] + features[0, :, 1, 1]) / 2)
    others = torch.ones(24, dtype=torch.bool)
    others[[0, 5, 23]] = False
    assert torch.all(flat[:, others] == 0)


def test_features_are_resized_to_the_map_and_each_sample_uses_its_own_map():
    features = torch.stack([torch.full((1, 2, 2), 3.0), torch.full((1, 2, 2), -1.0)])  # (2, 1, 2, 2)
    mapping2d = torch.full((2, 4, 4), -1, dtype=torch.int64)
    mapping2d[0, 3, 3], mapping2d[1, 0, 0] = 7, 11
    volume = pixels_to_voxels(features, mapping2d, DIMS).flatten(2)
    assert volume[0, 0, 7] == 3.0 and volume[1, 0, 11] == -1.0
    assert torch.count_nonzero(volume[0]) == 1 and torch.count_nonzero(volume[1]) == 1


def test_a_voxel_index_outside_the_grid_is_an_error():
    with pytest.raises(ValueError, match="voxel index 24 >= 24"):
        pixels_to_voxels(torch.ones(1, 1, 1, 2), torch.tensor([[[0, 24]]]), DIMS)


def test_3d_init_adds_the_neighbourhood_average_only_where_the_feature_is_zero():
    volume = torch.zeros(1, 1, 5, 5, 5)
    volume[0, 0, 2, 2, 2] = 27.0
    volume[0, 0, 2, 2, 3] = 2.0
    out = fill_empty_voxels(volume)
    expected_pool = F.avg_pool3d(volume, 3, stride=1, padding=1)
    assert out[0, 0, 2, 2, 2] == 27.0 and out[0, 0, 2, 2, 3] == 2.0  # filled voxels keep their feature
    assert out[0, 0, 1, 1, 1] == pytest.approx(1.0)  # a neighbour of the 27 only: 27 / 27
    assert out[0, 0, 2, 1, 2] == pytest.approx((27.0 + 2.0) / 27)  # neighbour of both
    assert out[0, 0, 2, 2, 4] == pytest.approx(2.0 / 27)  # neighbour of the 2 only
    empty = volume == 0
    torch.testing.assert_close(out[empty], expected_pool[empty])
    assert out[0, 0, 0, 0, 0] == 0.0  # two voxels away from anything: stays empty
