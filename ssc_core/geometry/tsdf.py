"""A depth image on an NYU-style room grid: the flipped TSDF, the label weight and the voxel -> pixel mapping.

Grid convention (NYUv2 / SSCNet): the room frame is metric with z up; ``GridSpec.origin`` is the room-frame
position (x, y, z) of the corner of voxel (0, 0, 0), and the grid's index axes are (room x, room z, room y), so a
60 x 36 x 60 grid has its 36 voxels along the height. ``ROOM_AXES`` holds that permutation.

``depth_volume`` computes, from one depth image, what the 3D-Sketch / CleanerS files hold (``TSDF/*.npz`` arr_0 and
arr_1, ``Mapping/*.npz``). Our TSDF follows SSCNet's preprocessing, computed on sub-voxels (``subdivision``^3 per
voxel, 4 = the 0.02 m grid of the NYU labels) and averaged per voxel (the 3D-Sketch encoding of its 60 x 36 x 60
TSDF is not documented; this is our choice, see docs/synthetic.md):

- every pixel with depth is back-projected and marks its sub-voxel as surface;
- a sub-voxel whose centre projects (nearest pixel) onto a pixel with depth D at camera depth z is *in front*
  (z < D, observed free side, sign +1) or *behind* (sign -1); one outside the image, behind the camera or on a
  pixel without depth is *unseen*;
- raw value: 0 on surface sub-voxels, sign * min(1, d / margin) elsewhere with d the distance to the nearest
  surface sub-voxel centre (``truncated_distance``, exact up to the margin), -1 where unseen; flipped as SSCNet
  does: sign * max(0.001, 1 - |raw|) (surface 1, far in front 0.001, far behind or unseen -0.001).

label_weight is 1 on every voxel that is not observed free space (it holds a surface, behind or unseen sub-voxel:
the "non-free" mask of the SSCNet protocol), 0 elsewhere. The mapping gives each voxel the pixel whose
back-projected point lies in it nearest to its centre (ties: the smaller pixel index), H * W where no pixel does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ssc_core.errors import DataFormatError
from ssc_core.geometry.poses import invert_transform, transform_points
from ssc_core.geometry.projection import depth_to_points_cam
from ssc_core.types import GridSpec

ROOM_AXES = (0, 2, 1)  # grid index axis a holds room axis ROOM_AXES[a]: (x, z, y)
TSDF_MARGIN_M = 0.24  # SSCNet's truncation distance (vox_margin)
FLIP_FLOOR = 0.001  # the smallest magnitude of a flipped TSDF value
UNSEEN, FRONT, BEHIND = 0, 1, 2


def index_to_room(index_xyz: np.ndarray) -> np.ndarray:
    """(..., 3) vectors in grid index axes -> room axes (x, y, z) (the permutation ROOM_AXES inverted)."""
    index_xyz = np.asarray(index_xyz)
    return index_xyz[..., [0, 2, 1]]


def voxel_centers_room(grid: GridSpec, subdivision: int = 1) -> np.ndarray:
    """Room-frame centres (N, 3) float64 of the voxels of ``grid`` split ``subdivision`` times per axis, flat
    C order over ``dims * subdivision`` (grid index axes)."""
    step = grid.voxel_size / subdivision
    idx = np.indices(tuple(d * subdivision for d in grid.dims)).reshape(3, -1).T
    return np.asarray(grid.origin) + index_to_room((idx + 0.5) * step)


def room_points_to_voxels(points_room: np.ndarray, grid: GridSpec, subdivision: int = 1
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Flat voxel indices (N,) int64 of room-frame points (N, >=3) on ``grid`` (split ``subdivision`` times) and
    (N,) bool inside the volume; indices of outside points are meaningless."""
    pts = np.asarray(points_room, dtype=np.float64)[:, :3]
    dims = np.asarray(grid.dims) * subdivision
    rel = (pts - np.asarray(grid.origin))[:, list(ROOM_AXES)]
    finite = np.all(np.isfinite(rel), axis=1)
    idx = np.floor(np.where(finite[:, None], rel, 0.0) / (grid.voxel_size / subdivision)).astype(np.int64)
    inside = finite & np.all((idx >= 0) & (idx < dims), axis=1)
    flat = np.ravel_multi_index(tuple(np.clip(idx, 0, dims - 1).T), tuple(dims))
    return flat, inside


@dataclass
class DepthVolume:
    """What one depth image says about a grid (all arrays of ``grid.dims``): ``tsdf`` float32 flipped TSDF,
    ``label_weight`` float32 1 = not observed free, ``mapping`` int64 pixel index row * W + col (H * W = none),
    ``surface`` bool voxels holding a back-projected pixel."""

    tsdf: np.ndarray
    label_weight: np.ndarray
    mapping: np.ndarray
    surface: np.ndarray


def _check_inputs(depth_m: np.ndarray, K: np.ndarray, T_room_cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    depth = np.asarray(depth_m, dtype=np.float64)
    if depth.ndim != 2 or min(depth.shape) < 1:
        raise DataFormatError(f"depth must be an (H, W) image, got shape {depth.shape}")
    K = np.asarray(K, dtype=np.float64)
    T = np.asarray(T_room_cam, dtype=np.float64)
    if K.shape != (3, 3) or T.shape != (4, 4) or not (np.all(np.isfinite(K)) and np.all(np.isfinite(T))):
        raise DataFormatError(f"need a finite (3, 3) K and (4, 4) T_room_cam, got {K.shape} and {T.shape}")
    return np.where(np.isfinite(depth) & (depth > 0), depth, 0.0), T


def voxel_pixel_mapping(points_room: np.ndarray, pixel_index: np.ndarray, grid: GridSpec,
                        num_pixels: int) -> np.ndarray:
    """(dims) int64: for every voxel the pixel (from ``pixel_index`` (N,), one per room-frame point (N, 3)) whose
    point lies in it nearest to its centre (ties: smaller pixel index); ``num_pixels`` where none does."""
    flat, inside = room_points_to_voxels(points_room, grid)
    mapping = np.full(grid.num_voxels, num_pixels, dtype=np.int64)
    if inside.any():
        vox, pix, pts = flat[inside], np.asarray(pixel_index)[inside], np.asarray(points_room)[inside, :3]
        centers = np.asarray(grid.origin) + index_to_room(
            (np.stack(np.unravel_index(vox, grid.dims), axis=1) + 0.5) * grid.voxel_size)
        dist2 = np.sum((pts - centers) ** 2, axis=1)
        order = np.lexsort((pix, dist2, vox))
        first = order[np.unique(vox[order], return_index=True)[1]]
        mapping[vox[first]] = pix[first]
    return mapping.reshape(grid.dims)


def truncated_distance(cells: np.ndarray, radius: int) -> np.ndarray:
    """Euclidean distance, in cells, from every cell of a 3D bool array to the nearest True cell: exact where it
    is <= ``radius`` (a value > ``radius`` elsewhere). Three separable passes of a min-plus transform over offsets
    -radius..radius (exact within the radius because every axis offset of such a path is within it), in int16."""
    if radius < 1 or radius > 100:
        raise ValueError(f"radius must be in 1..100 cells, got {radius}")
    cap = np.int16(3 * (radius + 1) ** 2)
    dist2 = np.where(cells, np.int16(0), cap)
    for axis in range(cells.ndim):
        out = dist2.copy()
        n = cells.shape[axis]
        for off in range(1, min(radius, n - 1) + 1):
            lower, upper = [slice(None)] * cells.ndim, [slice(None)] * cells.ndim
            lower[axis], upper[axis] = slice(0, n - off), slice(off, n)
            lower, upper = tuple(lower), tuple(upper)
            np.minimum(out[lower], dist2[upper] + np.int16(off * off), out=out[lower])
            np.minimum(out[upper], dist2[lower] + np.int16(off * off), out=out[upper])
        dist2 = np.minimum(out, cap)
    return np.sqrt(dist2.astype(np.float32))


def _visibility(depth: np.ndarray, K: np.ndarray, T_cam_room: np.ndarray, grid: GridSpec, subdivision: int,
                chunk: int = 16) -> np.ndarray:
    """(dims * subdivision) uint8 UNSEEN / FRONT / BEHIND of every sub-voxel centre, in slabs along axis 0 so
    that no (N, 3) array of all sub-voxels is ever held."""
    dims = tuple(d * subdivision for d in grid.dims)
    step = grid.voxel_size / subdivision
    h, w = depth.shape
    R, t = T_cam_room[:3, :3], T_cam_room[:3, 3]
    # camera coordinates of a sub-voxel centre = base + sum over index axes of R[:, room axis] * offset
    base = R @ np.asarray(grid.origin) + t
    axes = [R[:, ROOM_AXES[a]][:, None] * ((np.arange(dims[a]) + 0.5) * step)[None] for a in range(3)]
    out = np.empty(dims, dtype=np.uint8)
    for start in range(0, dims[0], chunk):
        a0 = axes[0][:, start:start + chunk]
        cam = (base[:, None, None, None] + a0[:, :, None, None] + axes[1][:, None, :, None]
               + axes[2][:, None, None, :])
        z = cam[2]
        safe = np.where(z > 1e-6, z, 1.0)
        u = np.round(K[0, 0] * cam[0] / safe + K[0, 2]).astype(np.int64)
        v = np.round(K[1, 1] * cam[1] / safe + K[1, 2]).astype(np.int64)
        ok = (z > 1e-6) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
        d = np.where(ok, depth[np.clip(v, 0, h - 1), np.clip(u, 0, w - 1)], 0.0)
        seen = ok & (d > 0)
        out[start:start + chunk] = np.where(seen, np.where(z < d, FRONT, BEHIND), UNSEEN)
    return out


def depth_volume(depth_m: np.ndarray, K: np.ndarray, T_room_cam: np.ndarray, grid: GridSpec,
                 subdivision: int = 4, margin_m: float = TSDF_MARGIN_M) -> DepthVolume:
    """TSDF, label weight and mapping of one depth image (see the module docstring).

    depth_m: (H, W) metres along the optical axis, 0 or non-finite = no depth; K: (3, 3) intrinsics; T_room_cam:
    (4, 4) camera (x right, y down, z forward) -> room frame; grid: the room grid (NYU index order);
    subdivision: sub-voxels per voxel edge for the TSDF; margin_m: truncation distance.
    Raises DataFormatError for malformed inputs."""
    depth, T_room_cam = _check_inputs(depth_m, K, T_room_cam)
    if subdivision < 1 or margin_m <= 0:
        raise DataFormatError(f"subdivision must be >= 1 and margin_m > 0, got {subdivision}, {margin_m}")
    h, w = depth.shape
    pixel_index = np.flatnonzero(depth > 0)
    points_room = transform_points(T_room_cam, depth_to_points_cam(depth, K).astype(np.float64))
    mapping = voxel_pixel_mapping(points_room, pixel_index, grid, h * w)

    fine_dims = tuple(d * subdivision for d in grid.dims)
    flat, inside = room_points_to_voxels(points_room, grid, subdivision)
    surface_fine = np.zeros(int(np.prod(fine_dims)), dtype=bool)
    surface_fine[flat[inside]] = True
    surface_fine = surface_fine.reshape(fine_dims)
    status = _visibility(depth, np.asarray(K, dtype=np.float64), invert_transform(T_room_cam), grid, subdivision)

    step = grid.voxel_size / subdivision
    dist_m = truncated_distance(surface_fine, int(np.ceil(margin_m / step))) * np.float32(step)
    magnitude = np.minimum(np.float32(1.0), dist_m / np.float32(margin_m))
    raw = np.where(status == FRONT, magnitude, -magnitude)
    raw = np.where(status == UNSEEN, np.float32(-1.0), raw)
    raw = np.where(surface_fine, np.float32(0.0), raw)
    sign = np.where(raw < 0, np.float32(-1.0), np.float32(1.0))
    flipped = sign * np.maximum(np.float32(FLIP_FLOOR), np.float32(1.0) - np.abs(raw))

    def blocks(a: np.ndarray) -> np.ndarray:
        x, y, z = grid.dims
        s = subdivision
        return a.reshape(x, s, y, s, z, s).transpose(0, 2, 4, 1, 3, 5).reshape(x, y, z, s**3)

    tsdf = blocks(flipped).mean(axis=-1, dtype=np.float64).astype(np.float32)
    free = blocks((status == FRONT) & ~surface_fine).all(axis=-1)
    surface = blocks(surface_fine).any(axis=-1)
    return DepthVolume(tsdf=tsdf, label_weight=(~free).astype(np.float32), mapping=mapping, surface=surface)
