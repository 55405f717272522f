"""Geometry core: SE(3) helpers, the KITTI camera->LiDAR pose conversion on real trajectories, camera
projection (hand-computed and on the real frame), voxelization, GridSpec, and the SSC downsampling rule."""

from __future__ import annotations

import numpy as np
import pytest

from ssc_core.data import semantic_kitti as sk
from ssc_core.data.downsample import downsample_labels
from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.geometry.poses import invert_transform, is_rigid, relative_transform, rotation_z, transform_points
from ssc_core.geometry.projection import depth_to_points_cam, fov_mask, project_points, vox2pix
from ssc_core.geometry.voxelize import majority_vote_labels, occupancy_from_points
from ssc_core.types import GridSpec

R_CAM_VELO = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
K = np.array([[100.0, 0.0, 50.0], [0.0, 100.0, 20.0], [0.0, 0.0, 1.0]])


def _random_rigid(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    T = np.eye(4)
    T[:3, :3] = q
    T[:3, 3] = rng.normal(size=3) * 5
    return T


# ----------------------------------------------------------------------------------------------- SE(3)
def test_invert_transform_is_the_matrix_inverse_of_a_rigid_transform():
    T = _random_rigid(0)
    np.testing.assert_allclose(invert_transform(T) @ T, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(invert_transform(T), np.linalg.inv(T), atol=1e-12)


def test_transform_points_moves_xyz_and_keeps_intensity_and_dtype():
    T = _random_rigid(1)
    pts = np.array([[1.0, 2.0, 3.0, 0.7], [-4.0, 0.5, 2.0, 0.1]], np.float32)
    out = transform_points(T, pts)
    assert out.dtype == np.float32 and out.shape == pts.shape
    np.testing.assert_allclose(out[:, :3], (pts[:, :3].astype(np.float64) @ T[:3, :3].T) + T[:3, 3], atol=1e-5)
    np.testing.assert_array_equal(out[:, 3], pts[:, 3])


def test_relative_transform_maps_history_points_into_the_current_frame():
    T_w_cur, T_w_hist = _random_rigid(2), _random_rigid(3)
    p_hist = np.array([1.0, -2.0, 0.5, 1.0])
    np.testing.assert_allclose(
        relative_transform(T_w_cur, T_w_hist) @ p_hist, np.linalg.inv(T_w_cur) @ (T_w_hist @ p_hist), atol=1e-12
    )


def test_is_rigid_rejects_scale_shear_nan_and_bad_last_row():
    T = _random_rigid(4)
    assert is_rigid(T)
    scaled = T.copy()
    scaled[:3, :3] *= 1.01
    mirrored = T.copy()
    mirrored[:3, 0] *= -1
    nan = T.copy()
    nan[0, 3] = np.nan
    row = T.copy()
    row[3, 0] = 1.0
    for bad in (scaled, mirrored, nan, row, np.eye(3)):
        assert not is_rigid(bad)


def test_rotation_z_turns_x_into_y():
    np.testing.assert_allclose(rotation_z(np.pi / 2) @ [1, 0, 0, 1], [0, 1, 0, 1], atol=1e-12)


# ----------------------------------------------------------------------------------------------- KITTI poses
@pytest.mark.parametrize("sequence", ["04", "08"])
def test_real_camera_poses_convert_to_rigid_lidar_poses_that_drive_forward(shared_data, sequence):
    paths = sk.SequencePaths.of(shared_data / "kitti_odometry_calib", sequence)
    calib = sk.read_calib(paths.calib)
    poses_cam0 = sk.read_poses(paths.poses)
    poses_velo = sk.read_velo_poses(paths, calib)
    assert poses_velo.shape == poses_cam0.shape
    # Tr^-1 P Tr, pose by pose.
    tr = calib.T_cam0_velo
    for i in (0, 1, len(poses_cam0) // 2, len(poses_cam0) - 1):
        np.testing.assert_allclose(poses_velo[i], np.linalg.inv(tr) @ poses_cam0[i] @ tr, atol=1e-9)
    # KITTI poses are printed with ~7 digits, so rigidity holds to ~1e-5.
    assert all(is_rigid(T, atol=1e-5) for T in poses_velo)
    np.testing.assert_allclose(poses_velo[0], np.eye(4), atol=1e-5)
    # In the LiDAR frame the car drives along +x and stays level (z up); camera poses drive along +z instead.
    steps = np.stack([relative_transform(a, b)[:3, 3] for a, b in zip(poses_velo[:-1], poses_velo[1:])])
    moving = np.linalg.norm(steps, axis=1) > 0.1
    assert moving.sum() > 100
    assert np.median(steps[moving, 0]) > 0.1
    assert np.all(np.abs(steps[moving, 2]) < 0.2 * np.linalg.norm(steps[moving], axis=1))
    up = poses_velo[:, :3, :3] @ np.array([0.0, 0.0, 1.0])
    assert np.min(up[:, 2]) > 0.95


def test_a_static_point_maps_consistently_through_lidar_and_camera_poses(shared_data):
    paths = sk.SequencePaths.of(shared_data / "kitti_odometry_calib", "04")
    calib = sk.read_calib(paths.calib)
    poses_cam0 = sk.read_poses(paths.poses)
    poses_velo = sk.poses_cam0_to_velo(poses_cam0, calib.T_cam0_velo)
    i, j = 100, 110
    p_velo_i = np.array([15.0, 2.0, -1.0, 1.0])  # a point 15 m ahead of the car at scan i
    # Route 1: LiDAR poses. Route 2: into camera i, camera poses to camera j, back to the LiDAR.
    via_velo = relative_transform(poses_velo[j], poses_velo[i]) @ p_velo_i
    tr = calib.T_cam0_velo
    via_cam = np.linalg.inv(tr) @ np.linalg.inv(poses_cam0[j]) @ poses_cam0[i] @ tr @ p_velo_i
    np.testing.assert_allclose(via_velo, via_cam, atol=1e-4)  # 7-digit poses: ~1e-6 m apart
    # Scan j is 10 frames later on a highway: the point is now closer in front.
    assert via_velo[0] < p_velo_i[0] - 5


def test_lidar_poses_convert_back_to_the_camera_poses(shared_data):
    paths = sk.SequencePaths.of(shared_data / "kitti_odometry_calib", "08")
    calib = sk.read_calib(paths.calib)
    poses_cam0 = sk.read_poses(paths.poses)[:50]
    back = sk.poses_velo_to_cam0(sk.poses_cam0_to_velo(poses_cam0, calib.T_cam0_velo), calib.T_cam0_velo)
    np.testing.assert_allclose(back, poses_cam0, atol=1e-9)


# ----------------------------------------------------------------------------------------------- projection
def test_projection_of_a_point_straight_ahead_hits_the_principal_point():
    T = np.eye(4)
    T[:3, :3] = R_CAM_VELO
    pix, depth = project_points(np.array([[10.0, 0.0, 0.0], [10.0, 1.0, 0.5], [-5.0, 0.0, 0.0]]), K, T)
    np.testing.assert_allclose(pix[0], [50.0, 20.0])
    # 1 m to the left (velo +y) is camera -x; 0.5 m up is camera -y: u = 50 - 100*1/10, v = 20 - 100*0.5/10.
    np.testing.assert_allclose(pix[1], [40.0, 15.0])
    assert depth.tolist() == [10.0, 10.0, -5.0]
    assert fov_mask(pix, depth, (40, 100)).tolist() == [True, True, False]
    assert not fov_mask(np.array([[100.0, 5.0]]), np.array([1.0]), (40, 100))[0]  # u == W is outside


def test_vox2pix_rounds_pixels_like_monoscene():
    T = np.eye(4)
    T[:3, :3] = R_CAM_VELO
    pix, mask, depth = vox2pix(np.array([[10.0, 0.026, 0.0]]), K, T, (40, 100))
    assert pix.dtype == np.int64 and pix[0].tolist() == [50, 20] and mask[0] and depth.dtype == np.float32


def test_depth_back_projection_reprojects_to_the_same_pixels():
    depth = np.full((4, 6), 8.0)
    depth[0, 0] = 0.0
    depth[1, 1] = np.nan
    pts = depth_to_points_cam(depth, K)
    assert pts.shape == (22, 3) and pts.dtype == np.float64
    pix, z = project_points(pts, K, np.eye(4))
    v, u = np.nonzero(np.isfinite(depth) & (depth > 0))
    np.testing.assert_allclose(pix, np.stack([u, v], axis=1), atol=1e-4)
    np.testing.assert_allclose(z, 8.0, atol=1e-5)


def test_real_frame_lidar_projects_inside_the_1242x375_image(shared_data):
    paths = sk.SequencePaths.of(shared_data / "kitti_real_frame", "00")
    calib = sk.read_calib(paths.calib)
    points = sk.read_points(paths.velodyne(0))
    image = sk.read_image(paths.image(0))
    pix, depth = project_points(points, calib.K, calib.T_cam0_velo)
    ahead = depth > 0
    assert ahead.mean() > 0.99  # the scan is cropped to the camera's field of view
    inside = fov_mask(pix, depth, image.shape[:2])
    assert inside[ahead].mean() > 0.95
    # Most points lie below the horizon row and the ground points are close (bottom of the image).
    assert np.median(pix[inside, 1]) > 0.4 * image.shape[0]


# ----------------------------------------------------------------------------------------------- grid, voxelize
def test_grid_points_to_indices_floors_and_flags_outside_points():
    grid = GridSpec.semantic_kitti()
    idx, inside = grid.points_to_indices(np.array([
        [0.0, -25.6, -2.0], [0.19, -25.41, -1.81], [51.1, 25.5, 4.3], [51.2, 0, 0], [-0.01, 0, 0], [np.nan, 0, 0],
    ]))
    assert idx[:3].tolist() == [[0, 0, 0], [0, 0, 0], [255, 255, 31]]
    assert inside.tolist() == [True, True, True, False, False, False]


def test_grid_voxel_centres_and_downsample():
    grid = GridSpec(dims=(4, 2, 2), voxel_size=0.5, origin=(1.0, -1.0, 0.0))
    centers = grid.voxel_centers()
    assert centers.shape == (16, 3)
    np.testing.assert_allclose(centers[0], [1.25, -0.75, 0.25])
    np.testing.assert_allclose(centers[-1], [1.0 + 3.5 * 0.5, -1.0 + 1.5 * 0.5, 0.75])
    half = grid.downsample(2)
    assert half.dims == (2, 1, 1) and half.voxel_size == 1.0 and half.origin == grid.origin
    with pytest.raises(ConfigError):
        grid.downsample(4)
    assert GridSpec.from_dict({"dims": [8, 8, 4]}).voxel_size == 0.2
    with pytest.raises(ConfigError, match="unknown grid keys"):
        GridSpec.from_dict({"size": 1})


def test_occupancy_from_points_marks_voxels_holding_points():
    grid = GridSpec(dims=(2, 2, 2), voxel_size=1.0, origin=(0.0, 0.0, 0.0))
    occ = occupancy_from_points(np.array([[0.5, 0.5, 0.5], [1.5, 0.2, 1.9], [5.0, 0, 0]]), grid)
    assert occ.dtype == np.uint8 and occ.sum() == 2 and occ[0, 0, 0] == 1 and occ[1, 0, 1] == 1


def test_majority_vote_voxelization_takes_the_most_frequent_label_and_ties_go_to_the_smallest():
    grid = GridSpec(dims=(2, 2, 2), voxel_size=1.0, origin=(0.0, 0.0, 0.0))
    pts = np.array([
        [0.1, 0.1, 0.1], [0.2, 0.2, 0.2], [0.3, 0.3, 0.3],  # voxel (0,0,0): 40, 40, 10 -> 40
        [1.5, 0.5, 0.5], [1.6, 0.5, 0.5],  # voxel (1,0,0): 70, 50 tie -> 50
        [0.5, 1.5, 1.5], [0.5, 1.6, 1.6], [0.5, 1.7, 1.7], [0.5, 1.8, 1.8],  # (0,1,1): 252, 252, 10, 10 -> 10
        [9.0, 0.0, 0.0],  # outside
    ])
    labels = np.array([40, 40, 10, 70, 50, 252, 252, 10, 10, 99])
    out = majority_vote_labels(pts, labels, grid)
    assert out.dtype == np.uint16
    assert out[0, 0, 0] == 40 and out[1, 0, 0] == 50 and out[0, 1, 1] == 10
    assert np.count_nonzero(out) == 3  # voxels without points stay 0
    assert not majority_vote_labels(pts[:0], labels[:0], grid).any()


# ----------------------------------------------------------------------------------------------- downsampling
def _block(values: list[int], factor: int) -> np.ndarray:
    flat = np.zeros(factor**3, dtype=np.uint8)
    flat[: len(values)] = values
    return flat.reshape(factor, factor, factor)


def _fill(counts: dict[int, int], factor: int) -> np.ndarray:
    values = [v for label, n in counts.items() for v in [label] * n]
    assert len(values) == factor**3
    return np.array(values, dtype=np.uint8).reshape(factor, factor, factor)


def test_downsample_all_empty_and_all_ignore_blocks():
    assert downsample_labels(np.zeros((2, 2, 2), np.uint8), 2).tolist() == [[[0]]]
    assert downsample_labels(np.full((2, 2, 2), 255, np.uint8), 2).tolist() == [[[255]]]


def test_downsample_mixed_empty_and_ignore_takes_the_majority():
    assert downsample_labels(_fill({0: 5, 255: 3}, 2), 2)[0, 0, 0] == 0
    assert downsample_labels(_fill({0: 3, 255: 5}, 2), 2)[0, 0, 0] == 255
    assert downsample_labels(_fill({0: 4, 255: 4}, 2), 2)[0, 0, 0] == 255  # zeros must outnumber 255s


def test_downsample_one_semantic_voxel_in_a_2_block_wins():
    assert downsample_labels(_fill({0: 6, 255: 1, 10: 1}, 2), 2)[0, 0, 0] == 10


def test_downsample_semantic_ties_go_to_the_smallest_id():
    assert downsample_labels(_fill({0: 4, 9: 2, 1: 2}, 2), 2)[0, 0, 0] == 1
    assert downsample_labels(_fill({255: 2, 13: 3, 15: 3}, 2), 2)[0, 0, 0] == 13
    assert downsample_labels(_fill({0: 2, 13: 2, 15: 4}, 2), 2)[0, 0, 0] == 15


def test_downsample_1_4_threshold_is_95_percent_of_64():
    assert downsample_labels(_fill({0: 61, 1: 3}, 4), 4)[0, 0, 0] == 0  # 61 > 60.8
    assert downsample_labels(_fill({0: 60, 1: 4}, 4), 4)[0, 0, 0] == 1
    assert downsample_labels(_fill({0: 30, 255: 31, 1: 3}, 4), 4)[0, 0, 0] == 255


def test_downsample_1_8_threshold_is_95_percent_of_512():
    assert downsample_labels(_fill({0: 487, 9: 25}, 8), 8)[0, 0, 0] == 0  # 487 > 486.4
    assert downsample_labels(_fill({0: 486, 9: 20, 11: 6}, 8), 8)[0, 0, 0] == 9


def test_downsample_keeps_blocks_apart_and_the_output_shape():
    labels = np.zeros((4, 2, 6), np.uint8)
    labels[2:, :, 2:4] = 17
    labels[0, 0, 4] = 255
    labels[:2, :, 4:] = 255
    out = downsample_labels(labels, 2)
    assert out.shape == (2, 1, 3) and out.dtype == np.uint8
    assert out.tolist() == [[[0, 0, 255]], [[0, 17, 0]]]
    full = downsample_labels(np.zeros((256, 256, 32), np.uint8), 2)
    assert full.shape == (128, 128, 16)


def test_downsample_rejects_indivisible_shapes():
    with pytest.raises(DataFormatError, match="cannot be downsampled by 2"):
        downsample_labels(np.zeros((3, 2, 2), np.uint8), 2)
