"""Procedural surface texture: seeded 3-D value noise evaluated at world points, so that every view of a
surface (left and right camera, any frame) sees the same pattern — what stereo matching needs."""

from __future__ import annotations

import numpy as np

_PRIMES = (np.uint64(0x9E3779B185EBCA87), np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(0x165667B19E3779F9))


def _hash01(ix: np.ndarray, iy: np.ndarray, iz: np.ndarray, seed: int) -> np.ndarray:
    """Deterministic pseudo-random values in [0, 1) for integer lattice points."""
    h = np.uint64(seed * 2654435761 + 97)
    with np.errstate(over="ignore"):
        h = (ix.astype(np.int64).view(np.uint64) * _PRIMES[0]) ^ (iy.astype(np.int64).view(np.uint64) * _PRIMES[1]) \
            ^ (iz.astype(np.int64).view(np.uint64) * _PRIMES[2]) ^ h
        h ^= h >> np.uint64(29)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(32)
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def value_noise(points: np.ndarray, scale: float, seed: int) -> np.ndarray:
    """Smooth noise in [0, 1] at (N, 3) world points with features of about ``scale`` metres."""
    p = np.asarray(points, dtype=np.float64) / scale
    base = np.floor(p)
    f = p - base
    f = f * f * (3.0 - 2.0 * f)
    ib = base.astype(np.int64)
    out = np.zeros(len(p))
    for corner in range(8):
        ox, oy, oz = corner & 1, (corner >> 1) & 1, (corner >> 2) & 1
        weight = (f[:, 0] if ox else 1 - f[:, 0]) * (f[:, 1] if oy else 1 - f[:, 1]) * (f[:, 2] if oz else 1 - f[:, 2])
        out += weight * _hash01(ib[:, 0] + ox, ib[:, 1] + oy, ib[:, 2] + oz, seed)
    return out


def surface_texture(points: np.ndarray, seed: int) -> np.ndarray:
    """(N,) texture factor in about [0.55, 1.45] at world points: three octaves (7 cm, 25 cm, 1 m)."""
    tex = 0.5 * value_noise(points, 0.07, seed) + 0.3 * value_noise(points, 0.25, seed + 1) \
        + 0.2 * value_noise(points, 1.0, seed + 2)
    return 0.55 + 0.9 * tex
