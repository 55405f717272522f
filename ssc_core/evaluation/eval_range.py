"""Short-range evaluation: the ``eval_range`` protocol of SGN / VoxFormer / HASSC (scores within 25.6 m or 12.8 m).

With range R, a voxel is scored only when its centre lies less than R ahead (x_velo < R) and less than R / 2 to
either side (|y_velo| < R / 2). On the SemanticKITTI / KITTI-360 grid this keeps exactly the voxels the reference
code keeps: x index < 128 and 64 <= y index < 192 for 25.6 m, x < 64 and 96 <= y < 160 for 12.8 m; 51.2 m keeps
every voxel (the standard protocol). Scores at a short range carry the range in their names (``miou_25.6m``).
"""

from __future__ import annotations

import numpy as np

from ssc_core.errors import ConfigError
from ssc_core.types import GridSpec

EVAL_RANGES = (51.2, 25.6, 12.8)
FULL_RANGE = 51.2


def check_eval_range(eval_range: float, what: str = "eval range") -> float:
    """``eval_range`` as a float when it is one of EVAL_RANGES; ConfigError naming ``what`` otherwise."""
    if isinstance(eval_range, bool) or not isinstance(eval_range, int | float) or float(eval_range) not in EVAL_RANGES:
        raise ConfigError(f"{what} must be one of {list(EVAL_RANGES)} (metres), got {eval_range!r}")
    return float(eval_range)


def eval_range_mask(grid: GridSpec, eval_range: float) -> np.ndarray:
    """(X, Y, Z) bool: True where a voxel of ``grid`` (in the LiDAR frame) counts at ``eval_range`` metres."""
    size = grid.voxel_size
    x = grid.origin[0] + (np.arange(grid.dims[0]) + 0.5) * size
    y = grid.origin[1] + (np.arange(grid.dims[1]) + 0.5) * size
    plane = (x < eval_range)[:, None] & (np.abs(y) < eval_range / 2)[None, :]
    return np.broadcast_to(plane[:, :, None], tuple(grid.dims)).copy()


def benchmark_grid(dims: tuple[int, int, int]) -> GridSpec:
    """The SemanticKITTI / KITTI-360 volume (51.2 x 51.2 x 6.4 m from (0, -25.6, -2)) split into ``dims`` voxels:
    the grid of label files, whose resolution ssc-eval knows only from their size."""
    return GridSpec(dims=tuple(dims), voxel_size=FULL_RANGE / dims[0], origin=(0.0, -25.6, -2.0))


def range_suffix(eval_range: float) -> str:
    """'' for the full range, else '_<R>m' (e.g. '_25.6m'): appended to score names at a short range."""
    return "" if float(eval_range) == FULL_RANGE else f"_{float(eval_range):g}m"
