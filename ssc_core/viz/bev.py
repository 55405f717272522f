"""Bird's-eye views: the top-most class of every voxel column, and a ROS OccupancyGrid as an image.

Both use the same orientation: the LiDAR's forward (+x) points up the image and its left (+y) to the left,
so a BEV and an occupancy-grid picture of the same scene line up.
"""

from __future__ import annotations

import numpy as np

from ssc_core.data.label_maps import ClassSet
from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.viz.colors import RGB, check_labels, occupied_mask, palette

UNKNOWN_RGB: RGB = (150, 150, 150)


def _upscale(image: np.ndarray, scale: int) -> np.ndarray:
    if scale < 1:
        raise ConfigError(f"scale must be a positive integer, got {scale}")
    return image.repeat(scale, axis=0).repeat(scale, axis=1) if scale > 1 else image


def top_labels(labels: np.ndarray) -> np.ndarray:
    """(X, Y) train id of the highest semantic voxel of each column of (X, Y, Z) labels (0 where none)."""
    labels = np.asarray(labels)
    occupied = occupied_mask(labels)
    top = labels.shape[2] - 1 - np.argmax(occupied[:, :, ::-1], axis=2)
    out = np.take_along_axis(labels, top[..., None], axis=2)[..., 0]
    return np.where(occupied.any(axis=2), out, 0)


def render_bev(
    labels: np.ndarray, class_set: ClassSet, scale: int = 2, background: RGB = (255, 255, 255)
) -> np.ndarray:
    """Bird's-eye view of (X, Y, Z) train-id labels: each column shows its top-most semantic class (0 and
    255 are see-through) in the class colour, empty columns show ``background``. +x (forward) is up, +y
    (left) is left. Returns (X*scale, Y*scale, 3) uint8 RGB."""
    labels = check_labels(labels, class_set)
    top = top_labels(labels)
    image = palette(class_set)[top]
    image[top == 0] = background
    return _upscale(image[::-1, ::-1], scale)


def render_occupancy_grid(grid: np.ndarray, scale: int = 2, layout: str = "ros") -> np.ndarray:
    """Picture of occupancy cells: -1 unknown is grey, 0 free white, 100 occupied black, values between are
    shades of grey; rotated like ``render_bev`` (+x up, +y left).

    layout "ros": ``grid`` is a nav_msgs/OccupancyGrid's data as an (H, W) int8 array (row = cell y index,
    column = cell x index, row 0 at the map origin), e.g. ``msg.data.reshape(msg.info.height, msg.info.width)``;
    layout "xy": ``grid`` is indexed [x][y] like the voxel grid (e.g. ``OutputBuilder.occupancy_cells``).
    Returns (X*scale, Y*scale, 3) uint8 RGB."""
    if layout not in ("ros", "xy"):
        raise ConfigError(f"occupancy grid layout must be 'ros' or 'xy', got {layout!r}")
    grid = np.asarray(grid)
    if layout == "xy" and grid.ndim == 2:
        grid = grid.T
    if grid.ndim != 2:
        raise DataFormatError(f"occupancy grid must be a 2-D (H, W) array, got shape {grid.shape}")
    if not np.issubdtype(grid.dtype, np.integer):
        raise DataFormatError(f"occupancy grid must hold integers (-1, 0..100), got dtype {grid.dtype}")
    bad = (grid < -1) | (grid > 100)
    if bad.any():
        raise DataFormatError(f"occupancy grid value {int(grid[bad].flat[0])} is outside -1..100")
    grey = np.round(255.0 * (1.0 - grid.astype(np.float32) / 100.0)).astype(np.uint8)
    image = np.repeat(grey[..., None], 3, axis=2)
    image[grid == -1] = UNKNOWN_RGB
    # ROS layout [y][x] -> [x][y], then the BEV orientation.
    return _upscale(image.transpose(1, 0, 2)[::-1, ::-1], scale)
