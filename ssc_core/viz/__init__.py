"""Headless pictures of voxel scenes (numpy + Pillow): 3D view, bird's-eye view, occupancy grid, legends,
side-by-side comparisons. SemanticKITTI (or any ClassSet) colours; no display needed."""

from ssc_core.viz.bev import render_bev, render_occupancy_grid, top_labels
from ssc_core.viz.colors import classes_present, palette
from ssc_core.viz.compose import add_title, render_legend, save_png, scene_figure, side_by_side, stack
from ssc_core.viz.voxels3d import VIEWS, View, render_voxels_3d

__all__ = [
    "VIEWS",
    "View",
    "add_title",
    "classes_present",
    "palette",
    "render_bev",
    "render_legend",
    "render_occupancy_grid",
    "render_voxels_3d",
    "save_png",
    "scene_figure",
    "side_by_side",
    "stack",
    "top_labels",
]
