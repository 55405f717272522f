"""Depth-map pooling, binning and L2COcc's Gaussian depth KL."""

from __future__ import annotations

import pytest
import torch

from ssc_core.errors import DataFormatError
from ssc_core.losses.depth import (
    depth_bin_index,
    depth_kl_loss,
    depth_one_hot,
    gaussian_depth_target,
    min_pool_depth,
    num_bins,
)

BINS = (2.0, 58.0, 0.5)


def test_min_pool_takes_the_nearest_valid_depth_of_each_patch():
    depth = torch.zeros(1, 4, 4)
    depth[0, 0, 1], depth[0, 1, 0] = 7.0, 5.0
    depth[0, 2, 2] = float("nan")
    depth[0, 3, 3] = 9.0
    pooled = min_pool_depth(depth, 2)
    assert pooled.tolist() == [[[5.0, 0.0], [0.0, 9.0]]]
    with pytest.raises(DataFormatError, match="multiples"):
        min_pool_depth(torch.zeros(1, 5, 4), 2)


def test_depths_go_to_the_bin_with_the_nearest_centre_and_out_of_range_to_none():
    assert num_bins(BINS) == 112
    depth = torch.tensor([2.0, 2.24, 2.26, 57.5, 57.76, 1.74, 0.0, 30.0])
    assert depth_bin_index(depth, BINS).tolist() == [0, 0, 1, 111, -1, -1, -1, 56]
    one_hot = depth_one_hot(depth.view(1, 1, 8), BINS)
    assert one_hot.shape == (1, 112, 1, 8)
    assert one_hot.sum(1).tolist() == [[[1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0]]]


def test_gaussian_target_is_a_distribution_centred_on_the_depth():
    target = gaussian_depth_target(torch.tensor([[[10.0, 30.3]]]), BINS, std=0.5)
    assert target.shape == (1, 112, 1, 2)
    assert target.sum(1).flatten().tolist() == pytest.approx([1.0, 1.0], abs=1e-4)
    assert target[0, :, 0, 0].argmax().item() == 16 and target[0, :, 0, 1].argmax().item() == 57
    assert target[0, 15, 0, 0].item() == pytest.approx(target[0, 17, 0, 0].item(), rel=1e-4)  # symmetric


def test_depth_kl_is_smallest_for_the_target_and_ignores_pixels_without_depth():
    depth_map = torch.zeros(1, 8, 8)
    depth_map[0, :4, :4] = 12.0  # one of the four 4x4 patches has depth
    bins = BINS
    target = gaussian_depth_target(min_pool_depth(depth_map, 4), bins)
    uniform = torch.full((1, 112, 2, 2), 1 / 112)
    perfect = uniform.clone()
    perfect[0, :, 0, 0] = target[0, :, 0, 0]
    assert depth_kl_loss(perfect, depth_map, bins).item() < 2e-3
    assert depth_kl_loss(uniform, depth_map, bins).item() > 1.0
    other = perfect.clone()
    other[0, :, 1, 1] = torch.softmax(torch.randn(112), 0)  # a pixel without depth: no effect
    assert depth_kl_loss(other, depth_map, bins).item() == depth_kl_loss(perfect, depth_map, bins).item()
    empty = depth_kl_loss(uniform.requires_grad_(), torch.zeros(1, 8, 8), bins)
    assert empty.item() == 0.0 and empty.requires_grad
