"""Scatter reductions on torch.scatter_reduce (no torch-scatter needed) and unique voxel coordinates."""

from __future__ import annotations

import torch


def scatter_mean(src: torch.Tensor, index: torch.Tensor, dim_size: int) -> torch.Tensor:
    """Mean of rows of ``src`` (N, C) grouped by ``index`` (N,) int64 into (dim_size, C); empty groups are 0."""
    out = src.new_zeros((dim_size, *src.shape[1:]))
    idx = index.view(-1, *([1] * (src.dim() - 1))).expand_as(src)
    return out.scatter_reduce(0, idx, src, reduce="mean", include_self=False)


def scatter_max(src: torch.Tensor, index: torch.Tensor, dim_size: int) -> torch.Tensor:
    """Maximum of rows of ``src`` (N, C) grouped by ``index`` (N,) int64 into (dim_size, C); empty groups are 0."""
    out = src.new_zeros((dim_size, *src.shape[1:]))
    idx = index.view(-1, *([1] * (src.dim() - 1))).expand_as(src)
    return out.scatter_reduce(0, idx, src, reduce="amax", include_self=False)


def linearize_coords(coords: torch.Tensor, spatial_shape: tuple[int, int, int]) -> torch.Tensor:
    """Linear keys (N,) int64 of integer coords (N, 4) = (batch, x, y, z) on a grid of ``spatial_shape``."""
    x_dim, y_dim, z_dim = (int(s) for s in spatial_shape)
    c = coords.long()
    return ((c[:, 0] * x_dim + c[:, 1]) * y_dim + c[:, 2]) * z_dim + c[:, 3]


def delinearize_keys(keys: torch.Tensor, spatial_shape: tuple[int, int, int]) -> torch.Tensor:
    """Inverse of ``linearize_coords``: (N,) int64 keys -> (N, 4) int64 (batch, x, y, z)."""
    x_dim, y_dim, z_dim = (int(s) for s in spatial_shape)
    z = keys % z_dim
    rest = keys // z_dim
    y = rest % y_dim
    rest = rest // y_dim
    x = rest % x_dim
    b = rest // x_dim
    return torch.stack([b, x, y, z], dim=1)


def unique_coords(coords: torch.Tensor, spatial_shape: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Unique rows of (N, 4) int coords (batch, x, y, z), sorted by linear key.

    Returns (unique coords (M, 4) int64, inverse (N,) int64 with unique[inverse] == coords)."""
    keys = linearize_coords(coords, spatial_shape)
    uniq, inverse = torch.unique(keys, sorted=True, return_inverse=True)
    return delinearize_keys(uniq, spatial_shape), inverse
