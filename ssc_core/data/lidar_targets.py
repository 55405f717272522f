"""Training-only targets from the current LiDAR scan, in the pixels of the sample's image (HTCL's
``CreateDepthFromLiDAR``): a sparse depth map for depth supervision and the labelled in-view points for
point-level semantic supervision. The Datasets add them (``data.lidar_depth``, ``data.labelled_points``); the
live path never needs them.

Projection is the exact KITTI camera-2 one, ``P2 @ Tr @ p`` (P2's 4th column included), then the sample's image
transform (``post_rot``, ``post_tran``). A point is in view when its depth is > 0 and its pixel (u, v) lies in
[0, W - 1] x [0, H - 1].
"""

from __future__ import annotations

import numpy as np

from ssc_core.errors import DataFormatError


def project_to_image(points_velo: np.ndarray, P2: np.ndarray, T_cam0_velo: np.ndarray, post_rot: np.ndarray,
                     post_tran: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """LiDAR points (N, >=3) -> (uv (N, 2) float64 image-tensor pixels, depth (N,) float64 metres along the
    optical axis). P2 (3, 4), T_cam0_velo (4, 4), post_rot (3, 3), post_tran (3,) as in the sample."""
    xyz = np.asarray(points_velo, dtype=np.float64)[:, :3]
    homo = np.concatenate([xyz, np.ones((len(xyz), 1))], axis=1)
    cam = homo @ (np.asarray(P2, dtype=np.float64) @ np.asarray(T_cam0_velo, dtype=np.float64)).T
    depth = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        raw_uv = cam[:, :2] / depth[:, None]
    uv = raw_uv @ np.asarray(post_rot, dtype=np.float64)[:2, :2].T + np.asarray(post_tran, dtype=np.float64)[:2]
    return uv, depth


def _in_view(uv: np.ndarray, depth: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    h, w = image_hw
    return ((depth > 0) & np.isfinite(uv).all(axis=1) & (uv[:, 0] >= 0) & (uv[:, 0] <= w - 1)
            & (uv[:, 1] >= 0) & (uv[:, 1] <= h - 1))


def lidar_depth_map(points_velo: np.ndarray, P2: np.ndarray, T_cam0_velo: np.ndarray, post_rot: np.ndarray,
                    post_tran: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """(H, W) float32 sparse depth: each in-view point written at its rounded pixel, the nearest point winning
    where several share one; 0 where no point projects."""
    uv, depth = project_to_image(points_velo, P2, T_cam0_velo, post_rot, post_tran)
    keep = _in_view(uv, depth, image_hw)
    uv, depth = uv[keep], depth[keep]
    order = np.argsort(-depth, kind="stable")  # far first, so the nearest is written last
    out = np.zeros(image_hw, dtype=np.float32)
    rows, cols = np.round(uv[order, 1]).astype(np.int64), np.round(uv[order, 0]).astype(np.int64)
    out[rows, cols] = depth[order]
    return out


def labelled_points(points_velo: np.ndarray, labels: np.ndarray, P2: np.ndarray, T_cam0_velo: np.ndarray,
                    post_rot: np.ndarray, post_tran: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """(P, 6) float32 [x, y, z, u, v, label] of the in-view points: x, y, z in the LiDAR frame, (u, v) their pixel
    in the image tensor (not rounded), label the point's train id (0 = unlabelled). ``labels`` (N,) train ids
    for ``points_velo`` (N, >=3)."""
    labels = np.asarray(labels)
    if labels.shape != (len(points_velo),):
        raise DataFormatError(f"{labels.shape[0] if labels.ndim else 0} point labels for {len(points_velo)} points")
    uv, depth = project_to_image(points_velo, P2, T_cam0_velo, post_rot, post_tran)
    keep = _in_view(uv, depth, image_hw)
    xyz = np.asarray(points_velo, dtype=np.float32)[keep, :3]
    return np.concatenate([xyz, uv[keep].astype(np.float32), labels[keep, None].astype(np.float32)], axis=1)
