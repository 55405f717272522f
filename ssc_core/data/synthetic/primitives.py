"""Analytic solids of the synthetic world and their vectorised ray intersection.

Three kinds, all with a yaw about the vertical axis: oriented boxes (``size`` = half extents), vertical
cylinders (``size`` = (radius, radius, half height)) and ellipsoids (``size`` = radii). ``center`` is the
centre of the solid in the world frame (z up).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

BOX, CYLINDER, ELLIPSOID = 0, 1, 2
_EPS = 1e-6


@dataclass
class Primitives:
    """A table of n solids: kind (n,) int8, center (n, 3), size (n, 3), yaw (n,), semantic (n,) uint16 raw
    SemanticKITTI id, instance (n,) uint16, color (n, 3) float32 RGB albedo in [0, 1], reflectance (n,)
    float32 LiDAR remission."""

    kind: np.ndarray
    center: np.ndarray
    size: np.ndarray
    yaw: np.ndarray
    semantic: np.ndarray
    instance: np.ndarray
    color: np.ndarray
    reflectance: np.ndarray

    @classmethod
    def from_rows(cls, rows: list[tuple]) -> Primitives:
        """Build from rows (kind, center(3), size(3), yaw, semantic, instance, color(3), reflectance)."""
        cols = list(zip(*rows, strict=True)) if rows else [[]] * 8
        return cls(
            kind=np.asarray(cols[0], dtype=np.int8),
            center=np.asarray(cols[1], dtype=np.float64).reshape(-1, 3),
            size=np.asarray(cols[2], dtype=np.float64).reshape(-1, 3),
            yaw=np.asarray(cols[3], dtype=np.float64),
            semantic=np.asarray(cols[4], dtype=np.uint16),
            instance=np.asarray(cols[5], dtype=np.uint16),
            color=np.asarray(cols[6], dtype=np.float32).reshape(-1, 3),
            reflectance=np.asarray(cols[7], dtype=np.float32),
        )

    def __len__(self) -> int:
        return len(self.kind)

    def concat(self, other: Primitives) -> Primitives:
        """Both tables, self first."""
        return Primitives(**{f.name: np.concatenate([getattr(self, f.name), getattr(other, f.name)])
                             for f in fields(self)})

    @property
    def bounding_radius(self) -> np.ndarray:
        """(n,) radius of a sphere around ``center`` that holds each solid."""
        box = np.linalg.norm(self.size, axis=1)
        cyl = np.hypot(self.size[:, 0], self.size[:, 2])
        ell = self.size.max(axis=1)
        return np.select([self.kind == BOX, self.kind == CYLINDER], [box, cyl], ell)


def _rotate_z(vectors: np.ndarray, yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    out = vectors.copy()
    out[:, 0] = c * vectors[:, 0] - s * vectors[:, 1]
    out[:, 1] = s * vectors[:, 0] + c * vectors[:, 1]
    return out


def _box(p: np.ndarray, q: np.ndarray, half: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    safe = np.where(np.abs(q) < 1e-12, 1e-12, q)
    t1, t2 = (-half - p) / safe, (half - p) / safe
    t_lo = np.minimum(t1, t2)
    axis = np.argmax(t_lo, axis=1)
    t_near = t_lo[np.arange(len(p)), axis]
    t_far = np.maximum(t1, t2).min(axis=1)
    hit = (t_far >= t_near) & (t_near > _EPS)
    normal = np.zeros_like(p)
    normal[np.arange(len(p)), axis] = -np.sign(q[np.arange(len(p)), axis])
    return np.where(hit, t_near, np.inf), normal


def _cylinder(p: np.ndarray, q: np.ndarray, radius: float, half_h: float) -> tuple[np.ndarray, np.ndarray]:
    a = q[:, 0] ** 2 + q[:, 1] ** 2
    b = 2.0 * (p[:, 0] * q[:, 0] + p[:, 1] * q[:, 1])
    c = p[:, 0] ** 2 + p[:, 1] ** 2 - radius**2
    disc = b * b - 4 * a * c
    with np.errstate(invalid="ignore", divide="ignore"):
        t_side = (-b - np.sqrt(disc)) / (2 * a)
    z_side = p[:, 2] + t_side * q[:, 2]
    side_ok = (disc >= 0) & (a > 1e-12) & (t_side > _EPS) & (np.abs(z_side) <= half_h)
    t_side = np.where(side_ok, t_side, np.inf)
    qz = np.where(np.abs(q[:, 2]) < 1e-12, 1e-12, q[:, 2])
    cap_z = np.where(p[:, 2] > 0, half_h, -half_h)
    t_cap = (cap_z - p[:, 2]) / qz
    xy = p[:, :2] + t_cap[:, None] * q[:, :2]
    cap_ok = (t_cap > _EPS) & (np.einsum("ij,ij->i", xy, xy) <= radius**2)
    t_cap = np.where(cap_ok, t_cap, np.inf)
    use_cap = t_cap < t_side
    t = np.minimum(t_side, t_cap)
    normal = np.zeros_like(p)
    hit_xy = p[:, :2] + np.where(np.isfinite(t_side), t_side, 0.0)[:, None] * q[:, :2]
    normal[:, :2] = hit_xy / radius
    normal[use_cap] = 0.0
    normal[use_cap, 2] = np.sign(cap_z[use_cap])
    return t, normal


def _ellipsoid(p: np.ndarray, q: np.ndarray, radii: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ps, qs = p / radii, q / radii
    a = np.einsum("ij,ij->i", qs, qs)
    b = 2.0 * np.einsum("ij,ij->i", ps, qs)
    c = np.einsum("ij,ij->i", ps, ps) - 1.0
    disc = b * b - 4 * a * c
    with np.errstate(invalid="ignore"):
        t = (-b - np.sqrt(disc)) / (2 * a)
    hit = (disc >= 0) & (t > _EPS)
    t = np.where(hit, t, np.inf)
    local = p + np.where(hit, t, 0.0)[:, None] * q
    normal = local / radii**2
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-12)
    return t, normal


def intersect(prims: Primitives, index: int, origins: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Intersect rays (origins (N, 3) or (3,), dirs (N, 3), any length) with solid ``index``.
    Returns (t (N,) ray parameter of the entry point, inf on a miss; normal (N, 3) outward unit normal, world)."""
    yaw = float(prims.yaw[index])
    p = _rotate_z(np.broadcast_to(origins - prims.center[index], dirs.shape).copy(), -yaw)
    q = _rotate_z(dirs, -yaw)
    size = prims.size[index]
    kind = prims.kind[index]
    if kind == BOX:
        t, normal = _box(p, q, size)
    elif kind == CYLINDER:
        t, normal = _cylinder(p, q, float(size[0]), float(size[2]))
    else:
        t, normal = _ellipsoid(p, q, size)
    return t, _rotate_z(normal, yaw)


def contains(prims: Primitives, index: int, points: np.ndarray, grow: float = 0.0) -> np.ndarray:
    """(N,) bool: which world points (N, 3) lie inside (or on) solid ``index`` grown by ``grow`` metres on every
    side (box half extents, cylinder radius and half height, ellipsoid radii)."""
    local = _rotate_z(np.asarray(points, dtype=np.float64) - prims.center[index], -float(prims.yaw[index]))
    size = prims.size[index] + grow
    kind = prims.kind[index]
    if kind == BOX:
        return np.all(np.abs(local) <= size, axis=1)
    if kind == CYLINDER:
        return (local[:, 0] ** 2 + local[:, 1] ** 2 <= size[0] ** 2) & (np.abs(local[:, 2]) <= size[2])
    return np.sum((local / size) ** 2, axis=1) <= 1.0


def bounding_boxes(prims: Primitives, grow: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned world bounds of every solid grown by ``grow`` metres: ((n, 3) lower, (n, 3) upper) corners."""
    c, s = np.abs(np.cos(prims.yaw)), np.abs(np.sin(prims.yaw))
    size = prims.size + grow
    half_x = c * size[:, 0] + s * size[:, 1]
    half_y = s * size[:, 0] + c * size[:, 1]
    half = np.stack([half_x, half_y, size[:, 2]], axis=1)
    return prims.center - half, prims.center + half
