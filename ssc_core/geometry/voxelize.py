"""Voxelization of points onto a GridSpec."""

from __future__ import annotations

import numpy as np

from ssc_core.types import GridSpec


def occupancy_from_points(points: np.ndarray, grid: GridSpec) -> np.ndarray:
    """(N, >=3) points in the grid frame -> (X, Y, Z) uint8 0/1 occupancy."""
    idx, inside = grid.points_to_indices(points)
    occ = np.zeros(grid.dims, dtype=np.uint8)
    occ[tuple(idx[inside].T)] = 1
    return occ


def majority_vote_labels(points: np.ndarray, labels: np.ndarray, grid: GridSpec) -> np.ndarray:
    """Majority label per voxel, like the SemanticKITTI voxelizer (ties -> smallest id, 0 where no point).
    Takes (N, >=3) points in the grid frame and (N,) non-negative integer labels; returns (X, Y, Z) uint16."""
    idx, inside = grid.points_to_indices(points)
    labels = np.asarray(labels).astype(np.int64)[inside]
    out = np.zeros(grid.dims, dtype=np.uint16)
    if labels.size == 0:
        return out
    flat = np.ravel_multi_index(tuple(idx[inside].T), grid.dims)
    uniq_labels, label_code = np.unique(labels, return_inverse=True)
    # Sort by (voxel, label) and count runs; the first max per voxel is the smallest label (stable ordering).
    key = flat * len(uniq_labels) + label_code
    keys, counts = np.unique(key, return_counts=True)
    voxels = keys // len(uniq_labels)
    codes = keys % len(uniq_labels)
    order = np.lexsort((codes, -counts, voxels))
    voxels, codes = voxels[order], codes[order]
    first = np.ones(len(voxels), dtype=bool)
    first[1:] = voxels[1:] != voxels[:-1]
    out.ravel()[voxels[first]] = uniq_labels[codes[first]].astype(np.uint16)
    return out
