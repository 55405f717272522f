"""Casting a grid of rays (LiDAR beams x azimuths, or camera rows x columns) into the world.

Every solid is tested only against the rays in the grid window that its bounding sphere can reach, so the
Python loop runs over solids, never over rays; the ground (a height field under the street) is intersected
for all rays at once by a fixed-point iteration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ssc_core.data.synthetic.primitives import Primitives, intersect
from ssc_core.data.synthetic.street import Street

GROUND = -1
NOTHING = -2


class RayGrid:
    """Rays from one world ``origin`` (3,) along ``dirs`` (R, C, 3) (world frame, any length: the ray
    parameter t is in units of that length). Subclasses narrow each solid to a window of rows/cols."""

    def __init__(self, origin: np.ndarray, dirs: np.ndarray):
        self.origin = np.asarray(origin, dtype=np.float64)
        self.dirs = np.asarray(dirs, dtype=np.float64)

    @property
    def shape(self) -> tuple[int, int]:
        """(R, C) rows and columns of the grid."""
        return self.dirs.shape[:2]

    def window(self, center: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray] | None:
        """(rows, cols) index arrays of the rays that may hit a sphere (world centre, radius); None = none."""
        rows, cols = self.shape
        return np.arange(rows), np.arange(cols)


class LidarGrid(RayGrid):
    """A spinning LiDAR: ``elevations`` (R,) and ``azimuths`` (C,) in radians (azimuth k = k * step, evenly
    spaced over 360 deg) in the sensor frame; ``T_world_sensor`` (4, 4). Directions are unit vectors."""

    def __init__(self, T_world_sensor: np.ndarray, elevations: np.ndarray, azimuths: np.ndarray):
        self.elevations, self.azimuths = np.asarray(elevations), np.asarray(azimuths)
        el, az = np.meshgrid(self.elevations, self.azimuths, indexing="ij")
        dirs_sensor = np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], axis=-1)
        self.T_world_sensor = np.asarray(T_world_sensor, dtype=np.float64)
        self.dirs_sensor = dirs_sensor
        super().__init__(self.T_world_sensor[:3, 3], dirs_sensor @ self.T_world_sensor[:3, :3].T)
        self.step = 2 * np.pi / len(self.azimuths)

    def window(self, center: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray] | None:
        v = self.T_world_sensor[:3, :3].T @ (np.asarray(center) - self.origin)
        dist = float(np.linalg.norm(v))
        if dist <= radius * 1.01:
            return super().window(center, radius)
        half = np.arcsin(radius / dist) + 1e-3
        el_c = np.arctan2(v[2], np.hypot(v[0], v[1]))
        rows = np.nonzero(np.abs(self.elevations - el_c) <= half)[0]
        rho = float(np.hypot(v[0], v[1]))
        if rows.size == 0:
            return None
        if rho <= radius * 1.01:
            return rows, np.arange(len(self.azimuths))
        half_az = np.arcsin(radius / rho) + 1e-3
        az_c = np.arctan2(v[1], v[0])
        k0, k1 = int(np.floor((az_c - half_az) / self.step)), int(np.ceil((az_c + half_az) / self.step))
        cols = np.unique(np.arange(k0, k1 + 1) % len(self.azimuths))
        return rows, cols


class CameraGrid(RayGrid):
    """A rectified pinhole camera: pixel (u, v) looks along R @ K^-1 [u, v, 1] from the centre of projection
    of ``P`` (3, 4), expressed in the frame of ``T_world_cam0`` (4, 4, rectified camera 0). The ray parameter
    t is the depth z in the camera frame."""

    def __init__(self, T_world_cam0: np.ndarray, P: np.ndarray, image_size: tuple[int, int]):
        w, h = image_size
        self.K = np.asarray(P, dtype=np.float64)[:, :3]
        K_inv = np.linalg.inv(self.K)
        centre_cam0 = -K_inv @ np.asarray(P, dtype=np.float64)[:, 3]
        v, u = np.mgrid[0:h, 0:w].astype(np.float64)
        dirs_cam = np.stack([u, v, np.ones_like(u)], axis=-1) @ K_inv.T
        self.R = np.asarray(T_world_cam0, dtype=np.float64)[:3, :3]
        origin = T_world_cam0[:3, :3] @ centre_cam0 + T_world_cam0[:3, 3]
        self.image_size = (w, h)
        super().__init__(origin, dirs_cam @ self.R.T)

    def window(self, center: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray] | None:
        c = self.R.T @ (np.asarray(center) - self.origin)
        if c[2] + radius <= 0.05:
            return None
        if c[2] - radius <= 0.05:
            return super().window(center, radius)
        w, h = self.image_size
        zs = np.array([c[2] - radius, c[2] + radius])
        us = self.K[0, 0] * np.array([c[0] - radius, c[0] + radius])[:, None] / zs[None] + self.K[0, 2]
        vs = self.K[1, 1] * np.array([c[1] - radius, c[1] + radius])[:, None] / zs[None] + self.K[1, 2]
        u0, u1 = max(int(np.floor(us.min())), 0), min(int(np.ceil(us.max())), w - 1)
        v0, v1 = max(int(np.floor(vs.min())), 0), min(int(np.ceil(vs.max())), h - 1)
        if u0 > u1 or v0 > v1:
            return None
        return np.arange(v0, v1 + 1), np.arange(u0, u1 + 1)


@dataclass
class Hits:
    """What each ray of an (R, C) grid hit: t (R, C) ray parameter (inf = nothing), solid index (R, C)
    int32 (GROUND / NOTHING otherwise), normal (R, C, 3) world unit normal, point (R, C, 3) world hit point,
    semantic / instance (R, C) uint16, color (R, C, 3) float32 albedo (white on painted road lines),
    reflectance (R, C) float32."""

    t: np.ndarray
    solid: np.ndarray
    normal: np.ndarray
    point: np.ndarray
    semantic: np.ndarray
    instance: np.ndarray
    color: np.ndarray
    reflectance: np.ndarray


def intersect_ground(street: Street, origin: np.ndarray, dirs: np.ndarray, max_t: float) -> np.ndarray:
    """(N,) ray parameter where rays (dirs (N, 3) world) from ``origin`` meet the ground height field
    (inf where they do not within ``max_t``)."""
    t = np.full(len(dirs), np.inf)
    down = dirs[:, 2] < -1e-9
    d = dirs[down]
    _, _, h = street.locate(origin[None, :2])
    tk = (h[0] - origin[2]) / d[:, 2]
    for _ in range(0 if street.flat else 4):
        xy = origin[:2] + np.minimum(tk, max_t * 2)[:, None] * d[:, :2]
        _, _, h = street.locate(xy)
        tk = (h - origin[2]) / d[:, 2]
    xy = origin[:2] + tk[:, None] * d[:, :2]
    _, _, h = street.locate(xy)
    z = origin[2] + tk * d[:, 2]
    ok = (tk > 0) & (tk <= max_t) & (np.abs(z - h) < 0.02)
    t[np.nonzero(down)[0][ok]] = tk[ok]
    return t


def cast_solids(grid: RayGrid, prims: Primitives, max_t: float, t: np.ndarray | None = None,
                solid: np.ndarray | None = None, normal: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest hit of every ray of ``grid`` among ``prims`` within ray parameter ``max_t``, starting from earlier
    hits (``t`` (R, C), ``solid`` (R, C) int32, ``normal`` (R, C, 3); None = nothing hit yet). Returns the updated
    (t, solid, normal): t inf and solid NOTHING where no hit."""
    rows, cols = grid.shape
    t = np.full((rows, cols), np.inf) if t is None else t
    solid = np.full((rows, cols), NOTHING, np.int32) if solid is None else solid
    normal = np.zeros((rows, cols, 3)) if normal is None else normal
    dirs = grid.dirs.reshape(-1, 3)
    radius = prims.bounding_radius
    reach = np.linalg.norm(prims.center - grid.origin, axis=1) - radius
    for i in np.nonzero(reach < max_t * float(np.max(np.linalg.norm(dirs, axis=1))))[0]:
        win = grid.window(prims.center[i], float(radius[i]))
        if win is None:
            continue
        r_idx, c_idx = np.ix_(*win)
        sub_dirs = grid.dirs[r_idx, c_idx].reshape(-1, 3)
        ti, ni = intersect(prims, int(i), grid.origin, sub_dirs)
        shape = (len(win[0]), len(win[1]))
        ti, ni = ti.reshape(shape), ni.reshape(*shape, 3)
        closer = (ti < t[r_idx, c_idx]) & (ti <= max_t)
        if not closer.any():
            continue
        t[r_idx, c_idx] = np.where(closer, ti, t[r_idx, c_idx])
        solid[r_idx, c_idx] = np.where(closer, i, solid[r_idx, c_idx])
        normal[r_idx, c_idx] = np.where(closer[..., None], ni, normal[r_idx, c_idx])
    return t, solid, normal


def cast(grid: RayGrid, street: Street, prims: Primitives, max_t: float, ground_colors: dict,
         ground_reflectance: dict) -> Hits:
    """Nearest hit of every ray of ``grid`` among the ground and ``prims``, within ray parameter ``max_t``."""
    rows, cols = grid.shape
    t = intersect_ground(street, grid.origin, grid.dirs.reshape(-1, 3), max_t).reshape(rows, cols)
    solid = np.where(np.isfinite(t), GROUND, NOTHING).astype(np.int32)
    normal = np.zeros((rows, cols, 3))
    normal[..., 2] = 1.0
    t, solid, normal = cast_solids(grid, prims, max_t, t, solid, normal)
    return _shade_inputs(grid, street, prims, t, solid, normal, ground_colors, ground_reflectance)


def _shade_inputs(grid: RayGrid, street: Street, prims: Primitives, t: np.ndarray, solid: np.ndarray,
                  normal: np.ndarray, ground_colors: dict, ground_reflectance: dict) -> Hits:
    rows, cols = solid.shape
    finite_t = np.where(np.isfinite(t), t, 0.0)
    point = grid.origin + finite_t[..., None] * grid.dirs
    semantic = np.zeros((rows, cols), np.uint16)
    instance = np.zeros((rows, cols), np.uint16)
    color = np.zeros((rows, cols, 3), np.float32)
    reflectance = np.zeros((rows, cols), np.float32)
    is_solid = solid >= 0
    idx = solid[is_solid]
    semantic[is_solid], instance[is_solid] = prims.semantic[idx], prims.instance[idx]
    color[is_solid], reflectance[is_solid] = prims.color[idx], prims.reflectance[idx]
    is_ground = solid == GROUND
    if is_ground.any():
        s, d, _ = street.locate(point[is_ground][:, :2])
        cls = street.ground_class(s, d)
        semantic[is_ground] = cls
        lut_c = np.zeros((256, 3), np.float32)
        lut_r = np.zeros(256, np.float32)
        for k, v in ground_colors.items():
            lut_c[k] = v
            lut_r[k] = ground_reflectance[k]
        paint = street.lane_marking(s, d) & (cls == 40)
        color[is_ground] = np.where(paint[:, None], 0.9, lut_c[cls])
        reflectance[is_ground] = np.where(paint, 0.7, lut_r[cls])
    return Hits(t, solid, normal, point, semantic, instance, color, reflectance)
