"""The street: a centreline with a height profile and a cross-section of ground bands (road, parking,
sidewalk, terrain/other-ground) that varies along it, plus junctions where side roads cross.

Coordinates are the world frame of the synthetic scene: x, y horizontal, z up, metres. A ground point is
described by (s, d): arc length along the centreline and signed lateral offset (d > 0 on the left).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

ROAD, PARKING, SIDEWALK, OTHER_GROUND, TERRAIN = 40, 44, 48, 49, 72
SAMPLE_SPACING_M = 0.5


@dataclass
class CrossSections:
    """Ground bands per street section and side (index 0 = right, d < 0; 1 = left).

    starts: (S,) arc length where each section begins (sorted); road_half, parking, sidewalk: (S, 2) band
    widths in metres; outer_class: (S, 2) raw id of the ground beyond the sidewalk; setback: (S, 2) distance
    from the sidewalk's outer edge to the building line.
    """

    starts: np.ndarray
    road_half: np.ndarray
    parking: np.ndarray
    sidewalk: np.ndarray
    outer_class: np.ndarray
    setback: np.ndarray

    @classmethod
    def random(cls, rng: np.random.Generator, s_min: float, s_max: float) -> CrossSections:
        """Sections of 25-70 m between s_min and s_max with seeded widths and classes. Each section is drawn
        whole before the next, so a longer street repeats a shorter one's sections (same seed)."""
        rows = []
        start = s_min
        while not rows or start < s_max:
            road_half = rng.uniform(3.2, 4.2)
            parking = np.where(rng.random(2) < 0.45, rng.uniform(2.0, 2.6, 2), 0.0)
            sidewalk = rng.uniform(1.5, 3.5, 2)
            outer = np.where(rng.random(2) < 0.65, TERRAIN, OTHER_GROUND)
            setback = rng.uniform(1.0, 7.0, 2)
            rows.append((start, [road_half, road_half], parking, sidewalk, outer, setback))
            start += rng.uniform(25.0, 70.0)
        cols = list(zip(*rows, strict=True))
        return cls(*(np.asarray(c) for c in cols))

    def section_of(self, s: np.ndarray) -> np.ndarray:
        """(N,) section index of arc lengths ``s``."""
        return np.clip(np.searchsorted(self.starts, s, side="right") - 1, 0, len(self.starts) - 1)

    def band_edges(self, s: np.ndarray, side: np.ndarray) -> np.ndarray:
        """(N, 4) unsigned offsets where road, parking, sidewalk and setback end, at ``s`` on ``side`` (0/1)."""
        sec = self.section_of(np.asarray(s))
        side = np.asarray(side, dtype=np.int64)
        widths = np.stack(
            [self.road_half[sec, side], self.parking[sec, side], self.sidewalk[sec, side], self.setback[sec, side]],
            axis=1,
        )
        return np.cumsum(widths, axis=1)


class Street:
    """Centreline samples (every 0.5 m) with ground heights, cross-sections and junctions.

    xy: (M, 2) centreline samples; ground_z: (M,) ground height at each; sections: the cross-sections;
    junctions: (J, 3) rows (s_centre, half_width, side) where side 0/1/2 = right/left/both.
    """

    def __init__(self, xy: np.ndarray, ground_z: np.ndarray, sections: CrossSections, junctions: np.ndarray):
        self.xy = np.asarray(xy, dtype=np.float64)
        self.ground_z = np.asarray(ground_z, dtype=np.float64)
        seg = np.linalg.norm(np.diff(self.xy, axis=0), axis=1)
        self.s = np.concatenate([[0.0], np.cumsum(seg)])
        tangent = np.gradient(self.xy, axis=0)
        self.tangent = tangent / np.linalg.norm(tangent, axis=1, keepdims=True)
        self.left = np.stack([-self.tangent[:, 1], self.tangent[:, 0]], axis=1)
        self.sections = sections
        self.junctions = np.asarray(junctions, dtype=np.float64).reshape(-1, 3)
        self._tree = cKDTree(self.xy)
        self.flat = bool(np.ptp(self.ground_z) == 0.0)

    @property
    def length(self) -> float:
        """Arc length of the centreline in metres."""
        return float(self.s[-1])

    def at(self, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Centreline at arc lengths ``s`` (N,): returns (xy (N, 2), unit tangent (N, 2), ground z (N,))."""
        s = np.atleast_1d(np.asarray(s, dtype=np.float64))
        xy = np.stack([np.interp(s, self.s, self.xy[:, 0]), np.interp(s, self.s, self.xy[:, 1])], axis=1)
        tx, ty = np.interp(s, self.s, self.tangent[:, 0]), np.interp(s, self.s, self.tangent[:, 1])
        norm = np.hypot(tx, ty)
        return xy, np.stack([tx / norm, ty / norm], axis=1), np.interp(s, self.s, self.ground_z)

    def place(self, s: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World positions of street coordinates: returns (xy (N, 2), heading yaw (N,), ground z (N,))."""
        xy, tangent, z = self.at(s)
        left = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
        return xy + np.asarray(d, dtype=np.float64)[:, None] * left, np.arctan2(tangent[:, 1], tangent[:, 0]), z

    def locate(self, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Street coordinates of world points (N, 2): returns (s (N,), d (N,), ground z (N,))."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        _, idx = self._tree.query(xy)
        rel = xy - self.xy[idx]
        along = np.einsum("ij,ij->i", rel, self.tangent[idx])
        d = np.einsum("ij,ij->i", rel, self.left[idx])
        return self.s[idx] + along, d, self.ground_z[idx]

    def in_junction(self, s: np.ndarray, d: np.ndarray) -> np.ndarray:
        """(N,) bool: the point lies in a side road's strip (beyond the main road's edge on that side)."""
        s, d = np.asarray(s), np.asarray(d)
        out = np.zeros(s.shape, dtype=bool)
        for s_c, half, side in self.junctions:
            on_side = np.ones_like(out) if side == 2 else ((d > 0) == bool(side))
            out |= (np.abs(s - s_c) < half) & on_side
        return out

    def ground_class(self, s: np.ndarray, d: np.ndarray) -> np.ndarray:
        """(N,) uint16 raw SemanticKITTI ids of the ground at street coordinates."""
        s, d = np.asarray(s), np.asarray(d)
        side = (d > 0).astype(np.int64)
        edges = self.sections.band_edges(s, side)
        outer = self.sections.outer_class[self.sections.section_of(s), side]
        ad = np.abs(d)
        cls = np.select([ad < edges[:, 0], ad < edges[:, 1], ad < edges[:, 2]], [ROAD, PARKING, SIDEWALK], outer)
        cls = np.where(self.in_junction(s, d) & (ad >= edges[:, 0]), ROAD, cls)
        return cls.astype(np.uint16)

    def lane_marking(self, s: np.ndarray, d: np.ndarray) -> np.ndarray:
        """(N,) bool: painted lines (dashed centre line, solid edge lines) on the road surface."""
        s, d = np.asarray(s), np.asarray(d)
        edges = self.sections.band_edges(s, (d > 0).astype(np.int64))
        centre = (np.abs(d) < 0.07) & (np.mod(s, 9.0) < 3.0)
        edge = (np.abs(np.abs(d) - (edges[:, 0] - 0.3)) < 0.08) & ~self.in_junction(s, d)
        return centre | edge


def resample_polyline(points: np.ndarray, spacing: float = SAMPLE_SPACING_M) -> np.ndarray:
    """Resample an (N, D) polyline at equal arc-length ``spacing`` (duplicate points removed)."""
    points = np.asarray(points, dtype=np.float64)
    step = np.linalg.norm(np.diff(points[:, :2], axis=0), axis=1)
    keep = np.concatenate([[True], step > 1e-3])
    points = points[keep]
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points[:, :2], axis=0), axis=1))])
    grid = np.arange(0.0, s[-1] + 1e-9, spacing)
    return np.stack([np.interp(grid, s, points[:, k]) for k in range(points.shape[1])], axis=1)


def random_centreline(rng: np.random.Generator, length: float, curvature: bool) -> np.ndarray:
    """A seeded centreline (N, 3) x, y, z=0 starting at the origin heading +x: straight pieces and gentle
    arcs (radius >= 120 m) of 30-80 m each, sampled every 0.5 m."""
    n = int(np.ceil(length / SAMPLE_SPACING_M)) + 1
    kappa = np.zeros(n)
    i = 0
    while i < n:
        piece = int(rng.uniform(30.0, 80.0) / SAMPLE_SPACING_M)
        if curvature and rng.random() < 0.5:
            kappa[i : i + piece] = rng.uniform(-1.0 / 120.0, 1.0 / 120.0)
        i += piece
    heading = np.concatenate([[0.0], np.cumsum(kappa[:-1] * SAMPLE_SPACING_M)])
    xy = np.concatenate([[[0.0, 0.0]], np.cumsum(SAMPLE_SPACING_M * np.stack(
        [np.cos(heading[:-1]), np.sin(heading[:-1])], axis=1), axis=0)])
    return np.concatenate([xy, np.zeros((n, 1))], axis=1)


def extend_polyline(points: np.ndarray, before: float, after: float) -> np.ndarray:
    """Extend an (N, 3) polyline straight (flat) by ``before``/``after`` metres beyond its ends."""
    points = np.asarray(points, dtype=np.float64)

    def direction(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        v = b[:2] - a[:2]
        return v / max(np.linalg.norm(v), 1e-9)

    k = min(10, len(points) - 1)
    head_dir, tail_dir = direction(points[k], points[0]), direction(points[-1 - k], points[-1])
    head = [np.r_[points[0, :2] + head_dir * t, points[0, 2]] for t in np.arange(before, 0, -SAMPLE_SPACING_M)]
    tail = [np.r_[points[-1, :2] + tail_dir * t, points[-1, 2]] for t in np.arange(SAMPLE_SPACING_M, after,
                                                                                    SAMPLE_SPACING_M)]
    return np.concatenate([np.reshape(head, (-1, 3)), points, np.reshape(tail, (-1, 3))])


def random_junctions(rng: np.random.Generator, s_min: float, s_max: float, enabled: bool) -> np.ndarray:
    """(J, 3) junctions (s_centre, half_width, side) every 80-200 m between s_min and s_max."""
    rows = []
    if enabled:
        s = s_min + rng.uniform(30.0, 120.0)
        while s < s_max:
            rows.append((s, rng.uniform(3.5, 5.0), float(rng.integers(0, 3))))
            s += rng.uniform(80.0, 200.0)
    return np.asarray(rows, dtype=np.float64).reshape(-1, 3)
