"""Rendering the rectified colour cameras by ray casting: Lambert shading under a fixed sun, procedural
texture on every surface, a sky gradient where rays hit nothing."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ssc_core.data.synthetic.primitives import Primitives
from ssc_core.data.synthetic.raycast import CameraGrid, cast
from ssc_core.data.synthetic.texture import surface_texture
from ssc_core.data.synthetic.world import GROUND_COLOR, GROUND_REFLECTANCE, World

SUN_DIR = np.array([0.35, -0.25, 0.9]) / np.linalg.norm([0.35, -0.25, 0.9])
MAX_DEPTH_M = 250.0


@dataclass
class CameraView:
    """A rendered view: rgb (H, W, 3) uint8; depth (H, W) float32 metric depth along the optical axis
    (0 = sky); semantic / instance (H, W) uint16 raw ids of the visible surface (0 = sky)."""

    rgb: np.ndarray
    depth: np.ndarray
    semantic: np.ndarray
    instance: np.ndarray


def render(world: World, prims: Primitives, T_world_cam0: np.ndarray, P: np.ndarray,
           image_size: tuple[int, int]) -> CameraView:
    """Render the camera with projection ``P`` (3, 4, rectified camera-0 frame) whose camera 0 sits at
    ``T_world_cam0`` (4, 4), at ``image_size`` (W, H), seeing solids ``prims`` (the world at one instant)."""
    grid = CameraGrid(T_world_cam0, P, image_size)
    hits = cast(grid, world.street, prims, MAX_DEPTH_M, GROUND_COLOR, GROUND_REFLECTANCE)
    h, w = hits.t.shape
    hit = np.isfinite(hits.t)
    rgb = np.zeros((h, w, 3), np.float64)
    # Sky: brighter towards the horizon, by the ray's elevation.
    dirs = grid.dirs / np.linalg.norm(grid.dirs, axis=-1, keepdims=True)
    up = np.clip(dirs[..., 2], 0.0, 1.0)[..., None]
    rgb[:] = (1 - up) * np.array([0.82, 0.88, 0.95]) + up * np.array([0.45, 0.62, 0.9])
    if hit.any():
        tex = surface_texture(hits.point[hit], world.texture_seed)
        normal = hits.normal[hit]
        facing = np.einsum("ij,ij->i", normal, dirs[hit]) > 0
        normal = np.where(facing[:, None], -normal, normal)
        shade = 0.4 + 0.6 * np.clip(normal @ SUN_DIR, 0.0, 1.0)
        rgb[hit] = hits.color[hit] * (tex * shade)[:, None]
    depth = np.where(hit, hits.t, 0.0).astype(np.float32)
    image = np.clip(rgb * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return CameraView(image, depth, hits.semantic, hits.instance)
