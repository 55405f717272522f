"""Ray-cast log-odds occupancy: every point is a ray from its sensor origin; the voxel the ray ends in is hit
(occupied), the voxels it crosses before are passed (free). Amanatides & Woo's voxel traversal ("A Fast Voxel
Traversal Algorithm for Ray Tracing", Eurographics 1987), vectorised over all rays in torch (CPU or CUDA).

Two ways to turn hits and passes into log-odds (``mode``):

- ``once`` (VoxFormer's stage-1 preprocessing): a voxel holds ``lo_occupied`` when any ray ends in it, else
  ``lo_free`` when any ray crosses it, else 0 (unknown);
- ``accumulate`` (an occupancy-mapping update): ``hits * lo_occupied + passes * lo_free``, each ray counting once
  per voxel, so voxels that many rays see through become free even when a few rays ended in them.

Only points inside the grid are cast (as VoxFormer filters them first); an origin outside the grid is fine (the
ray is clipped to the grid where it enters). With ``merge_endpoints`` the rays from one origin that end in the
same voxel are cast once, towards the mean of their end points, and count as many rays as they merge: the hit
voxels are exact, the crossed voxels are those of the merged ray (far fewer rays for dense pseudo-LiDAR).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import torch

from ssc_core.errors import ConfigError
from ssc_core.types import GridSpec

RAYCAST_MODES = ("once", "accumulate")
LO_OCCUPIED = math.log(0.7 / 0.3)
LO_FREE = math.log(0.4 / 0.6)


def _prepare(points: torch.Tensor, origins: torch.Tensor, origin_index: torch.Tensor, grid: GridSpec,
             merge: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """In-grid rays: (end points (R, 3), their origins (R, 3), end voxels (R, 3) int64, ray counts (R,))."""
    lower = torch.tensor(grid.origin, dtype=torch.float64, device=points.device)
    dims = torch.tensor(grid.dims, device=points.device)
    end_voxel = torch.floor((points - lower) / grid.voxel_size).long()
    inside = torch.all((end_voxel >= 0) & (end_voxel < dims), dim=1) & torch.all(torch.isfinite(points), dim=1)
    points, end_voxel, origin_index = points[inside], end_voxel[inside], origin_index[inside]
    counts = torch.ones(len(points), dtype=torch.float64, device=points.device)
    if merge and len(points):
        flat = (end_voxel[:, 0] * grid.dims[1] + end_voxel[:, 1]) * grid.dims[2] + end_voxel[:, 2]
        keys, inverse = torch.unique(origin_index * grid.num_voxels + flat, return_inverse=True)
        counts = torch.zeros(len(keys), dtype=torch.float64, device=points.device).index_add_(0, inverse, counts)
        sums = torch.zeros(len(keys), 3, dtype=torch.float64, device=points.device).index_add_(0, inverse, points)
        points = sums / counts[:, None]
        origin_index = keys // grid.num_voxels
        rest = keys % grid.num_voxels
        end_voxel = torch.stack([rest // (grid.dims[1] * grid.dims[2]), rest // grid.dims[2] % grid.dims[1],
                                 rest % grid.dims[2]], dim=1)
    return points, origins[origin_index], end_voxel, counts


def traverse(points: torch.Tensor, origins: torch.Tensor, end_voxel: torch.Tensor, grid: GridSpec
             ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The voxels each ray crosses before its end voxel, one traversal step at a time.

    points, origins: (R, 3) float64 (the ray runs from origins[r] to points[r]); end_voxel: (R, 3) int64 voxel of
    each end point (inside the grid). Yields, step by step, (ray indices (A,) int64, the voxel (A, 3) int64 each of
    those rays is in before it steps): together every voxel from the one where a ray enters the grid up to, not
    including, its end voxel, each once. Nothing is kept between steps, so memory stays O(R)."""
    device = points.device
    lower = torch.tensor(grid.origin, dtype=torch.float64, device=device)
    upper = lower + torch.tensor(grid.dims, dtype=torch.float64, device=device) * grid.voxel_size
    dims = torch.tensor(grid.dims, device=device)
    direction = points - origins
    moving = direction != 0
    safe = torch.where(moving, direction, torch.ones_like(direction))
    # Where the segment enters the grid box (slab method); 0 when the origin is inside.
    t_a, t_b = (lower - origins) / safe, (upper - origins) / safe
    t_near = torch.where(moving, torch.minimum(t_a, t_b), torch.full_like(t_a, -math.inf))
    t_enter = t_near.max(dim=1).values.clamp(0.0, 1.0)
    voxel = torch.floor((origins + t_enter[:, None] * direction - lower) / grid.voxel_size).long()
    voxel = torch.minimum(voxel.clamp(min=0), dims - 1)
    step = torch.where(direction > 0, 1, -1) * moving
    boundary = lower + (voxel + (step > 0)) * grid.voxel_size
    t_max = torch.where(moving, (boundary - origins) / safe, torch.full_like(direction, math.inf))
    t_delta = torch.where(moving, grid.voxel_size / direction.abs().clamp(min=1e-300),
                          torch.full_like(direction, math.inf))
    remaining = (end_voxel - voxel).abs()
    steps = remaining.sum(dim=1)
    # Longest rays first, so the rays still running at step k are a prefix: slicing needs no compaction.
    order = torch.argsort(steps, descending=True)
    voxel, t_max, t_delta, step, remaining = voxel[order], t_max[order], t_delta[order], step[order], remaining[order]
    running = len(steps) - torch.cumsum(torch.bincount(steps.cpu(), minlength=1), 0)  # rays with > k steps
    for active in running.tolist():
        if not active:
            break
        yield order[:active], voxel[:active].clone()
        # Step along the axis whose boundary comes first, never past the end voxel on that axis.
        t_pick = torch.where(remaining[:active] > 0, t_max[:active], torch.full_like(t_max[:active], math.inf))
        axis = t_pick.argmin(dim=1, keepdim=True)
        voxel[:active].scatter_add_(1, axis, step[:active].gather(1, axis))
        t_max[:active].scatter_add_(1, axis, t_delta[:active].gather(1, axis))
        remaining[:active].scatter_add_(1, axis, torch.full_like(axis, -1))


def raycast_logodds(
    points: torch.Tensor | np.ndarray,
    grid: GridSpec,
    origins: torch.Tensor | np.ndarray | None = None,
    origin_index: torch.Tensor | np.ndarray | None = None,
    lo_occupied: float = LO_OCCUPIED,
    lo_free: float = LO_FREE,
    mode: str = "once",
    merge_endpoints: bool = True,
) -> torch.Tensor:
    """Log-odds occupancy of ``grid`` from rays ending at ``points``.

    points: (N, >=3) x, y, z in the grid's frame (extra columns ignored); origins: (M, 3) sensor positions in the
    same frame (default one origin at (0, 0, 0), the current LiDAR); origin_index: (N,) int, the origin of each
    point (default all 0). Returns (X, Y, Z) float32 log-odds on the points' device (see the module docstring for
    ``mode``, ``lo_occupied`` = log(0.7/0.3), ``lo_free`` = log(0.4/0.6) and ``merge_endpoints``)."""
    if mode not in RAYCAST_MODES:
        raise ConfigError(f"ray-cast mode must be one of {RAYCAST_MODES}, got {mode!r}")
    points = torch.as_tensor(points)
    device = points.device
    points = points[:, :3].to(torch.float64)
    origins = torch.zeros(1, 3) if origins is None else torch.as_tensor(origins)
    origins = origins.to(device=device, dtype=torch.float64).reshape(-1, 3)
    origin_index = (torch.zeros(len(points), dtype=torch.int64) if origin_index is None
                    else torch.as_tensor(origin_index)).to(device=device, dtype=torch.int64)
    if len(origin_index) != len(points) or (len(origin_index) and int(origin_index.max()) >= len(origins)):
        raise ConfigError(f"origin_index must hold one index below {len(origins)} per point ({len(points)})")
    ends, ray_origins, end_voxel, counts = _prepare(points, origins, origin_index, grid, merge_endpoints)

    def flat(v: torch.Tensor) -> torch.Tensor:
        return (v[:, 0] * grid.dims[1] + v[:, 1]) * grid.dims[2] + v[:, 2]

    n = grid.num_voxels
    passes = torch.zeros(n, dtype=torch.float64, device=device)
    for ray, crossed in traverse(ends, ray_origins, end_voxel, grid):
        passes.index_add_(0, flat(crossed), counts[ray])
    hits = torch.zeros(n, dtype=torch.float64, device=device).index_add_(0, flat(end_voxel), counts)
    if mode == "once":
        out = torch.where(hits > 0, lo_occupied, torch.where(passes > 0, lo_free, 0.0))
    else:
        out = hits * lo_occupied + passes * lo_free
    return out.float().view(grid.dims)
