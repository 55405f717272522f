"""L2COcc-L's LiDAR tokenizer (fact sheet §2.3): raw scan -> six features per point -> point MLP -> scatter-max per
voxel of the work grid -> dense volume. No sparse convolutions: the "sparse" step is only the scatter to the grid.
"""

from __future__ import annotations

import torch
from torch import nn

from ssc_core.errors import DataFormatError
from ssc_core.ops import linearize_coords, scatter_max, unique_coords
from ssc_core.types import GridSpec

POINT_FEATURES = 6


def lidar_point_features(points: torch.Tensor, grid: GridSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Six features per point, as L2COcc's preprocessing makes them.

    points: (P, 5) float [batch, x, y, z, intensity] in the LiDAR frame (``collate``'s layout). Points strictly
    inside the grid's volume are kept; each gets (x, y, z) minus the centre of its voxel of ``grid`` (L2COcc: the
    0.4 m work grid), absolute x and y, and intensity. Returns (features (N, 6) float32, coords (N, 4) int64 =
    (batch, i, j, k) voxel indices)."""
    if points.dim() != 2 or points.shape[1] != 5:
        raise DataFormatError(f"LiDAR points must be (P, 5) [batch, x, y, z, intensity], got {tuple(points.shape)}")
    points = points.float()
    lower = torch.tensor(grid.origin, dtype=torch.float32, device=points.device)
    upper = torch.tensor(grid.max_bound, dtype=torch.float32, device=points.device)
    xyz = points[:, 1:4]
    keep = torch.all((xyz > lower) & (xyz < upper), dim=1)
    points, xyz = points[keep], xyz[keep]
    dims = torch.tensor(grid.dims, device=points.device)
    index = torch.floor((xyz - lower) / grid.voxel_size).long()
    index = torch.minimum(index.clamp(min=0), dims - 1)
    centre = (index.float() + 0.5) * grid.voxel_size + lower
    features = torch.cat([xyz - centre, xyz[:, :2], points[:, 4:5]], dim=1)
    return features, torch.cat([points[:, :1].long(), index], dim=1)


def _linear_bn(in_channels: int, out_channels: int) -> list[nn.Module]:
    return [nn.Linear(in_channels, out_channels), nn.BatchNorm1d(out_channels, track_running_stats=False), nn.ReLU()]


class LidarVoxelEncoder(nn.Module):
    """(P, 5) points -> (B, out_channels, X, Y, Z) on ``grid``.

    Point MLP: BatchNorm1d(6) -> Linear 64 -> BN -> ReLU -> Linear 128 -> BN -> ReLU -> Linear 256 -> BN -> ReLU ->
    Linear out_channels, every BatchNorm without running statistics (L2COcc's ``track_running_stats=False``:
    batch statistics in training and evaluation alike). Voxel feature = channel-wise max over its points
    (``scatter_reduce`` amax); voxels without points are 0. A sample whose cloud has fewer than two points in range
    contributes nothing (batch statistics need two)."""

    def __init__(self, grid: GridSpec, out_channels: int = 128) -> None:
        super().__init__()
        self.grid = grid
        self.out_channels = out_channels
        self.point_mlp = nn.Sequential(
            nn.BatchNorm1d(POINT_FEATURES, track_running_stats=False), *_linear_bn(POINT_FEATURES, 64),
            *_linear_bn(64, 128), *_linear_bn(128, 256), nn.Linear(256, out_channels))

    def forward(self, points: torch.Tensor, batch_size: int) -> torch.Tensor:
        features, coords = lidar_point_features(points, self.grid)
        x, y, z = self.grid.dims
        volume = features.new_zeros((batch_size * x * y * z, self.out_channels))
        if len(features) >= 2:
            voxels, inverse = unique_coords(coords, self.grid.dims)
            pooled = scatter_max(self.point_mlp(features), inverse, len(voxels))
            volume = volume.index_copy(0, linearize_coords(voxels, self.grid.dims), pooled)
        return volume.view(batch_size, x, y, z, self.out_channels).permute(0, 4, 1, 2, 3).contiguous()
