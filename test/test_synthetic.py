"""The synthetic street world: files in SemanticKITTI formats, and — more importantly — geometry that agrees
between the LiDAR, the poses, the voxel labels, the cameras and the stereo pair."""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from ssc_core.cli.make_synthetic import main as make_synthetic_main
from ssc_core.data.label_maps import SEMANTIC_KITTI
from ssc_core.data.semantic_kitti import (
    SequencePaths,
    read_calib,
    read_image,
    read_packed_bits,
    read_point_labels,
    read_points,
    read_poses,
    read_times,
    read_velo_poses,
    read_voxel_labels,
    remap_voxel_labels,
)
from ssc_core.data.synthetic import SyntheticOptions, SyntheticScene, default_calib, generate_sequence
from ssc_core.evaluation.metrics import SSCMetrics
from ssc_core.geometry.poses import transform_points

FRAMES, SEED = 20, 3
OPTIONS = SyntheticOptions.small()


@pytest.fixture(scope="module")
def sequence(tmp_path_factory) -> SequencePaths:
    """The documented test-size call: 20 frames, 320x96 images, 128x128x16 grid."""
    return generate_sequence(tmp_path_factory.mktemp("synth"), "08", frames=FRAMES, seed=SEED, options=OPTIONS)


@pytest.fixture(scope="module")
def scene() -> SyntheticScene:
    """The same world as ``sequence``, for renders the files do not hold (depth, labels per pixel)."""
    return SyntheticScene(FRAMES, SEED, OPTIONS)


def _voxels(paths: SequencePaths, frame: int, kind: str) -> np.ndarray:
    dims = OPTIONS.grid.dims
    if kind == "label":
        return read_voxel_labels(paths.voxel(frame, kind), dims)
    return read_packed_bits(paths.voxel(frame, kind), dims)


def _scan(paths: SequencePaths, frame: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    points = read_points(paths.velodyne(frame))
    semantic, instance = read_point_labels(paths.point_labels(frame), len(points))
    return points, semantic, instance


def _tree_hash(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------------ formats
def test_sequence_has_every_semantickitti_file_with_voxels_every_fifth_frame(sequence):
    assert sequence.scan_frames() == list(range(FRAMES))
    assert sequence.image_frames(2) == list(range(FRAMES)) == sequence.image_frames(3)
    assert sequence.labelled_frames() == [0, 5, 10, 15]
    for frame in sequence.labelled_frames():
        for kind in ("bin", "invalid", "occluded"):
            assert sequence.voxel(frame, kind).stat().st_size == OPTIONS.grid.num_voxels // 8
        assert sequence.voxel(frame, "label").stat().st_size == OPTIONS.grid.num_voxels * 2
    assert read_poses(sequence.poses).shape == (FRAMES, 4, 4)
    np.testing.assert_allclose(read_poses(sequence.poses)[0], np.eye(4), atol=1e-9)
    np.testing.assert_allclose(np.diff(read_times(sequence.times)), 0.1, atol=1e-6)
    image = read_image(sequence.image(0, 2))
    assert image.shape == (96, 320, 3)


def test_calib_is_kitti_like_with_a_054_m_stereo_baseline(sequence):
    calib = read_calib(sequence.calib)
    np.testing.assert_allclose(calib.T_cam0_velo, default_calib().T_cam0_velo, atol=1e-9)
    assert calib.stereo_baseline == pytest.approx(0.54, abs=1e-6)
    # Intrinsics scaled from 1226x370 to 320x96.
    assert calib.P2[0, 0] == pytest.approx(707.0912 * 320 / 1226, rel=1e-6)


def test_scan_looks_like_an_hdl64e_mounted_at_173_m(sequence):
    points, semantic, _ = _scan(sequence, 0)
    elevation = np.degrees(np.arctan2(points[:, 2], np.hypot(points[:, 0], points[:, 1])))
    assert elevation.max() == pytest.approx(2.0, abs=0.05)
    assert elevation.min() == pytest.approx(-24.8, abs=0.05)
    assert np.linalg.norm(points[:, :3], axis=1).max() <= 80.0 + 1e-3
    assert 0.0 <= points[:, 3].min() and points[:, 3].max() <= 1.0
    road = semantic == 40
    near = road & (np.hypot(points[:, 0], points[:, 1]) < 15)
    assert near.sum() > 100
    assert np.median(points[near, 2]) == pytest.approx(-1.73, abs=0.02)


def test_world_holds_every_semantickitti_class_that_a_street_has():
    scene = SyntheticScene(300, 11, SyntheticOptions.small(label_scans=0))
    prims = scene.world.primitives_at(0.0)
    sections = scene.world.street.sections
    movers = {row[4] for mover in scene.world.movers for row in mover.template}
    present = set(prims.semantic.tolist()) | movers | {40, 48} | set(sections.outer_class.ravel().tolist())
    if (sections.parking > 0).any():
        present.add(44)
    expected = {10, 11, 15, 18, 20, 30, 40, 44, 48, 49, 50, 51, 70, 71, 72, 80, 81, 252, 253, 254, 255}
    assert expected <= present
    train_ids = {SEMANTIC_KITTI.learning_map[raw] for raw in present} - {0}
    assert train_ids == set(range(1, 20))
    things = np.isin(prims.semantic, [10, 11, 15, 18, 20, 30, 252, 253, 254, 255])
    assert (prims.instance[things] > 0).all() and (prims.instance[~things] == 0).all()


# ------------------------------------------------------------------------------------------------ geometry
def test_points_fall_in_gt_voxels_of_their_own_class(sequence):
    grid = OPTIONS.grid
    for frame in sequence.labelled_frames():
        points, semantic, _ = _scan(sequence, frame)
        labels = _voxels(sequence, frame, "label")
        idx, inside = grid.points_to_indices(points)
        voxel_class = labels[tuple(idx[inside].T)]
        assert inside.sum() > 1000
        assert (voxel_class > 0).mean() > 0.99
        assert (voxel_class == semantic[inside]).mean() > 0.95


def test_points_moved_by_the_poses_into_frame_t_plus_5_land_on_occupied_voxels(sequence):
    grid = OPTIONS.grid
    poses = read_velo_poses(sequence)
    hits = []
    for frame in (0, 5, 10):
        points, semantic, _ = _scan(sequence, frame)
        static = semantic < 252
        moved = transform_points(np.linalg.inv(poses[frame + 5]) @ poses[frame], points[static])
        idx, inside = grid.points_to_indices(moved)
        assert inside.sum() > 1000
        hits.append(_voxels(sequence, frame + 5, "label")[tuple(idx[inside].T)] > 0)
        # Surfaces seen from t can be hidden from t+5 and later (e.g. a facade behind a tree): a few percent.
        assert hits[-1].mean() > 0.85
    assert np.concatenate(hits).mean() > 0.93


def test_points_projected_with_p2_tr_land_where_the_camera_sees_the_same_surface(sequence, scene):
    calib = read_calib(sequence.calib)
    w, h = OPTIONS.image_size
    for frame in (0, 10):
        points, semantic, _ = _scan(sequence, frame)
        cam = transform_points(calib.T_cam0_velo, points)[:, :3].astype(np.float64)
        uvw = cam @ calib.P2[:, :3].T + calib.P2[:, 3]
        front = uvw[:, 2] > 1.0
        u, v = np.round(uvw[front, 0] / uvw[front, 2]).astype(int), np.round(uvw[front, 1] / uvw[front, 2]).astype(int)
        inside = (u >= 0) & (u < w) & (v >= 0) & (v < h)
        assert inside.sum() > 500
        view = scene.render(frame, 2)
        assert np.array_equal(view.rgb, read_image(sequence.image(frame, 2)))
        seen = view.semantic[v[inside], u[inside]]
        depth_ok = np.abs(view.depth[v[inside], u[inside]] - uvw[front][inside, 2]) < 0.05 * uvw[front][inside, 2]
        assert (seen == semantic[front][inside]).mean() > 0.9
        assert depth_ok.mean() > 0.85


def test_sgbm_disparity_of_the_stereo_pair_matches_the_true_depth(sequence, scene):
    calib = read_calib(sequence.calib)
    sgbm = cv2.StereoSGBM_create(minDisparity=0, numDisparities=64, blockSize=5, P1=200, P2=800, uniquenessRatio=5)
    for frame in (3, 12):
        left = cv2.cvtColor(read_image(sequence.image(frame, 2)), cv2.COLOR_RGB2GRAY)
        right = cv2.cvtColor(read_image(sequence.image(frame, 3)), cv2.COLOR_RGB2GRAY)
        disparity = sgbm.compute(left, right).astype(np.float32) / 16.0
        true_depth = scene.render(frame, 2).depth
        textured = cv2.Laplacian(left, cv2.CV_32F) != 0
        valid = (disparity > 0.5) & (true_depth > 0) & (true_depth < 30) & textured
        assert valid.mean() > 0.3
        estimate = calib.P2[0, 0] * calib.stereo_baseline / disparity[valid]
        rel_error = np.abs(estimate - true_depth[valid]) / true_depth[valid]
        assert (rel_error < 0.1).mean() > 0.8


def test_invalid_is_never_set_on_an_occupied_voxel_and_occluded_hides_space_behind_surfaces(sequence):
    for frame in sequence.labelled_frames():
        occupied = _voxels(sequence, frame, "label") > 0
        invalid = _voxels(sequence, frame, "invalid").astype(bool)
        occluded = _voxels(sequence, frame, "occluded").astype(bool)
        assert not (invalid & occupied).any()
        assert 0.05 < invalid.mean() < 0.9
        # Seen from further positions, some space hidden from the current one is observed: invalid <= occluded.
        assert not (invalid & ~occluded).any()
        assert occluded.sum() > invalid.sum()
        # The sky over the road just ahead is seen from the car: the top layer there is never invalid.
        x_10m, y_3m = int(10 / OPTIONS.voxel_size), int(3.2 / OPTIONS.voxel_size)
        centre_y = OPTIONS.grid.dims[1] // 2
        assert not invalid[:x_10m, centre_y - y_3m:centre_y + y_3m, -1].any()


def test_single_scan_occupancy_is_a_subset_of_the_aggregated_labels(sequence):
    for frame in sequence.labelled_frames():
        single = _voxels(sequence, frame, "bin").astype(bool)
        assert single.sum() > 100
        assert (_voxels(sequence, frame, "label")[single] > 0).all()


def test_gt_evaluated_against_itself_gives_completion_iou_one(sequence):
    metrics = SSCMetrics(SEMANTIC_KITTI.num_classes)
    for frame in sequence.labelled_frames():
        target = remap_voxel_labels(_voxels(sequence, frame, "label"), invalid=_voxels(sequence, frame, "invalid"))
        metrics.add(target.copy(), target)
    scores = metrics.compute()
    assert scores["iou"] == pytest.approx(1.0)
    assert scores["precision"] == pytest.approx(1.0) and scores["recall"] == pytest.approx(1.0)


def test_official_protocol_scores_the_gt_files_as_predictions_perfectly(sequence, tmp_path):
    import shutil

    from ssc_core.evaluation.official import evaluate_semantic_kitti

    predictions = SequencePaths.of(tmp_path, "08")
    predictions.prediction(0).parent.mkdir(parents=True)
    for frame in sequence.labelled_frames():
        shutil.copy(sequence.voxel(frame, "label"), predictions.prediction(frame))
    result = evaluate_semantic_kitti(sequence.root, tmp_path, split="valid", dims=OPTIONS.grid.dims)
    assert result.num_frames == 4
    assert result.metrics["iou"] == pytest.approx(1.0)
    present = np.diag(result.confusion) > 0
    assert present[1:].sum() >= 10
    assert np.allclose(np.asarray(result.metrics["iou_per_class"])[present], 1.0)


# ------------------------------------------------------------------------------------------------ options
TINY = dict(image_size=(64, 32), azimuth_step_deg=2.0, label_scans=5, grid_dims=(64, 64, 8), voxel_size=0.8)


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path):
    options = SyntheticOptions.small(**TINY)
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        generate_sequence(tmp_path / name, "04", frames=6, seed=seed, options=options)
    a, b, c = (_tree_hash(tmp_path / n) for n in "abc")
    assert len(a) == 6 * 4 + 2 * 4 + 3 + 2  # frames, labelled frames, calib/poses/times, marker, grid record
    assert a == b
    assert a != c


def test_a_longer_run_repeats_a_shorter_runs_frames_and_a_shorter_rerun_leaves_only_its_files(tmp_path):
    options = SyntheticOptions.small(**TINY)
    generate_sequence(tmp_path / "short", "04", frames=3, seed=5, options=options)
    generate_sequence(tmp_path / "long", "04", frames=8, seed=5, options=options)
    short, long = _tree_hash(tmp_path / "short"), _tree_hash(tmp_path / "long")
    frame_files = {k for k in short if not k.endswith((".txt", ".ssc_synthetic", "grid.yaml"))}
    assert len(frame_files) == 3 * 4 + 4
    assert all(short[k] == long[k] for k in frame_files)
    assert (tmp_path / "long/sequences/04/poses.txt").read_text().startswith(
        (tmp_path / "short/sequences/04/poses.txt").read_text())
    paths = generate_sequence(tmp_path / "long", "04", frames=3, seed=5, options=options)
    assert paths.scan_frames() == [0, 1, 2] and paths.labelled_frames() == [0]
    assert _tree_hash(tmp_path / "long") == short
    paths = generate_sequence(tmp_path / "long", "04", frames=3, seed=6,
                              options=SyntheticOptions.small(**TINY, write_right_image=False))
    assert paths.image_frames(2) == [0, 1, 2] and paths.image_frames(3) == []


def test_range_noise_perturbs_ranges_by_its_sigma():
    clean = SyntheticScene(1, 2, SyntheticOptions.small(label_scans=0)).scan(0)
    noisy = SyntheticScene(1, 2, SyntheticOptions.small(label_scans=0, range_noise_m=0.05)).scan(0)
    assert len(clean.points_velo) == len(noisy.points_velo)
    diff = np.linalg.norm(noisy.points_velo[:, :3], axis=1) - np.linalg.norm(clean.points_velo[:, :3], axis=1)
    assert np.std(diff) == pytest.approx(0.05, rel=0.1)


def test_real_calib_and_a_sloped_real_trajectory_are_driven_through_the_world(tmp_path, shared_data):
    sequences = shared_data / "kitti_odometry_calib" / "sequences"
    calib_file, poses_file = sequences / "00" / "calib.txt", sequences / "08" / "poses.txt"
    start = 3860  # seq 08 climbs about 2 m over the next 33 m here
    options = SyntheticOptions.small(**{**TINY, "image_size": (160, 48), "azimuth_step_deg": 1.0},
                                     calib_file=str(calib_file), trajectory_file=str(poses_file),
                                     trajectory_start=start)
    paths = generate_sequence(tmp_path, "08", frames=6, seed=1, options=options)
    real = read_poses(poses_file)[start:start + 6]
    np.testing.assert_allclose(read_poses(paths.poses), np.linalg.inv(real[0])[None] @ real, atol=1e-6)
    calib = read_calib(paths.calib)
    np.testing.assert_allclose(calib.T_cam0_velo, read_calib(calib_file).T_cam0_velo, atol=1e-9)
    assert not np.allclose(calib.T_cam0_velo, default_calib().T_cam0_velo, atol=1e-4)
    grid, poses = options.grid, read_velo_poses(paths)
    labels = {f: read_voxel_labels(paths.voxel(f, "label"), grid.dims) for f in (0, 5)}
    points, semantic, _ = _scan(paths, 0)
    idx, inside = grid.points_to_indices(points)
    assert (labels[0][tuple(idx[inside].T)] == semantic[inside]).mean() > 0.9
    moved = transform_points(np.linalg.inv(poses[5]) @ poses[0], points)
    idx, inside = grid.points_to_indices(moved)
    assert (labels[5][tuple(idx[inside].T)] > 0).mean() > 0.9


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_writes_a_sequence(tmp_path, capsys):
    code = make_synthetic_main(["--output", str(tmp_path), "--sequence", "7", "--frames", "3", "--seed", "1",
                                "--small", "--image-size", "64", "32", "--azimuth-step", "2", "--grid-dims",
                                "64", "64", "8", "--voxel-size", "0.8", "--label-scans", "2", "--no-progress"])
    assert code == 0
    paths = SequencePaths.of(tmp_path, "07")
    assert paths.scan_frames() == [0, 1, 2]
    assert paths.labelled_frames() == [0]
    assert "wrote 3 frames" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--frames", "0"], "frames must be >= 1"),
        (["--trajectory", "/nonexistent/poses.txt"], "file not found"),
        (["--image-size", "8", "8"], "image_size"),
    ],
)
def test_cli_reports_bad_input_with_exit_code_2(tmp_path, capsys, argv, message):
    code = make_synthetic_main(["--output", str(tmp_path), "--small", "--no-progress", *argv])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


# ------------------------------------------------------------------------------------------------ KITTI-360
def test_kitti360_layout_has_sscbench_files_and_consistent_labels(tmp_path):
    from ssc_core.data.kitti360 import (
        Kitti360Paths,
        kitti360_calib,
        read_kitti360_invalid,
        read_kitti360_labels,
        read_kitti360_poses,
    )
    from ssc_core.data.synthetic.kitti360_writer import generate_kitti360_drive, kitti360_velodyne_path

    options = SyntheticOptions.small(**{**TINY, "image_size": (176, 47)})
    paths = generate_kitti360_drive(tmp_path, 9, frames=6, seed=2, options=options)
    assert paths == Kitti360Paths.of(tmp_path, "2013_05_28_drive_0009_sync")
    assert paths.image_frames(0) == list(range(6)) == paths.image_frames(1)
    assert paths.labelled_frames() == [0, 5]
    assert not list((paths.dir / "voxels").glob("*.occluded"))
    dims = options.grid.dims
    assert paths.voxel(0, "invalid").stat().st_size == options.grid.num_voxels
    frames, T_world_cam0 = read_kitti360_poses(paths.cam0_to_world)
    assert frames.tolist() == list(range(6))
    T_world_velo = T_world_cam0 @ kitti360_calib().T_cam0_velo[None]
    for frame in paths.labelled_frames():
        labels = read_kitti360_labels(paths.voxel(frame, "label"), dims)
        invalid = read_kitti360_invalid(paths.voxel(frame, "invalid"), dims).astype(bool)
        assert 71 not in labels
        assert not (invalid & (labels > 0)).any()
        assert invalid.mean() > 0.3
        points = read_points(kitti360_velodyne_path(paths, frame))
        moved = transform_points(np.linalg.inv(T_world_velo[frame]) @ T_world_velo[max(frame - 1, 0)],
                                 read_points(kitti360_velodyne_path(paths, max(frame - 1, 0))))
        for pts in (points, moved):
            # The lowest beam meets the ground 3.75 m out, so no aggregated (later) scan sees the ground
            # right next to the current position; beyond 30 m the 2 deg azimuth step of TINY leaves
            # 1 m gaps that other scans sample differently: compare between 5 and 30 m.
            pts = pts[(np.hypot(pts[:, 0], pts[:, 1]) > 5.0) & (np.hypot(pts[:, 0], pts[:, 1]) < 30.0)]
            idx, inside = options.grid.points_to_indices(pts)
            assert inside.sum() > 100
            assert (labels[tuple(idx[inside].T)] > 0).mean() > 0.95


def test_generator_refuses_to_overwrite_a_folder_it_did_not_write(tmp_path):
    from ssc_core.data.synthetic.generate import SYNTHETIC_MARKER
    from ssc_core.errors import ConfigError

    real = SequencePaths.of(tmp_path, "08")
    real.velodyne(0).parent.mkdir(parents=True)
    real.velodyne(0).write_bytes(b"\0" * 32)  # a "real" scan
    real.velodyne(7).write_bytes(b"\0" * 32)
    with pytest.raises(ConfigError, match="did not write"):
        generate_sequence(tmp_path, sequence="08", frames=2, seed=0, options=SyntheticOptions.small())
    assert real.velodyne(7).read_bytes() == b"\0" * 32 and not (real.dir / SYNTHETIC_MARKER).exists()


def test_the_progress_bar_counts_the_scans_simulated_and_ends_at_100_percent(tmp_path, capsys):
    options = SyntheticOptions.small(**TINY)  # 7 frames, labels at 0 and 5 aggregating 5 scans: 11 of 12 scans
    generate_sequence(tmp_path, "04", frames=7, seed=5, options=options, progress=True)
    err = capsys.readouterr().err
    assert "11/11" in err and "100%" in err and "/12" not in err
