"""Camera projection in the field's convention (MonoScene/VoxFormer/SGN): pixel = K @ (T_cam_velo @ p)."""

from __future__ import annotations

import numpy as np


def project_points(
    points_velo: np.ndarray, K: np.ndarray, T_cam_velo: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Project (N, >=3) LiDAR-frame points. Returns ((N, 2) float64 pixel (u, v), (N,) float64 camera depth z).
    Points behind the camera get depth <= 0 (their pixels are meaningless)."""
    pts = np.asarray(points_velo)[:, :3].astype(np.float64)
    T = np.asarray(T_cam_velo, dtype=np.float64)
    cam = pts @ T[:3, :3].T + T[:3, 3]
    depth = cam[:, 2]
    safe = np.where(np.abs(depth) < 1e-9, 1e-9, depth)
    uvw = cam @ np.asarray(K, dtype=np.float64).T
    pix = uvw[:, :2] / safe[:, None]
    return pix, depth


def fov_mask(pix: np.ndarray, depth: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """(N,) bool: 0 <= u < W, 0 <= v < H and depth > 0 (MonoScene's FOV rule)."""
    h, w = image_hw
    u, v = pix[:, 0], pix[:, 1]
    return (depth > 0) & (u >= 0) & (u < w) & (v >= 0) & (v < h)


def vox2pix(
    voxel_centers_velo: np.ndarray, K: np.ndarray, T_cam_velo: np.ndarray, image_hw: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project voxel centres (N, 3) into an image. Returns (pixels (N, 2) int64 rounded like MonoScene,
    fov mask (N,) bool, depth (N,) float32)."""
    pix, depth = project_points(voxel_centers_velo, K, T_cam_velo)
    pix_int = np.round(pix).astype(np.int64)
    mask = fov_mask(pix_int.astype(np.float64), depth, image_hw)
    return pix_int, mask, depth.astype(np.float32)


def depth_to_points_cam(depth: np.ndarray, K: np.ndarray, baseline_x: float = 0.0,
                        baseline_y: float = 0.0) -> np.ndarray:
    """Back-project an (H, W) metric depth map of a rectified camera to (M, 3) float64 points in that camera's
    frame, one per pixel with finite depth > 0, in row-major pixel order: x = (u - cx) d / fx + baseline_x,
    y = (v - cy) d / fy + baseline_y, z = d, in the operation order of the pseudo-LiDAR scripts SGN and
    VoxFormer use (so their files are reproduced bit for bit). ``baseline_x``/``baseline_y`` place the camera
    w.r.t. camera 0 (P2[0,3] / -fx and P2[1,3] / -fy in SGN's back-projection)."""
    depth = np.asarray(depth)
    valid = np.isfinite(depth) & (depth > 0)
    v, u = np.nonzero(valid)
    d = depth[valid].astype(np.float64)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    x = ((u - cx) * d) / fx + baseline_x
    y = ((v - cy) * d) / fy + baseline_y
    return np.stack([x, y, d], axis=1)
