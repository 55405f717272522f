"""SE(3) helpers on 4x4 float64 matrices named T_<to>_<from>."""

from __future__ import annotations

import numpy as np


def invert_transform(T_b_a: np.ndarray) -> np.ndarray:
    """Inverse of a rigid (4, 4) transform, computed as [R^T, -R^T t] (exact for rigid motions)."""
    T_b_a = np.asarray(T_b_a, dtype=np.float64)
    out = np.eye(4)
    rot = T_b_a[:3, :3]
    out[:3, :3] = rot.T
    out[:3, 3] = -rot.T @ T_b_a[:3, 3]
    return out


def transform_points(T_b_a: np.ndarray, points_a: np.ndarray) -> np.ndarray:
    """Apply (4, 4) T_b_a to (N, >=3) points in frame a; returns points in frame b with the same extra
    columns (e.g. intensity) and dtype."""
    points_a = np.asarray(points_a)
    T = np.asarray(T_b_a, dtype=np.float64)
    xyz = points_a[:, :3].astype(np.float64) @ T[:3, :3].T + T[:3, 3]
    out = points_a.copy()
    out[:, :3] = xyz.astype(points_a.dtype)
    return out


def relative_transform(T_w_cur: np.ndarray, T_w_hist: np.ndarray) -> np.ndarray:
    """T_cur_hist = T_w_cur^-1 @ T_w_hist: maps points of a history frame into the current frame."""
    return invert_transform(T_w_cur) @ np.asarray(T_w_hist, dtype=np.float64)


def rotation_z(yaw: float) -> np.ndarray:
    """(4, 4) rotation about +z by ``yaw`` radians."""
    c, s = np.cos(yaw), np.sin(yaw)
    out = np.eye(4)
    out[:2, :2] = [[c, -s], [s, c]]
    return out


def is_rigid(T: np.ndarray, atol: float = 1e-6) -> bool:
    """True when T is a finite (4, 4) rigid transform (orthonormal rotation, det +1, last row 0 0 0 1)."""
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        return False
    rot = T[:3, :3]
    return (
        np.allclose(rot @ rot.T, np.eye(3), atol=atol)
        and abs(np.linalg.det(rot) - 1.0) < atol
        and np.allclose(T[3], [0, 0, 0, 1], atol=atol)
    )
