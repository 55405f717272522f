"""The data layer above the file formats: point sources, window_to_sample/collate, and the torch Datasets.

Most tests run on a tiny SemanticKITTI-layout sequence written here with the semantic_kitti writers (8x8x4 grid,
20x30 images, 12 scans driving 1 m per frame along the LiDAR x axis); one runs on the real KITTI frame.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ssc_core.config import load_config
from ssc_core.data import kitti360 as k360
from ssc_core.data import semantic_kitti as sk
from ssc_core.data.datasets import (
    Kitti360Dataset,
    SemanticKittiDataset,
    build_dataset,
    build_frame,
    history_indices,
    load_sequence_info,
    resolve_sequences,
)
from ssc_core.data.point_sources import (
    get_point_source,
    point_source_requires,
    register_point_source,
)
from ssc_core.data.transforms import IMAGENET_MEAN, IMAGENET_STD, collate, crop_or_pad, window_to_sample
from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.geometry.poses import rotation_z
from ssc_core.geometry.projection import fov_mask, project_points
from ssc_core.types import Calib, Frame, FrameWindow

GRID = {"dims": [8, 8, 4], "voxel_size": 0.5, "origin": [0.0, -2.0, -1.0]}
IMAGE_HW = (20, 30)
NUM_SCANS = 12
LABELLED = (0, 5, 10)
# KITTI's axis change: velodyne x forward, y left, z up -> camera x right, y down, z forward.
R_CAM_VELO = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
WORLD_POINT_VELO0 = np.array([20.0, 1.0, 0.5])


def _tiny_calib() -> Calib:
    P2 = np.array([[50.0, 0.0, 15.0, 2.0], [0.0, 50.0, 10.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
    P3 = P2.copy()
    P3[0, 3] = -25.0  # 0.5 m baseline at fx = 50 (P2[0,3] - P3[0,3]) / fx
    Tr = np.eye(4)
    Tr[:3, :3] = R_CAM_VELO
    Tr[:3, 3] = [0.01, -0.05, -0.2]
    return Calib(P2=P2, T_cam0_velo=Tr, P3=P3)


def _frame_colour(i: int) -> np.ndarray:
    return np.array([10 * i, 255 - 10 * i, 7 * i], dtype=np.uint8)


def _raw_labels(frame: int) -> np.ndarray:
    raw = np.zeros(GRID["dims"], dtype=np.uint16)
    raw[0] = 10  # car -> 1
    raw[1] = 52  # other-structure -> 255
    raw[2] = 40  # road -> 9
    raw[3, 0, 0] = 252  # moving car -> 1
    raw[4] = frame  # 0 -> 0, 5 -> 255 (unknown id), 10 -> 1
    return raw


def _invalid() -> np.ndarray:
    invalid = np.zeros(GRID["dims"], dtype=np.uint8)
    invalid[7, 7, :] = 1
    return invalid


def write_tiny_sequence(root, sequence: str = "08", num_scans: int = NUM_SCANS, labelled=LABELLED) -> sk.SequencePaths:
    """A SemanticKITTI sequence: frame i's LiDAR sits at x = i m in the frame of scan 0 (yawed slightly)."""
    paths = sk.SequencePaths.of(root, sequence)
    calib = _tiny_calib()
    sk.write_calib(paths.calib, calib)
    poses_velo = np.stack([_velo_pose(i) for i in range(num_scans)])
    sk.write_poses(paths.poses, sk.poses_velo_to_cam0(poses_velo, calib.T_cam0_velo))
    sk.write_times(paths.times, np.arange(num_scans) * 0.1 + 0.05)
    for i in range(num_scans):
        sk.write_image(paths.image(i, 2), np.broadcast_to(_frame_colour(i), (*IMAGE_HW, 3)).copy())
        sk.write_image(paths.image(i, 3), np.broadcast_to(_frame_colour(i)[::-1], (*IMAGE_HW, 3)).copy())
        # One static world point seen from scan i, plus one point at the sensor.
        world_in_i = np.linalg.inv(poses_velo[i]) @ np.append(WORLD_POINT_VELO0, 1.0)
        sk.write_points(paths.velodyne(i), np.array([[*world_in_i[:3], 0.5], [0.0, 0.0, 0.0, 0.25]], np.float32))
    for i in labelled:
        sk.write_voxel_labels(paths.voxel(i, "label"), _raw_labels(i))
        sk.write_packed_bits(paths.voxel(i, "invalid"), _invalid())
        sk.write_packed_bits(paths.voxel(i, "bin"), np.zeros(GRID["dims"], np.uint8))
    return paths


def _velo_pose(i: int) -> np.ndarray:
    T = rotation_z(0.01 * i)
    T[0, 3] = float(i)
    return T


def _cfg(**overrides) -> dict:
    cfg = {"grid": GRID, "image_crop": list(IMAGE_HW), "history_offsets": [], "points": {"source": "none"}}
    cfg.update(overrides)
    return cfg


def _denormalise(img_chw: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (img_chw * std + mean) * 255.0


@pytest.fixture
def tiny_root(tmp_path):
    write_tiny_sequence(tmp_path, "08")
    return tmp_path


# ------------------------------------------------------------------------------------------- point sources
def test_lidar_point_source_returns_the_frames_scan_and_none_returns_nothing():
    pts = np.array([[1, 2, 3, 0.5]], np.float32)
    frame = Frame(stamp_ns=0, image_left=np.zeros((2, 2, 3), np.uint8), calib=_tiny_calib(), points_velo=pts)
    np.testing.assert_array_equal(get_point_source("lidar")(frame, {}), pts)
    assert get_point_source("none")(frame, {}).shape == (0, 4)
    assert point_source_requires("lidar") == ("points_velo",)


def test_lidar_point_source_without_points_raises_data_format_error():
    frame = Frame(stamp_ns=0, image_left=np.zeros((2, 2, 3), np.uint8), calib=_tiny_calib(), index=7)
    with pytest.raises(DataFormatError, match="frame 7.*points_velo"):
        get_point_source("lidar")(frame, {})


def test_unknown_point_source_is_a_config_error_listing_known_names():
    with pytest.raises(ConfigError, match="lidar"):
        get_point_source("no_such_source")
    with pytest.raises(ConfigError, match="unknown required"):
        register_point_source("bad", lambda f, c: None, requires=("colour",))


# ------------------------------------------------------------------------------------------- transforms
def test_crop_or_pad_crops_top_left_and_zero_pads_bottom_right():
    img = torch.arange(2 * 4 * 5, dtype=torch.float32).view(2, 4, 5) + 1
    out = crop_or_pad(img, (3, 7))
    assert out.shape == (2, 3, 7)
    torch.testing.assert_close(out[:, :, :5], img[:, :3, :])
    assert torch.all(out[:, :, 5:] == 0)


def _window(n_hist: int = 2, hw=(6, 9)) -> FrameWindow:
    calib = _tiny_calib()
    frames = [
        Frame(stamp_ns=100 + i, image_left=np.full((*hw, 3), 10 * i, np.uint8), calib=calib,
              T_odom_velo=_velo_pose(i), index=i, points_velo=np.array([[5.0, 0.0, 0.0, 1.0]], np.float32))
        for i in range(n_hist + 1)
    ]
    return FrameWindow.from_frames(frames[-1], frames[:-1])


def test_window_to_sample_orders_frames_oldest_first_and_current_last():
    sample = window_to_sample(_window(2), {"image_crop": None})
    assert sample["img"].shape == (3, 3, 6, 9) and sample["img"].dtype == torch.float32
    means = _denormalise(sample["img"]).mean(dim=(1, 2, 3))
    torch.testing.assert_close(means, torch.tensor([0.0, 10.0, 20.0]), atol=1e-3, rtol=0)
    assert sample["stamp_ns"] == 102 and sample["frame_index"] == 2
    assert sample["image_hw"].tolist() == [6, 9] and sample["image_hw"].dtype == torch.int64
    assert "points" not in sample


def test_window_to_sample_T_cam_velo_maps_current_points_into_each_frames_camera():
    window = _window(2)
    sample = window_to_sample(window, {})
    Tr = window.current.calib.T_cam0_velo
    np.testing.assert_allclose(sample["T_cam_velo"][-1].numpy(), Tr, atol=1e-6)
    p_cur = np.array([7.0, 1.5, -0.5, 1.0])
    for f, frame in enumerate(window.frames):
        # The same world point expressed in frame f's LiDAR frame, then camera 0.
        p_world = window.current.T_odom_velo @ p_cur
        expected = Tr @ np.linalg.inv(frame.T_odom_velo) @ p_world
        np.testing.assert_allclose(sample["T_cam_velo"][f].double().numpy() @ p_cur, expected, atol=1e-5)
    np.testing.assert_allclose(sample["K"][0].numpy(), window.current.calib.P2[:, :3], atol=1e-6)


def test_window_to_sample_moves_points_of_all_frames_into_the_current_lidar_frame():
    window = _window(2)
    sample = window_to_sample(window, {"points": {"source": "lidar"}})
    pts = sample["points"].numpy()
    assert pts.shape == (3, 4) and pts.dtype == np.float32
    for f, frame in enumerate(window.frames):
        T_cur_f = np.linalg.inv(window.current.T_odom_velo) @ frame.T_odom_velo
        np.testing.assert_allclose(pts[f, :3], (T_cur_f @ np.array([5.0, 0, 0, 1]))[:3], atol=1e-5)
    assert np.all(pts[:, 3] == 1.0)


def test_window_to_sample_drops_non_finite_points_and_logs_the_count(caplog):
    window = _window(0)
    window.current.points_velo = np.array([[1, 2, 3, 0], [np.nan, 0, 0, 0], [0, np.inf, 0, 0]], np.float32)
    with caplog.at_level(logging.DEBUG, logger="ssc_core.data.transforms"):
        sample = window_to_sample(window, {"points": {"source": "lidar"}})
    assert sample["points"].shape == (1, 4)
    assert "dropped 2 non-finite points" in caplog.text


@pytest.mark.parametrize("bad", ["nan", "scaled"])
def test_window_to_sample_rejects_non_finite_or_non_rigid_history_pose(bad):
    window = _window(1)
    T = window.T_cur_hist[0].copy()
    if bad == "nan":
        T[0, 3] = np.nan
    else:
        T[:3, :3] *= 1.1
    window.T_cur_hist[0] = T
    with pytest.raises(DataFormatError, match="T_cur_hist"):
        window_to_sample(window, {})


def test_window_to_sample_rejects_images_that_are_not_uint8_rgb():
    window = _window(0)
    window.current.image_left = np.zeros((6, 9), np.uint8)
    with pytest.raises(DataFormatError, match="image_left"):
        window_to_sample(window, {})


def test_window_to_sample_rejects_a_malformed_image_crop():
    with pytest.raises(ConfigError, match="image_crop"):
        window_to_sample(_window(0), {"image_crop": [370]})


def test_collate_stacks_tensors_and_prefixes_points_with_the_batch_index():
    s0 = window_to_sample(_window(1), {"points": {"source": "lidar"}})
    s1 = window_to_sample(_window(1), {"points": {"source": "lidar"}})
    s1["points"] = s1["points"][:1]
    batch = collate([s0, s1])
    assert batch["img"].shape == (2, 2, 3, 6, 9)
    assert batch["T_cam_velo"].shape == (2, 2, 4, 4)
    assert batch["points"].shape == (3, 5)
    assert batch["points"][:, 0].tolist() == [0.0, 0.0, 1.0]
    torch.testing.assert_close(batch["points"][2, 1:], s1["points"][0])
    assert batch["stamp_ns"] == [101, 101]


def test_collate_rejects_samples_of_different_shapes():
    s0 = window_to_sample(_window(1), {})
    s1 = window_to_sample(_window(2), {})
    with pytest.raises(DataFormatError, match="'img'"):
        collate([s0, s1])


# ------------------------------------------------------------------------------------------- datasets
def test_resolve_sequences_uses_the_official_splits_and_explicit_overrides():
    from ssc_core.data.datasets import SEMANTIC_KITTI_SPLITS as splits

    assert resolve_sequences("train", None, {}, splits) == ["00", "01", "02", "03", "04", "05", "06", "07", "09", "10"]
    assert resolve_sequences("valid", None, {}, splits) == ["08"]
    assert resolve_sequences("val", None, {}, splits) == ["08"]
    assert resolve_sequences("test", None, {}, splits) == [str(i) for i in range(11, 22)]
    assert resolve_sequences(None, [8, "3"], {}, splits) == ["08", "03"]
    assert resolve_sequences("valid", None, {"splits": {"valid": [4]}}, splits) == ["04"]
    with pytest.raises(ConfigError, match="unknown split"):
        resolve_sequences("dev", None, {}, splits)


def test_history_indices_reuse_the_current_frame_outside_the_sequence():
    assert history_indices(0, [-12, -9, -6, -3], 100) == [0, 0, 0, 0]
    assert history_indices(10, [-12, -9, -6, -3], 100) == [10, 1, 4, 7]
    assert history_indices(99, [-3, 2], 100) == [96, 99]


def test_dataset_lists_only_labelled_frames_in_order(tiny_root):
    write_tiny_sequence(tiny_root, "04", num_scans=7, labelled=(5, 0))
    ds = SemanticKittiDataset(tiny_root, cfg=_cfg(), sequences=["08", 4])
    assert ds.items == [("08", 0), ("08", 5), ("08", 10), ("04", 0), ("04", 5)]
    assert len(ds) == 5


def test_dataset_sample_has_contract_keys_shapes_and_dtypes(tiny_root):
    ds = SemanticKittiDataset(tiny_root, "valid", _cfg(history_offsets=[-3, -1], image_crop=[16, 32]))
    sample = ds[1]
    assert sample["img"].shape == (3, 3, 16, 32)
    assert sample["K"].shape == (3, 3, 3) and sample["K"].dtype == torch.float32
    assert sample["T_cam_velo"].shape == (3, 4, 4) and sample["T_cam_velo"].dtype == torch.float32
    assert sample["image_hw"].tolist() == [16, 32]
    assert sample["target"].shape == (8, 8, 4) and sample["target"].dtype == torch.int64
    assert sample["target_1_2"].shape == (4, 4, 2) and sample["target_1_2"].dtype == torch.int64
    assert sample["sequence"] == "08" and sample["frame"] == 5 and sample["frame_index"] == 5
    assert sample["stamp_ns"] == 550_000_000
    # Cropped rows 16..19 are gone; padded columns 30, 31 are zero (after normalisation).
    assert torch.all(sample["img"][..., 30:] == 0) and not torch.all(sample["img"][..., 29] == 0)


def test_dataset_history_frames_come_from_the_offsets_oldest_first(tiny_root):
    ds = SemanticKittiDataset(tiny_root, "valid", _cfg(history_offsets=[-3, -1]))
    sample = ds[2]  # frame 10 -> history 7, 9, current 10
    colours = _denormalise(sample["img"]).mean(dim=(2, 3))
    expected = torch.tensor(np.stack([_frame_colour(i) for i in (7, 9, 10)]), dtype=torch.float32)
    torch.testing.assert_close(colours, expected, atol=1e-3, rtol=0)
    # frame 0: offsets fall before the sequence start, so the current frame is reused with identity motion.
    first = ds[0]
    for f in range(3):
        torch.testing.assert_close(first["T_cam_velo"][f], first["T_cam_velo"][-1])


def test_dataset_history_poses_project_a_static_world_point_consistently(tiny_root):
    ds = SemanticKittiDataset(tiny_root, "valid", _cfg(history_offsets=[-4, -2]))
    sample = ds[2]
    calib = _tiny_calib()
    p_cur = np.linalg.inv(_velo_pose(10)) @ np.append(WORLD_POINT_VELO0, 1.0)
    for f, hist in enumerate((6, 8, 10)):
        p_hist = np.linalg.inv(_velo_pose(hist)) @ np.append(WORLD_POINT_VELO0, 1.0)
        expected_pix, _ = project_points(p_hist[None, :3], calib.K, calib.T_cam0_velo)
        got_pix, depth = project_points(p_cur[None, :3], sample["K"][f].numpy(), sample["T_cam_velo"][f].numpy())
        np.testing.assert_allclose(got_pix, expected_pix, atol=1e-3)
        assert depth[0] > 0


def test_dataset_targets_are_remapped_with_invalid_voxels_ignored(tiny_root):
    ds = SemanticKittiDataset(tiny_root, "valid", _cfg())
    target = ds[0]["target"].numpy()
    assert np.all(target[0, :7] == 1) and np.all(target[1, :7] == 255) and np.all(target[2, :7] == 9)
    assert target[3, 0, 0] == 1 and target[3, 1, 0] == 0
    assert np.all(target[7, 7] == 255)  # invalid
    assert np.all(ds[1]["target"].numpy()[4, :7] == 255)  # raw 5 is not in the learning map
    assert np.all(ds[2]["target"].numpy()[4, :7] == 1)  # raw 10 = car
    t12 = ds[0]["target_1_2"].numpy()
    assert t12[0, 0, 0] == 1 and t12[0, 0, 1] == 1  # x 0..1: 4 car + 4 ignore is not >95% empty/ignore -> car
    assert t12[1, 0, 0] == 9  # x 2..3: road (4 voxels) beats one moving car


def test_dataset_points_come_from_every_frame_in_the_current_lidar_frame(tiny_root):
    ds = SemanticKittiDataset(tiny_root, "valid", _cfg(history_offsets=[-3], points={"source": "lidar"}))
    pts = ds[2]["points"].numpy()
    assert pts.shape == (4, 4)
    world_in_cur = (np.linalg.inv(_velo_pose(10)) @ np.append(WORLD_POINT_VELO0, 1.0))[:3]
    np.testing.assert_allclose(pts[pts[:, 3] == 0.5, :3], np.stack([world_in_cur] * 2), atol=1e-4)
    # The sensor origin of frame 7 lands 3 m behind the current sensor (slightly rotated).
    origin_7 = (np.linalg.inv(_velo_pose(10)) @ _velo_pose(7) @ np.array([0, 0, 0, 1.0]))[:3]
    np.testing.assert_allclose(pts[1, :3], origin_7, atol=1e-4)


def test_dataset_right_images_and_baseline_when_asked(tiny_root):
    ds = SemanticKittiDataset(tiny_root, "valid", _cfg(use_right_image=True))
    sample = ds[0]
    assert sample["img_right"].shape == sample["img"].shape
    torch.testing.assert_close(_denormalise(sample["img_right"]).mean(dim=(2, 3))[0],
                               torch.tensor(_frame_colour(0)[::-1].astype(np.float32)), atol=1e-3, rtol=0)
    torch.testing.assert_close(sample["stereo_baseline"], torch.tensor([0.54]), atol=1e-6, rtol=0)


def test_dataset_loads_what_the_point_source_requires_and_tells_it_root_and_sequence(tiny_root):
    seen = []

    def recording_source(frame, cfg):
        seen.append((frame.index, frame.points_velo is None, frame.image_right is None, dict(cfg["points"])))
        return np.zeros((0, 4), np.float32)

    register_point_source("test_recording", recording_source, requires=("image_right",))
    ds = SemanticKittiDataset(tiny_root, "valid", _cfg(history_offsets=[-2], points={"source": "test_recording",
                                                                                      "option": 3}))
    assert ds[1]["points"].shape == (0, 4)
    assert [s[:3] for s in seen] == [(3, True, False), (5, True, False)]  # no scans read, right images read
    assert seen[0][3] == {"source": "test_recording", "option": 3, "root": str(tiny_root), "sequence": "08"}
    assert "root" not in ds.cfg["points"]  # the dataset's own cfg is left alone


def test_dataset_batches_through_a_dataloader_with_collate(tiny_root):
    ds = SemanticKittiDataset(tiny_root, "valid", _cfg(history_offsets=[-1], points={"source": "lidar"}))
    batch = next(iter(DataLoader(ds, batch_size=2, collate_fn=collate)))
    assert batch["img"].shape == (2, 2, 3, *IMAGE_HW)
    assert batch["target"].shape == (2, 8, 8, 4)
    assert batch["points"].shape == (8, 5) and set(batch["points"][:, 0].tolist()) == {0.0, 1.0}
    assert batch["sequence"] == ["08", "08"] and batch["frame"] == [0, 5]


def test_dataset_without_labels_yields_voxel_input_frames_without_targets(tiny_root):
    ds = SemanticKittiDataset(tiny_root, "valid", _cfg(), with_labels=False)
    assert [f for _, f in ds.items] == list(LABELLED)
    assert "target" not in ds[0]


def test_dataset_accepts_the_official_dataset_folder_and_the_shipped_config(tmp_path):
    write_tiny_sequence(tmp_path / "dataset", "08")
    data_cfg = load_config("config/data/semantic_kitti.yaml", {"data": {"grid": GRID}})["data"]
    ds = SemanticKittiDataset(tmp_path, "valid", data_cfg)
    assert ds[0]["img"].shape == (1, 3, 370, 1220)  # 20x30 images zero-padded to the SGN crop


def test_dataset_missing_invalid_file_names_the_file(tiny_root):
    sk.SequencePaths.of(tiny_root, "08").voxel(5, "invalid").unlink()
    ds = SemanticKittiDataset(tiny_root, "valid", _cfg())
    with pytest.raises(DataFormatError, match=r"000005\.invalid"):
        ds[1]


def test_dataset_truncated_voxel_label_names_the_file(tiny_root):
    path = sk.SequencePaths.of(tiny_root, "08").voxel(0, "label")
    path.write_bytes(path.read_bytes()[:-2])
    ds = SemanticKittiDataset(tiny_root, "valid", _cfg())
    with pytest.raises(DataFormatError, match=r"000000\.label"):
        ds[0]


def test_dataset_pose_count_mismatch_is_reported_at_construction(tiny_root):
    paths = sk.SequencePaths.of(tiny_root, "08")
    paths.poses.write_text("\n".join(paths.poses.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(DataFormatError, match=r"poses\.txt.*11 poses for 12 scans"):
        SemanticKittiDataset(tiny_root, "valid", _cfg())


def test_dataset_times_count_mismatch_is_reported(tiny_root):
    paths = sk.SequencePaths.of(tiny_root, "08")
    paths.times.write_text("0.0\n0.1\n")
    with pytest.raises(DataFormatError, match=r"times\.txt: 2 times for 12"):
        load_sequence_info(paths)


def test_dataset_history_without_poses_is_an_error_but_single_frame_works(tiny_root):
    sk.SequencePaths.of(tiny_root, "08").poses.unlink()
    assert SemanticKittiDataset(tiny_root, "valid", _cfg())[0]["T_cam_velo"].shape == (1, 4, 4)
    with pytest.raises(DataFormatError, match=r"poses\.txt: file not found"):
        SemanticKittiDataset(tiny_root, "valid", _cfg(history_offsets=[-1]))


def test_dataset_bad_root_and_empty_split_are_clear_errors(tmp_path, tiny_root):
    with pytest.raises(DataFormatError, match="no sequences/"):
        SemanticKittiDataset(tmp_path / "nowhere", "valid", _cfg())
    with pytest.raises(DataFormatError, match="sequence folder not found"):
        SemanticKittiDataset(tiny_root, "train", _cfg())
    with pytest.raises(ConfigError, match="history_offsets"):
        SemanticKittiDataset(tiny_root, "valid", _cfg(history_offsets=[3]))


def test_build_frame_loads_one_frame_with_pose_stamp_and_optional_files(tiny_root):
    paths = sk.SequencePaths.of(tiny_root, "08")
    frame = build_frame(paths, 3)
    assert frame.image_left.shape == (*IMAGE_HW, 3) and frame.image_left.dtype == np.uint8
    assert frame.image_right is not None and frame.points_velo.shape == (2, 4)
    assert frame.stamp_ns == 350_000_000 and frame.index == 3
    np.testing.assert_allclose(frame.T_odom_velo, _velo_pose(3), atol=1e-9)
    lean = build_frame(paths, 3, load_points=False, load_right=False)
    assert lean.points_velo is None and lean.image_right is None
    paths.image(3, 3).unlink()
    with pytest.raises(DataFormatError, match=r"image_3/000003\.png"):
        build_frame(paths, 3, load_right=True)
    with pytest.raises(DataFormatError, match="frame 12 is not in the sequence"):
        build_frame(paths, 12)


def test_build_frame_on_the_real_kitti_frame_projects_its_lidar_into_the_crop(shared_data):
    paths = sk.SequencePaths.of(shared_data / "kitti_real_frame", "00")
    frame = build_frame(paths, 0)
    assert frame.image_left.shape == (375, 1242, 3)
    assert frame.points_velo.shape == (17238, 4)
    sample = window_to_sample(FrameWindow(frame), {"image_crop": [370, 1220], "points": {"source": "lidar"}})
    assert sample["img"].shape == (1, 3, 370, 1220)
    pix, depth = project_points(sample["points"].numpy(), sample["K"][0].numpy(), sample["T_cam_velo"][0].numpy())
    inside = fov_mask(pix, depth, (370, 1220))
    assert inside.mean() > 0.9


# ------------------------------------------------------------------------------------------- KITTI-360
K360_DRIVE = "2013_05_28_drive_0009_sync"


def write_tiny_kitti360_drive(root, num_frames: int = 8, labelled=(0, 5), pose_frames=(0, 1, 2, 3, 5, 6, 7)):
    """An SSCBench-KITTI-360 drive: images, one-byte .invalid voxels, and cam0_to_world.txt poses for
    ``pose_frames`` (frame 4 has none) with the LiDAR at x = i m."""
    paths = k360.Kitti360Paths.of(root, 9)
    calib = k360.kitti360_calib()
    for i in range(num_frames):
        sk.write_image(paths.image(i, 0), np.broadcast_to(_frame_colour(i), (*IMAGE_HW, 3)).copy())
    T_world_cam0 = np.stack([_velo_pose(i) @ np.linalg.inv(calib.T_cam0_velo) for i in pose_frames])
    k360.write_kitti360_poses(paths.cam0_to_world, np.array(pose_frames), T_world_cam0)
    for i in labelled:
        raw = np.zeros(GRID["dims"], np.uint16)
        raw[0] = 52  # other-structure: scored in KITTI-360 (17)
        raw[1] = 99  # other-object (18)
        raw[2] = 71  # trunk: not a KITTI-360 class -> 255
        raw[3, :, :] = 10
        invalid = np.zeros(GRID["dims"], np.uint8)
        invalid[3, 0, 0] = 1  # labelled voxel: invalid is ignored there
        invalid[5, 0, 0] = 1  # empty voxel: ignored
        k360.write_kitti360_labels(paths.voxel(i, "label"), raw)
        k360.write_kitti360_invalid(paths.voxel(i, "invalid"), invalid)
    return paths


def _k360_cfg(**overrides) -> dict:
    cfg = load_config("config/data/kitti360.yaml", {"data": {"grid": GRID, "image_crop": list(IMAGE_HW)}})["data"]
    cfg.update(overrides)
    return cfg


def test_kitti360_dataset_targets_follow_sscbench_rules(tmp_path):
    write_tiny_kitti360_drive(tmp_path)
    ds = Kitti360Dataset(tmp_path, "test", _k360_cfg())
    assert ds.sequences == [K360_DRIVE] and [f for _, f in ds.items] == [0, 5]
    target = ds[0]["target"].numpy()
    assert np.all(target[0] == 17) and np.all(target[1] == 18) and np.all(target[2] == 255)
    assert target[3, 0, 0] == 1  # invalid but labelled: kept
    assert target[5, 0, 0] == 255 and target[5, 0, 1] == 0
    assert ds[0]["target_1_2"].shape == (4, 4, 2)
    np.testing.assert_allclose(ds[0]["K"][0].numpy(), k360.KITTI360_P_RECT_00[:, :3], atol=1e-4)


def test_kitti360_history_frames_without_pose_reuse_the_current_frame(tmp_path):
    write_tiny_kitti360_drive(tmp_path)
    ds = Kitti360Dataset(tmp_path, cfg=_k360_cfg(history_offsets=[-2, -1]), sequences=[9])
    sample = ds[1]  # frame 5: history 3 (posed) and 4 (no pose -> 5)
    colours = _denormalise(sample["img"]).mean(dim=(2, 3))
    expected = torch.tensor(np.stack([_frame_colour(i) for i in (3, 5, 5)]), dtype=torch.float32)
    torch.testing.assert_close(colours, expected, atol=1e-3, rtol=0)
    torch.testing.assert_close(sample["T_cam_velo"][1], sample["T_cam_velo"][2])
    # Frame 3's camera sees a current-frame point 2 m further away (the car moved 2 m along x).
    p_cur = np.array([10.0, 0.0, 0.0, 1.0])
    cam_hist = (sample["T_cam_velo"][0].double().numpy() @ p_cur)[:3]
    cam_cur = (sample["T_cam_velo"][2].double().numpy() @ p_cur)[:3]
    expected_hist = k360.kitti360_calib().T_cam0_velo @ np.linalg.inv(_velo_pose(5 - 2)) @ _velo_pose(5) @ p_cur
    np.testing.assert_allclose(cam_hist, expected_hist[:3], atol=1e-4)
    assert not np.allclose(cam_hist, cam_cur)


def test_build_dataset_picks_the_class_from_the_config(tmp_path, tiny_root):
    write_tiny_kitti360_drive(tmp_path / "KITTI-360")
    assert isinstance(build_dataset(_k360_cfg(), "test", tmp_path), Kitti360Dataset)
    assert isinstance(build_dataset(_cfg(root=str(tiny_root)), "valid"), SemanticKittiDataset)
    with pytest.raises(ConfigError, match="no dataset root"):
        build_dataset(_cfg(), "valid")
    with pytest.raises(ConfigError, match="unknown data.dataset"):
        build_dataset(_cfg(dataset="nuscenes"), "valid", tiny_root)
