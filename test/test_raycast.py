"""Ray-cast log-odds occupancy: the vectorised traversal equals a scalar Amanatides-Woo loop ray by ray, the two
log-odds modes combine hits and passes as documented, and merged end points keep the hit voxels exact."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ssc_core.errors import ConfigError
from ssc_core.geometry.raycast import LO_FREE, LO_OCCUPIED, raycast_logodds, traverse
from ssc_core.types import GridSpec

GRID = GridSpec(dims=(12, 10, 6), voxel_size=0.5, origin=(0.0, -2.5, -1.0))


def scalar_traversal(origin, end, grid):
    """Voxels crossed from where the segment enters the grid to (not including) the end voxel, one ray at a time:
    the textbook loop (step along the axis with the smallest t_max until the end voxel is reached)."""
    lower = np.array(grid.origin)
    upper = lower + np.array(grid.dims) * grid.voxel_size
    d = end - origin
    t_enter = 0.0
    for a in range(3):
        if d[a] != 0:
            t0, t1 = (lower[a] - origin[a]) / d[a], (upper[a] - origin[a]) / d[a]
            t_enter = max(t_enter, min(t0, t1))
    start = origin + t_enter * d
    cur = np.minimum(np.maximum(np.floor((start - lower) / grid.voxel_size).astype(int), 0), np.array(grid.dims) - 1)
    last = np.floor((end - lower) / grid.voxel_size).astype(int)
    step = np.where(d > 0, 1, -1)
    t_max = np.array([((lower[a] + (cur[a] + (step[a] > 0)) * grid.voxel_size) - origin[a]) / d[a] if d[a] else math.inf
                      for a in range(3)])
    t_delta = np.array([grid.voxel_size / abs(d[a]) if d[a] else math.inf for a in range(3)])
    out = []
    while not np.array_equal(cur, last):
        out.append(tuple(cur))
        a = int(np.argmin(t_max))
        cur[a] += step[a]
        t_max[a] += t_delta[a]
    return out


def test_vectorised_traversal_equals_a_scalar_loop_for_every_ray():
    rng = np.random.default_rng(0)
    lower = np.array(GRID.origin)
    upper = lower + np.array(GRID.dims) * GRID.voxel_size
    ends = rng.uniform(lower, upper, size=(300, 3))
    origins = np.vstack([rng.uniform(lower, upper, size=(150, 3)),                 # inside the grid
                         rng.uniform(lower - 4.0, upper + 4.0, size=(150, 3))])    # mostly outside
    end_voxel = np.floor((ends - lower) / GRID.voxel_size).astype(np.int64)
    got: dict[int, list] = {r: [] for r in range(len(ends))}
    for rays, voxels in traverse(torch.from_numpy(ends), torch.from_numpy(origins), torch.from_numpy(end_voxel), GRID):
        for r, v in zip(rays.tolist(), voxels.tolist()):
            got[r].append(tuple(v))
    for r in range(len(ends)):
        assert got[r] == scalar_traversal(origins[r], ends[r], GRID), r
    assert sum(map(len, got.values())) > 1000  # the rays are long enough to mean something


def test_once_mode_marks_end_voxels_occupied_and_crossed_voxels_free():
    # Two rays from the origin (0, 0, 0) along +x: one ends at x = 2.2 (voxel 4), one at x = 5.1 (voxel 10).
    points = torch.tensor([[2.2, 0.1, 0.1], [5.1, 0.1, 0.1]])
    logodds = raycast_logodds(points, GRID)
    row = logodds[:, 5, 2]  # y = 0.1 -> 5, z = 0.1 -> 2
    assert row[4] == pytest.approx(LO_OCCUPIED) and row[10] == pytest.approx(LO_OCCUPIED)
    assert torch.allclose(row[[0, 1, 2, 3, 5, 6, 7, 8, 9]], torch.tensor(LO_FREE))
    assert row[11] == 0  # beyond every end point: unknown
    assert int((logodds != 0).sum()) == 11  # nothing off the ray's row is touched


def test_accumulate_mode_counts_every_ray():
    # Three rays end in voxel 4 and one passes through it to voxel 10.
    points = torch.tensor([[2.2, 0.1, 0.1], [2.3, 0.1, 0.1], [2.4, 0.2, 0.2], [5.1, 0.1, 0.1]])
    for merge in (True, False):
        logodds = raycast_logodds(points, GRID, mode="accumulate", merge_endpoints=merge)
        row = logodds[:, 5, 2]
        assert row[4] == pytest.approx(3 * LO_OCCUPIED + LO_FREE)
        assert row[2] == pytest.approx(4 * LO_FREE)
        assert row[7] == pytest.approx(LO_FREE)
        assert row[10] == pytest.approx(LO_OCCUPIED)


def test_points_outside_the_grid_and_per_frame_origins():
    points = torch.tensor([[2.2, 0.1, 0.1], [40.0, 0.0, 0.0], [float("nan"), 0.0, 0.0], [1.2, 0.1, 0.1]])
    origins = torch.tensor([[0.0, 0.0, 0.0], [-3.0, 0.1, 0.1]])  # the second sensor sits 3 m behind the grid
    logodds = raycast_logodds(points, GRID, origins=origins, origin_index=torch.tensor([0, 0, 0, 1]))
    row = logodds[:, 5, 2]
    assert row[4] == pytest.approx(LO_OCCUPIED) and row[2] == pytest.approx(LO_OCCUPIED)
    assert int((logodds > 0).sum()) == 2  # the far and the NaN point are not cast
    assert row[0] == pytest.approx(LO_FREE) and row[3] == pytest.approx(LO_FREE)


def test_hit_voxels_equal_the_voxelised_points_in_once_mode_with_or_without_merging():
    rng = np.random.default_rng(1)
    lower = np.array(GRID.origin)
    points = rng.uniform(lower, lower + np.array(GRID.dims) * GRID.voxel_size, size=(400, 3))
    expected = np.zeros(GRID.dims, dtype=bool)
    expected[tuple(np.floor((points - lower) / GRID.voxel_size).astype(int).T)] = True
    for merge in (True, False):
        occupied = (raycast_logodds(points, GRID, merge_endpoints=merge) > 0).numpy()
        np.testing.assert_array_equal(occupied, expected)


def test_bad_arguments_raise_config_errors():
    with pytest.raises(ConfigError, match="mode"):
        raycast_logodds(torch.zeros(1, 3), GRID, mode="max")
    with pytest.raises(ConfigError, match="origin_index"):
        raycast_logodds(torch.zeros(2, 3), GRID, origin_index=torch.tensor([0, 1]))
