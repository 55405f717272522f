"""Voxel labels made the way the SemanticKITTI voxelizer made them: aggregate the current and following
scans into the current LiDAR frame, majority-vote each voxel's label, mark voxels that no aggregated sensor
position can see as ``.invalid`` and voxels hidden from the current position as ``.occluded``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ssc_core.geometry.poses import invert_transform, transform_points
from ssc_core.geometry.voxelize import majority_vote_labels, occupancy_from_points
from ssc_core.types import GridSpec


@dataclass
class VoxelLabels:
    """The four voxel files of one labelled frame, each (X, Y, Z): label uint16 raw ids, bin / invalid /
    occluded uint8 0/1."""

    label: np.ndarray
    bin: np.ndarray
    invalid: np.ndarray
    occluded: np.ndarray


def range_filter(points: np.ndarray, min_range: float, max_range: float) -> np.ndarray:
    """(N,) bool: points (N, >=3, in their own sensor frame) within [min_range, max_range] of the sensor."""
    r = np.linalg.norm(np.asarray(points)[:, :3], axis=1)
    return (r >= min_range) & (r <= max_range)


def visibility(origin: np.ndarray, occupied: np.ndarray, grid: GridSpec, res_deg: float,
               candidates: np.ndarray) -> np.ndarray:
    """Which ``candidates`` (M,) flat voxel indices are visible from ``origin`` (3,) (grid frame): no
    occupied voxel of ``occupied`` (X, Y, Z) lies in front of the voxel centre along the line of sight.

    Every occupied voxel is splatted over the whole angular box spanned by its 8 corners into a spherical
    depth buffer (``res_deg`` bins) holding its nearest corner distance; a candidate is visible when its
    centre is closer than the buffer in its bin. Returns (M,) bool."""
    n_az, n_el = int(round(360.0 / res_deg)), int(round(180.0 / res_deg))
    res = np.deg2rad(res_deg)
    occ_idx = np.argwhere(occupied)
    origin = np.asarray(origin, dtype=np.float64)
    vs = grid.voxel_size
    lo = np.asarray(grid.origin) + occ_idx * vs - origin
    corners = lo[:, None, :] + vs * np.array([[i & 1, (i >> 1) & 1, (i >> 2) & 1] for i in range(8)])[None]
    centre = lo + vs / 2
    dist_c = np.linalg.norm(centre, axis=1)
    keep = dist_c > vs
    corners, centre = corners[keep], centre[keep]
    r_min = np.linalg.norm(corners, axis=2).min(axis=1)
    az_c = np.arctan2(centre[:, 1], centre[:, 0])
    az = np.arctan2(corners[..., 1], corners[..., 0])
    d_az = np.mod(az - az_c[:, None] + np.pi, 2 * np.pi) - np.pi
    el = np.arctan2(corners[..., 2], np.hypot(corners[..., 0], corners[..., 1]))
    a0 = np.floor((az_c + d_az.min(axis=1) + np.pi) / res).astype(np.int64)
    a1 = np.floor((az_c + d_az.max(axis=1) + np.pi) / res).astype(np.int64)
    over_axis = (corners[..., 0].min(axis=1) <= 0) & (corners[..., 0].max(axis=1) >= 0) & \
        (corners[..., 1].min(axis=1) <= 0) & (corners[..., 1].max(axis=1) >= 0)
    a0 = np.where(over_axis, 0, a0)
    a1 = np.where(over_axis, n_az - 1, a1)
    e0 = np.clip(np.floor((el.min(axis=1) + np.pi / 2) / res).astype(np.int64), 0, n_el - 1)
    e1 = np.clip(np.floor((el.max(axis=1) + np.pi / 2) / res).astype(np.int64), 0, n_el - 1)
    na, ne = a1 - a0 + 1, e1 - e0 + 1
    cells = na * ne
    depth = np.full(n_az * n_el, np.inf)
    if cells.size:
        owner = np.repeat(np.arange(len(cells)), cells)
        k = np.arange(int(cells.sum())) - np.repeat(np.cumsum(cells) - cells, cells)
        a = np.mod(a0[owner] + k % na[owner], n_az)
        e = e0[owner] + k // na[owner]
        np.minimum.at(depth, e * n_az + a, r_min[owner])
    ix, iy, iz = np.unravel_index(candidates, grid.dims)
    offset = np.asarray(grid.origin) + 0.5 * vs - origin
    cx, cy, cz = ((i * vs + o).astype(np.float32) for i, o in zip((ix, iy, iz), offset, strict=True))
    rho = np.sqrt(cx * cx + cy * cy)
    dist = np.sqrt(rho * rho + cz * cz)
    ca = np.floor((np.arctan2(cy, cx) + np.float32(np.pi)) / np.float32(res)).astype(np.int64) % n_az
    ce = np.clip(np.floor((np.arctan2(cz, rho) + np.float32(np.pi / 2)) / np.float32(res)).astype(np.int64),
                 0, n_el - 1)
    return dist < depth[ce * n_az + ca]


def make_voxel_labels(scans_velo: list[np.ndarray], labels: list[np.ndarray], T_world_velo: list[np.ndarray],
                      grid: GridSpec, min_range: float, max_range: float, origin_stride: int,
                      res_deg: float) -> VoxelLabels:
    """Voxel files of the first scan of a window.

    scans_velo: per scan (N_i, >=3) points in its own LiDAR frame, the current scan first, then the following
    ones; labels: per scan (N_i,) raw semantic ids; T_world_velo: per scan (4, 4) pose. Points outside
    [min_range, max_range] are dropped (as the voxelizer does). ``.invalid`` uses every ``origin_stride``-th
    sensor position (the current one always); ``.occluded`` uses the current one."""
    T_cur_world = invert_transform(T_world_velo[0])
    pts_cur, lab_cur, origins = [], [], []
    for points, sem, T_w_v in zip(scans_velo, labels, T_world_velo, strict=True):
        keep = range_filter(points, min_range, max_range)
        T_cur_v = T_cur_world @ T_w_v
        pts_cur.append(transform_points(T_cur_v, np.asarray(points)[keep, :3].astype(np.float64)))
        lab_cur.append(np.asarray(sem)[keep])
        origins.append(T_cur_v[:3, 3])
    label = majority_vote_labels(np.concatenate(pts_cur), np.concatenate(lab_cur), grid)
    first = range_filter(scans_velo[0], min_range, max_range)
    single = occupancy_from_points(np.asarray(scans_velo[0])[first], grid)
    occupied = label > 0
    free = np.flatnonzero(~occupied)
    visible_now = visibility(origins[0], occupied, grid, res_deg, free)
    remaining = free[~visible_now]
    for origin in origins[origin_stride::origin_stride]:
        if remaining.size == 0:
            break
        remaining = remaining[~visibility(origin, occupied, grid, res_deg, remaining)]
    invalid = np.zeros(grid.num_voxels, dtype=np.uint8)
    invalid[remaining] = 1
    occluded = np.zeros(grid.num_voxels, dtype=np.uint8)
    occluded[free[~visible_now]] = 1
    return VoxelLabels(label, single, invalid.reshape(grid.dims), occluded.reshape(grid.dims))


def traversed_by_rays(points: np.ndarray, origins: np.ndarray, grid: GridSpec, chunk: int = 100_000) -> np.ndarray:
    """(X, Y, Z) bool: voxels crossed by the segments from ``origins`` (N, 3) to ``points`` (N, 3), both in
    the grid frame, sampled every 0.9 voxel along the part of each segment inside the volume."""
    lo, hi = np.asarray(grid.origin), grid.max_bound
    out = np.zeros(grid.num_voxels, dtype=bool)
    step = 0.9 * grid.voxel_size
    for start in range(0, len(points), chunk):
        o = np.asarray(origins[start:start + chunk], dtype=np.float64)
        d = np.asarray(points[start:start + chunk], dtype=np.float64) - o
        safe = np.where(np.abs(d) < 1e-12, 1e-12, d)
        t1, t2 = (lo - o) / safe, (hi - o) / safe
        t_in = np.clip(np.minimum(t1, t2).max(axis=1), 0.0, 1.0)
        t_out = np.clip(np.maximum(t1, t2).min(axis=1), 0.0, 1.0)
        length = np.linalg.norm(d, axis=1) * (t_out - t_in)
        n = np.where(t_out > t_in, np.ceil(length / step).astype(np.int64), 0)
        if n.sum() == 0:
            continue
        ray = np.repeat(np.arange(len(n)), n)
        k = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
        t = t_in[ray] + (k + 0.5) / n[ray] * (t_out[ray] - t_in[ray])
        samples = o[ray] + t[:, None] * d[ray]
        idx, inside = grid.points_to_indices(samples)
        out[np.ravel_multi_index(tuple(idx[inside].T), grid.dims)] = True
    return out.reshape(grid.dims)
