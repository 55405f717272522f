"""TSDF, label weight and voxel -> pixel mapping of a depth image (ssc_core.geometry.tsdf)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt

from ssc_core.data.nyu import NYU_CAM_K
from ssc_core.data.synthetic.indoor import render_room
from ssc_core.data.synthetic.primitives import BOX, Primitives
from ssc_core.data.synthetic.room import FLOOR, TABLE, WALL, Room
from ssc_core.errors import DataFormatError
from ssc_core.geometry.tsdf import (
    FLIP_FLOOR,
    depth_volume,
    room_points_to_voxels,
    truncated_distance,
    voxel_centers_room,
)
from ssc_core.types import GridSpec

GRID = GridSpec(dims=(60, 36, 60), voxel_size=0.08, origin=(-2.4, -0.4, 0.0))
NOT_VISIBLE = 480 * 640


def looking_north(height: float = 1.44) -> np.ndarray:
    """T_room_cam of a camera at (0, 0, height) looking along +y (x right, y down, z forward)."""
    T = np.eye(4)
    T[:3, :3] = np.stack([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]], axis=1)
    T[:3, 3] = (0.0, 0.0, height)
    return T


def test_truncated_distance_equals_the_exact_transform_within_the_radius():
    rng = np.random.default_rng(0)
    cells = rng.random((30, 20, 25)) < 0.002
    exact = distance_transform_edt(~cells)
    got = truncated_distance(cells, 6)
    near = exact <= 6
    np.testing.assert_allclose(got[near], exact[near], atol=1e-5)
    assert np.all(got[~near] > 6)


def test_grid_index_axes_are_room_x_z_y():
    centers = voxel_centers_room(GRID).reshape(*GRID.dims, 3)
    np.testing.assert_allclose(centers[0, 0, 0], (-2.36, -0.36, 0.04))
    np.testing.assert_allclose(centers[1, 0, 0] - centers[0, 0, 0], (0.08, 0, 0), atol=1e-12)
    np.testing.assert_allclose(centers[0, 1, 0] - centers[0, 0, 0], (0, 0, 0.08), atol=1e-12)
    np.testing.assert_allclose(centers[0, 0, 1] - centers[0, 0, 0], (0, 0.08, 0), atol=1e-12)
    flat, inside = room_points_to_voxels(centers.reshape(-1, 3), GRID)
    assert inside.all() and np.array_equal(flat, np.arange(GRID.num_voxels))


def test_tsdf_of_a_depth_plane_is_the_analytic_flipped_distance():
    """A wall 3.0 m ahead, perpendicular to the view: along every voxel column in view the TSDF is
    sign * max(0.001, 1 - |k - k0| * 0.08 / 0.24) with k0 the voxel layer holding the wall (1 on it), free in
    front, occluded behind."""
    depth = np.full((480, 640), 3.0, dtype=np.float32)
    vol = depth_volume(depth, NYU_CAM_K, looking_north(), GRID, subdivision=1)
    k0 = int((3.0 - GRID.origin[1]) // 0.08)  # layer of room y = 3.0
    k = np.arange(60)
    expected = np.sign(k0 - k + 0.5) * np.maximum(FLIP_FLOOR, 1 - np.abs(k - k0) * 0.08 / 0.24)
    for i, j in ((30, 18), (29, 17), (31, 19)):  # columns near the optical axis (x ~ 0, z ~ 1.44)
        column = vol.tsdf[i, j]
        np.testing.assert_allclose(column[10:], expected[10:], atol=1e-6)  # nearer voxels leave the image
        assert np.all(vol.label_weight[i, j, 10:k0] == 0) and np.all(vol.label_weight[i, j, k0:] == 1)
        assert vol.surface[i, j, k0] and vol.surface[i, j].sum() == 1
        assert vol.mapping[i, j, k0] < NOT_VISIBLE and np.all(np.delete(vol.mapping[i, j], k0) == NOT_VISIBLE)
    assert np.all(vol.tsdf[:, :, :5] == -FLIP_FLOOR)  # behind the camera: unseen


def test_mapping_pixel_back_projects_into_its_voxel_nearest_the_centre():
    depth = np.full((480, 640), 2.0, dtype=np.float32)
    vol = depth_volume(depth, NYU_CAM_K, looking_north(), GRID, subdivision=1)
    mapped = np.flatnonzero(vol.mapping.ravel() < NOT_VISIBLE)
    pix = vol.mapping.ravel()[mapped]
    v, u = np.divmod(pix, 640)
    cam = np.stack([(u - 320) * 2.0 / NYU_CAM_K[0, 0], (v - 240) * 2.0 / NYU_CAM_K[1, 1], np.full(len(u), 2.0)], 1)
    room = cam @ looking_north()[:3, :3].T + looking_north()[:3, 3]
    flat, inside = room_points_to_voxels(room, GRID)
    assert inside.all() and np.array_equal(flat, mapped)
    assert len(np.unique(pix)) == len(pix)  # at most one voxel per pixel


def test_holes_leave_voxels_unseen_and_weighted():
    depth = np.full((480, 640), 3.0, dtype=np.float32)
    depth[:, 320:] = 0.0  # right half: no depth
    vol = depth_volume(depth, NYU_CAM_K, looking_north(), GRID, subdivision=2)
    right = vol.tsdf[35, 18, 15:35]  # x ~ +0.44 m, 0.8-2.4 m ahead: in view, but on pixels without depth
    assert np.all(right < 0) and np.all(vol.label_weight[35, 18, 15:35] == 1)
    assert np.all(vol.label_weight[25, 18, 15:35] == 0)  # the same depths on the left are observed free


def test_a_box_in_a_hand_made_room_occludes_what_is_behind_it():
    """Floor, a back wall 4 m ahead and a table-high box 2 m ahead: the voxels behind the box are weighted and
    unmapped, the box's front face is mapped, the air between camera and box is observed free."""
    rows = [(BOX, (0.0, 2.0, -0.05), (3.0, 3.0, 0.05), 0.0, FLOOR, 0, (0.5, 0.5, 0.5), 0.0),
            (BOX, (0.0, 4.1, 1.5), (3.0, 0.1, 1.5), 0.0, WALL, 0, (0.8, 0.8, 0.8), 0.0),
            (BOX, (0.0, 2.25, 0.4), (0.6, 0.2, 0.4), 0.0, TABLE, 0, (0.6, 0.3, 0.2), 0.0)]
    room = Room((6.0, 6.0, 3.0), Primitives.from_rows(rows), np.zeros(3, bool), np.array([0.0, 2.0, 2.9]), 1,
                "office")
    T = looking_north(1.2)
    tilt = -0.3  # about the camera's x axis: the view turns 17 deg down
    T[:3, :3] = T[:3, :3] @ np.array([[1, 0, 0], [0, np.cos(tilt), -np.sin(tilt)], [0, np.sin(tilt), np.cos(tilt)]])
    view = render_room(room, T)
    vol = depth_volume(view.depth, NYU_CAM_K, T, GRID, subdivision=2)
    i, j = 30, 5  # x ~ 0.04, z ~ 0.44: through the box
    k_front = int((2.05 - GRID.origin[1]) // 0.08)
    assert vol.mapping[i, j, k_front] < NOT_VISIBLE  # the front face of the box
    assert np.all(vol.label_weight[i, j, 18:k_front - 1] == 0)  # air in front of it (in view): observed free
    behind = slice(k_front + 6, 50)  # behind the box, in front of the wall
    assert np.all(vol.mapping[i, j, behind] == NOT_VISIBLE) and np.all(vol.label_weight[i, j, behind] == 1)
    assert np.all(vol.tsdf[i, j, behind] < 0)


def test_malformed_inputs_are_clear_errors():
    with pytest.raises(DataFormatError, match=r"\(H, W\) image"):
        depth_volume(np.zeros((2, 3, 4)), NYU_CAM_K, np.eye(4), GRID)
    with pytest.raises(DataFormatError, match="finite"):
        depth_volume(np.zeros((4, 4)), NYU_CAM_K, np.full((4, 4), np.nan), GRID)
