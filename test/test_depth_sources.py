"""Depth point sources: SGBM stereo and precomputed depth/pseudo-LiDAR files become LiDAR-frame points."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

from ssc_core.data.depth_sources import (
    depth_to_points_velo,
    disparity_to_depth,
    precomputed_points,
    sgbm_disparity,
    sgbm_settings,
    stereo_sgbm_points,
)
from ssc_core.data.point_sources import get_point_source, point_source_requires
from ssc_core.data.semantic_kitti import SequencePaths, read_calib, read_points, write_points
from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.geometry.poses import transform_points
from ssc_core.types import Calib, Frame

FX, CX, CY = 700.0, 320.0, 120.0
BASELINE = 0.54


def _calib() -> Calib:
    """KITTI-like calibration: Tr is the usual axis swap (x_cam = -y_velo, y_cam = -z_velo, z_cam = x_velo)."""
    P2 = np.array([[FX, 0, CX, 45.0], [0, FX, CY, 0.0], [0, 0, 1, 0.0]])
    P3 = P2.copy()
    P3[0, 3] = 45.0 - BASELINE * FX
    Tr = np.array([[0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float64)
    return Calib(P2=P2, T_cam0_velo=Tr, P3=P3)


def _textured(h: int, w: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, size=(h // 4, w // 4, 3), dtype=np.uint8)
    return np.repeat(np.repeat(small, 4, axis=0), 4, axis=1)


def test_depth_and_sgbm_sources_are_registered_with_what_they_read():
    assert get_point_source("stereo_sgbm") is stereo_sgbm_points
    assert get_point_source("precomputed") is precomputed_points
    assert point_source_requires("stereo_sgbm") == ("image_right",)


def test_disparity_to_depth_is_baseline_times_focal_over_disparity_and_zero_where_invalid():
    depth = disparity_to_depth(np.array([[10.0, 0.0], [-1.0, 37.8]]), BASELINE, FX)
    np.testing.assert_allclose(depth, [[BASELINE * FX / 10, 0], [0, BASELINE * FX / 37.8]], rtol=1e-6)


def test_constant_depth_backprojects_to_a_plane_in_front_with_sgn_baseline_offset():
    calib = _calib()
    depth = np.full((240, 640), 10.0, dtype=np.float32)
    points = depth_to_points_velo(depth, calib)
    assert points.shape == (240 * 640, 4) and points.dtype == np.float32
    np.testing.assert_allclose(points[:, 0], 10.0, atol=1e-4)  # z_cam = x_velo = depth
    np.testing.assert_array_equal(points[:, 3], 1.0)
    # The principal point lands at x_cam = P2[0,3] / -fx, i.e. y_velo = -x_cam.
    centre = points[int(CY) * 640 + int(CX)]
    np.testing.assert_allclose(centre[:3], [10.0, 45.0 / FX, 0.0], atol=1e-4)


def test_backprojection_filters_behind_and_too_high_and_too_far_and_subsamples_by_stride():
    calib = _calib()
    depth = np.full((240, 640), 10.0, dtype=np.float32)
    depth[:10] = 200.0  # rows near the top at 200 m rise ~ (120 - v) / 700 * 200 > 30 m
    every = depth_to_points_velo(depth, calib)
    assert len(every) == 240 * 640
    low = depth_to_points_velo(depth, calib, max_height=30.0)
    assert 0 < len(low) < len(every) and low[:, 2].max() < 30.0
    near = depth_to_points_velo(depth, calib, max_depth=50.0)
    assert len(near) == 230 * 640
    strided = depth_to_points_velo(depth, calib, stride=4)
    assert len(strided) == 60 * 160


def test_sgbm_recovers_a_known_constant_disparity():
    left = _textured(240, 640)
    shift = 24
    right = np.roll(left, -shift, axis=1)  # a point at left column u sits at u - shift in the right image
    disparity = sgbm_disparity(left, right, sgbm_settings({"sgbm": {"num_disparities": 64}}))
    valid = disparity[:, 80:-80] > 0
    assert valid.mean() > 0.8
    assert np.median(disparity[:, 80:-80][valid]) == pytest.approx(shift, abs=0.5)


def test_stereo_sgbm_source_puts_points_at_stereo_depth_in_the_lidar_frame():
    left = _textured(240, 640, seed=1)
    shift = 32
    frame = Frame(stamp_ns=0, image_left=left, image_right=np.roll(left, -shift, axis=1), calib=_calib(), index=3)
    cfg = {"points": {"source": "stereo_sgbm", "sgbm": {"num_disparities": 64}}}
    points = stereo_sgbm_points(frame, cfg)
    assert points.dtype == np.float32 and points.shape[1] == 4 and len(points) > 0.5 * 240 * 640
    assert np.median(points[:, 0]) == pytest.approx(BASELINE * FX / shift, rel=0.03)  # x_velo = depth
    strided = stereo_sgbm_points(frame, {"points": {"source": "stereo_sgbm", "stride": 2,
                                                    "sgbm": {"num_disparities": 64}}})
    assert len(strided) < 0.3 * len(points)


def test_stereo_sgbm_without_right_image_or_p3_fails_with_a_clear_error():
    frame = Frame(stamp_ns=0, image_left=_textured(64, 128), calib=_calib(), index=7)
    with pytest.raises(DataFormatError, match="frame 7.*right image"):
        stereo_sgbm_points(frame, {"points": {"source": "stereo_sgbm"}})
    no_p3 = Calib(P2=_calib().P2, T_cam0_velo=_calib().T_cam0_velo)
    frame = Frame(stamp_ns=0, image_left=_textured(64, 128), image_right=_textured(64, 128), calib=no_p3, index=7)
    with pytest.raises(DataFormatError, match="P3"):
        stereo_sgbm_points(frame, {"points": {"source": "stereo_sgbm"}})


def test_bad_sgbm_settings_are_config_errors_naming_the_key():
    with pytest.raises(ConfigError, match="num_disparities"):
        sgbm_settings({"sgbm": {"num_disparities": 100}})
    with pytest.raises(ConfigError, match="blocksize"):
        sgbm_settings({"sgbm": {"blocksize": 5}})
    with pytest.raises(ConfigError, match="stride"):
        stereo_sgbm_points(Frame(0, _textured(8, 8), _calib()), {"points": {"stride": 0}})


def test_precomputed_reads_npy_depth_and_bin_pseudo_lidar_from_the_original_layout(tmp_path):
    calib = _calib()
    depth = np.full((48, 64), 8.0, dtype=np.float32)
    folder = tmp_path / "sequences_msnet3d_depth"
    (folder / "sequences" / "08").mkdir(parents=True)
    np.save(folder / "sequences" / "08" / "000005.npy", depth)
    frame = Frame(stamp_ns=0, image_left=_textured(48, 64), calib=calib, index=5)
    cfg = {"points": {"source": "precomputed", "folder": "sequences_msnet3d_depth", "format": "npy",
                      "root": str(tmp_path), "sequence": "08"}}
    np.testing.assert_allclose(precomputed_points(frame, cfg), depth_to_points_velo(depth, calib))

    cloud = np.array([[5.0, 1.0, -1.0, 1.0], [20.0, -3.0, 0.5, 1.0]], dtype=np.float32)
    write_points(tmp_path / "lidar" / "sequences" / "08" / "000005.bin", cloud)
    cfg_bin = {"points": {"source": "precomputed", "folder": str(tmp_path / "lidar"), "format": "bin",
                          "sequence": "08"}}
    np.testing.assert_array_equal(precomputed_points(frame, cfg_bin), cloud)


def test_precomputed_prefers_the_frames_own_depth_and_reports_missing_files_and_keys(tmp_path):
    calib = _calib()
    depth = np.full((48, 64), 6.0, dtype=np.float32)
    frame = Frame(stamp_ns=0, image_left=_textured(48, 64), calib=calib, depth=depth, index=1)
    np.testing.assert_allclose(precomputed_points(frame, {"points": {"source": "precomputed"}}),
                               depth_to_points_velo(depth, calib))
    frame.depth = None
    cfg = {"points": {"source": "precomputed", "folder": str(tmp_path), "sequence": "00"}}
    with pytest.raises(DataFormatError, match="000001.npy"):
        precomputed_points(frame, cfg)
    with pytest.raises(ConfigError, match="folder"):
        precomputed_points(frame, {"points": {"source": "precomputed", "sequence": "00"}})
    with pytest.raises(ConfigError, match="format"):
        precomputed_points(frame, {"points": {**cfg["points"], "format": "png"}})
    bad = tmp_path / "sequences" / "00" / "000001.npy"
    bad.parent.mkdir(parents=True)
    np.save(bad, np.zeros((2, 2, 2), np.float32))
    with pytest.raises(DataFormatError, match="2-D"):
        precomputed_points(frame, cfg)


def test_real_kitti_lidar_depth_map_backprojects_onto_the_real_scan(shared_data):
    """Render the real scan into a sparse depth map of image_2 with SGN's convention, back-project it, and find
    the original points again (pixel rounding only costs centimetres)."""
    paths = SequencePaths.of(shared_data / "kitti_real_frame", "00")
    calib = read_calib(paths.calib)
    scan = read_points(paths.velodyne(0))
    K = calib.K
    b_x = calib.P2[0, 3] / -K[0, 0]
    cam = transform_points(calib.T_cam0_velo, scan)[:, :3].astype(np.float64)
    cam = cam[cam[:, 2] > 1.0]
    u = np.round(K[0, 0] * (cam[:, 0] - b_x) / cam[:, 2] + K[0, 2]).astype(int)
    v = np.round(K[1, 1] * cam[:, 1] / cam[:, 2] + K[1, 2]).astype(int)
    h, w = 375, 1242
    inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    depth = np.zeros((h, w), np.float32)
    depth[v[inside], u[inside]] = cam[inside, 2]
    frame = Frame(stamp_ns=0, image_left=np.zeros((h, w, 3), np.uint8), calib=calib, depth=depth, index=0)
    points = precomputed_points(frame, {"points": {"source": "precomputed"}})
    assert len(points) > 10000
    dist, _ = cKDTree(scan[:, :3]).query(points[:, :3])
    assert np.median(dist) < 0.05
    assert np.percentile(dist, 95) < 0.25
    # The back-projected cloud sits in front of the car, as the scan does.
    assert points[:, 0].min() >= 0


def test_sgbm_pseudo_lidar_of_the_synthetic_stereo_pair_lies_on_the_simulated_scan(tmp_path):
    """The synthetic world renders a rectified image_2/image_3 pair and a LiDAR scan of the same instant: SGBM
    points within 20 m land on the scanned surfaces (measured median distance to the nearest LiDAR point
    0.17 m on seed 0, where the scan itself is 0.8 degrees sparse)."""
    from ssc_core.data.datasets import build_frame
    from ssc_core.data.synthetic import SyntheticOptions, generate_sequence

    paths = generate_sequence(tmp_path, sequence="00", frames=1, seed=0,
                              options=SyntheticOptions.small(label_scans=1))
    frame = build_frame(paths, 0, load_points=True, load_right=True)
    points = stereo_sgbm_points(frame, {"points": {"source": "stereo_sgbm", "sgbm": {"num_disparities": 64}}})
    near = points[points[:, 0] < 20.0]
    assert len(near) > 5000
    dist, _ = cKDTree(frame.points_velo[:, :3]).query(near[:, :3])
    assert np.median(dist) < 0.35
