"""Lifting 2D features into a voxel grid through a pixel -> voxel map (3D-Sketch / CleanerS), with the "3D init"
that fills empty voxels from their neighbours."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pixels_to_voxels(features: torch.Tensor, mapping2d: torch.Tensor, dims: tuple[int, int, int]) -> torch.Tensor:
    """Scatter per-pixel features into a zero volume.

    features: (B, C, h, w), bilinearly resized to the map's (H, W) when different; mapping2d: (B, H, W) int64 flat
    voxel index (C order over ``dims``) per pixel, -1 = none. Returns (B, C, *dims). Pixels sharing a voxel (an
    augmented, up-scaled map) are averaged, so the result does not depend on the order of writes."""
    b, c = features.shape[:2]
    if features.shape[-2:] != mapping2d.shape[-2:]:
        features = F.interpolate(features, size=mapping2d.shape[-2:], mode="bilinear", align_corners=False)
    n = dims[0] * dims[1] * dims[2]
    flat_map = mapping2d.reshape(b, -1)
    flat_feat = features.flatten(2).transpose(1, 2)  # (B, H*W, C)
    volumes = []
    for i in range(b):
        valid = flat_map[i] >= 0
        index = flat_map[i][valid]
        volume = features.new_zeros(n, c)
        if index.numel():
            if index.max() >= n:
                raise ValueError(f"mapping2d holds voxel index {int(index.max())} >= {n} voxels of {dims}")
            volume = volume.scatter_reduce(0, index[:, None].expand(-1, c), flat_feat[i][valid], reduce="mean",
                                           include_self=False)
        volumes.append(volume)
    return torch.stack(volumes).transpose(1, 2).reshape(b, c, *dims)

def fill_empty_voxels(volume: torch.Tensor) -> torch.Tensor:
    """3D init: where a feature is exactly 0, add the 3x3x3 average (stride 1, zero padding counted) of the volume.
    (B, C, X, Y, Z) -> same shape."""
    pooled = F.avg_pool3d(volume, 3, stride=1, padding=1)
    return volume + pooled * (volume == 0).to(volume.dtype)
