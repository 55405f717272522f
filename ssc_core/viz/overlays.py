"""Marks drawn over renders so a reader can tell where and how big things are: the ego car (at the LiDAR, to
scale) in the 3D view and in top-down pictures, and metric axes around top-down pictures.

Top-down pictures (``render_bev``, ``render_occupancy_grid``) show the grid with the LiDAR's forward (+x) up
and its left (+y) to the left; ``frame_top_down`` adds margins with axes in metres (LiDAR frame) and the car,
which mostly sits behind the grid's back edge (SemanticKITTI's grid starts at x = 0, under the LiDAR).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from ssc_core.types import GridSpec
from ssc_core.viz.colors import RGB
from ssc_core.viz.fonts import font, text_size
from ssc_core.viz.voxels3d import Camera

CAR_RGB: RGB = (0, 0, 0)
AXIS_RGB: RGB = (60, 60, 60)


@dataclass(frozen=True)
class EgoCar:
    """The recording car as a box in the LiDAR frame (metres): ``length`` x ``width`` x ``height``, the LiDAR
    ``lidar_height`` above the ground and ``lidar_to_front`` behind the front bumper. The defaults are those of
    a KITTI-like estate car (about 4.8 x 1.8 x 1.5 m, Velodyne 1.73 m above the ground, mounted about mid-car);
    the box marks position and scale, it is not a measured model of the car."""

    length: float = 4.8
    width: float = 1.8
    height: float = 1.5
    lidar_height: float = 1.73
    lidar_to_front: float = 2.4

    def corners_velo(self) -> np.ndarray:
        """(8, 3) float64 box corners in the LiDAR frame, bottom face first (x forward, y left, z up)."""
        x0, x1 = self.lidar_to_front - self.length, self.lidar_to_front
        y0, y1 = -self.width / 2, self.width / 2
        z0, z1 = -self.lidar_height, self.height - self.lidar_height
        return np.array([[x, y, z] for z in (z0, z1) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))])


EGO_CAR = EgoCar()
_BOX_EDGES = [(0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4), (0, 4), (1, 5), (2, 6), (3, 7)]


def velo_to_voxel_units(points_velo: np.ndarray, grid: GridSpec) -> np.ndarray:
    """(N, 3) metric points in the LiDAR frame -> (N, 3) positions in voxel units of ``grid`` (voxel (0, 0, 0)
    spans [0, 1)^3), as ``voxels3d.Camera`` takes them."""
    return (np.asarray(points_velo, dtype=np.float64) - np.asarray(grid.origin)) / grid.voxel_size


def draw_car_3d(image: np.ndarray, camera: Camera, grid: GridSpec, car: EgoCar = EGO_CAR) -> np.ndarray:
    """The (H, W, 3) uint8 3D render ``image`` (made with ``camera``) with the car's box drawn as a wireframe
    and a dot at the LiDAR. Returns a new (H, W, 3) uint8 image."""
    canvas = Image.fromarray(np.ascontiguousarray(image))
    draw = ImageDraw.Draw(canvas)
    pixels = camera.pixels(velo_to_voxel_units(car.corners_velo(), grid))
    line = max(1, round(camera.width / 320))
    for a, b in _BOX_EDGES:
        draw.line([tuple(pixels[a]), tuple(pixels[b])], fill=CAR_RGB, width=line)
    lidar = camera.pixels(velo_to_voxel_units(np.zeros((1, 3)), grid))[0]
    r = 2 * line
    draw.ellipse([lidar[0] - r, lidar[1] - r, lidar[0] + r, lidar[1] + r], fill=CAR_RGB)
    return np.asarray(canvas)


def frame_top_down(image: np.ndarray, grid: GridSpec, car: EgoCar | None = EGO_CAR, tick_m: float = 10.0,
                   font_size: int = 11, background: RGB = (255, 255, 255)) -> np.ndarray:
    """A top-down picture of ``grid`` (``image`` (H, W, 3) uint8, +x up, +y left, any whole or fractional
    number of pixels per voxel) inside metric axes: x (forward) ticks on the left, y (left) ticks below, every
    ``tick_m`` metres, and ``car`` (None: no car) drawn to scale at the LiDAR with an arrow pointing forward.
    Returns a larger (H', W', 3) uint8 image."""
    per_m = image.shape[1] / (grid.dims[1] * grid.voxel_size)  # pixels per metre (the same along x)
    fnt = font(font_size)
    label_w, label_h = text_size(fnt, f"{-abs(grid.origin[1]):g}")
    x_min = grid.origin[0]
    x_max = x_min + grid.dims[0] * grid.voxel_size
    y_min = grid.origin[1]
    y_max = y_min + grid.dims[1] * grid.voxel_size
    behind = 0.0 if car is None else max(0.0, x_min - (car.lidar_to_front - car.length))
    behind_px = int(math.ceil(behind * per_m))  # the car below the grid's back edge
    left, top, right = label_w + 10, label_h + 10, label_w // 2 + 6
    bottom = behind_px + 2 * label_h + 16
    canvas = Image.new("RGB", (image.shape[1] + left + right, image.shape[0] + top + bottom), background)
    canvas.paste(Image.fromarray(np.ascontiguousarray(image)), (left, top))
    draw = ImageDraw.Draw(canvas)

    def px(x_m: float, y_m: float) -> tuple[float, float]:
        return left + (y_max - y_m) * per_m, top + (x_max - x_m) * per_m

    x0, y0 = px(x_max, y_max)
    x1, y1 = px(x_min, y_min)
    draw.rectangle([x0 - 1, y0 - 1, x1, y1], outline=AXIS_RGB)
    for x_m in np.arange(math.ceil(x_min / tick_m) * tick_m, x_max + 1e-6, tick_m):
        _, row = px(x_m, y_max)
        draw.line([(x0 - 5, row), (x0 - 1, row)], fill=AXIS_RGB)
        draw.text((x0 - 7, row), f"{x_m:g}", fill=AXIS_RGB, font=fnt, anchor="rm")
    for y_m in np.arange(math.ceil(y_min / tick_m) * tick_m, y_max + 1e-6, tick_m):
        col, _ = px(x_min, y_m)
        draw.line([(col, y1), (col, y1 + 4)], fill=AXIS_RGB)
        draw.text((col, y1 + behind_px + 6), f"{y_m:g}", fill=AXIS_RGB, font=fnt, anchor="mt")
    draw.text((x0 - 7, y0 - 4), "x (m, forward)", fill=AXIS_RGB, font=fnt, anchor="ls")
    draw.text((x1, canvas.height - 3), "y (m, left)", fill=AXIS_RGB, font=fnt, anchor="rd")
    if car is not None:
        corners = car.corners_velo()[:4]
        draw.polygon([px(x, y) for x, y, _ in corners], outline=CAR_RGB, width=2)
        tip, base = car.lidar_to_front, car.lidar_to_front - car.length / 3
        draw.polygon([px(tip, 0.0), px(base, car.width / 3), px(base, -car.width / 3)], fill=CAR_RGB)
        lx, ly = px(0.0, 0.0)
        draw.ellipse([lx - 2, ly - 2, lx + 2, ly + 2], fill=CAR_RGB)
    return np.asarray(canvas)
