"""SSCBench-KITTI-360 and NYUv2 SSC readers/writers: round trips, class sets and the clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from ssc_core.data.kitti360 import (
    KITTI360_SPLITS,
    SGN_KITTI360_CLASS_WEIGHTS,
    Kitti360Paths,
    kitti360_calib,
    read_kitti360_invalid,
    read_kitti360_labels,
    read_kitti360_occupancy,
    read_kitti360_poses,
    write_kitti360_invalid,
    write_kitti360_labels,
    write_kitti360_occupancy,
    write_kitti360_poses,
)
from ssc_core.data.label_maps import get_class_set
from ssc_core.data.nyu import (
    NYU_DIMS,
    NYU_SEG_CLASS_MAP,
    NYUTsdfPaths,
    decode_rle,
    encode_rle,
    mapping_to_pixel_map,
    nyu_target,
    read_nyu_bin,
    read_nyu_depth,
    read_nyu_label,
    read_nyu_mapping,
    read_nyu_tsdf,
    write_nyu_bin,
    write_nyu_depth,
    write_nyu_label,
    write_nyu_mapping,
    write_nyu_tsdf,
)
from ssc_core.data.semantic_kitti import remap_voxel_labels
from ssc_core.errors import DataFormatError

DIMS = (256, 256, 32)


# ------------------------------------------------------------------------------------------------ KITTI-360
def test_kitti360_class_set_is_registered_with_19_classes_and_sgn_weights():
    cs = get_class_set("kitti360")
    assert cs.num_classes == 19 and cs.names[17] == "other-structure" and cs.names[18] == "other-object"
    np.testing.assert_allclose(np.round(cs.class_weights(10.0), 3), SGN_KITTI360_CLASS_WEIGHTS, atol=1e-6)
    # car is coloured like SemanticKITTI's car (BGR 245,150,100 -> RGB 100,150,245)
    assert cs.colors_rgb[1].tolist() == [100, 150, 245]


def test_kitti360_remap_differs_from_semantic_kitti_where_the_benchmark_says():
    raw = np.array([0, 1, 31, 32, 71, 52, 99, 40, 60, 253, 255, 3])
    remapped = remap_voxel_labels(raw, get_class_set("kitti360"))
    assert remapped.tolist() == [0, 255, 255, 255, 255, 17, 18, 7, 7, 255, 255, 255]
    assert get_class_set("kitti360").inverse_lut().tolist()[17:] == [52, 99]


def test_kitti360_labels_invalid_and_occupancy_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    paths = Kitti360Paths.of(tmp_path, 9)
    assert paths.dir.name == "2013_05_28_drive_0009_sync"
    labels = rng.integers(0, 260, DIMS).astype(np.uint16)
    invalid = rng.random(DIMS) < 0.8
    occupancy = rng.random(DIMS) < 0.1
    write_kitti360_labels(paths.voxel(5, "label"), labels)
    write_kitti360_invalid(paths.voxel(5, "invalid"), invalid)
    write_kitti360_occupancy(paths.voxel(5, "bin"), occupancy)
    assert paths.voxel(5, "invalid").stat().st_size == 256 * 256 * 32  # one byte per voxel, not packed
    np.testing.assert_array_equal(read_kitti360_labels(paths.voxel(5, "label")), labels)
    np.testing.assert_array_equal(read_kitti360_invalid(paths.voxel(5, "invalid")), invalid)
    np.testing.assert_array_equal(read_kitti360_occupancy(paths.voxel(5, "bin")), occupancy)
    assert paths.labelled_frames() == [5]


def test_kitti360_invalid_in_packed_form_is_a_clear_error(tmp_path):
    path = tmp_path / "000000.invalid"
    path.write_bytes(b"\0" * (256 * 256 * 32 // 8))
    with pytest.raises(DataFormatError, match="bit-packed size"):
        read_kitti360_invalid(path)
    with pytest.raises(DataFormatError, match="expected 4194304"):
        (tmp_path / "x.label").write_bytes(b"\0" * 10)
        read_kitti360_labels(tmp_path / "x.label")


def test_kitti360_poses_round_trip_both_row_counts(tmp_path):
    rng = np.random.default_rng(1)
    poses = np.tile(np.eye(4), (3, 1, 1))
    poses[:, :3, :] = rng.normal(size=(3, 3, 4))
    frames = np.array([0, 3, 7])
    for rows, name in ((4, "cam0_to_world.txt"), (3, "pose.txt")):
        write_kitti360_poses(tmp_path / name, frames, poses, rows=rows)
        got_frames, got = read_kitti360_poses(tmp_path / name)
        np.testing.assert_array_equal(got_frames, frames)
        np.testing.assert_allclose(got, poses, atol=1e-10)
    (tmp_path / "bad.txt").write_text("0 1 2 3\n")
    with pytest.raises(DataFormatError, match="bad.txt:1: 3 pose values"):
        read_kitti360_poses(tmp_path / "bad.txt")


def test_kitti360_calib_and_splits():
    calib = kitti360_calib()
    assert calib.K[0, 0] == pytest.approx(552.554261)
    # a point 10 m ahead of the LiDAR lands in front of the camera, near the principal point column
    p_cam = calib.T_cam0_velo @ np.array([10.0, 0.0, 0.0, 1.0])
    assert p_cam[2] > 9.0
    assert KITTI360_SPLITS["test"] == ("2013_05_28_drive_0009_sync",)
    assert len(KITTI360_SPLITS["train"]) == 7


# ------------------------------------------------------------------------------------------------------- NYU
def test_nyu_class_set_is_registered():
    cs = get_class_set("nyu")
    assert cs.num_classes == 12 and cs.names[1] == "ceiling" and cs.names[11] == "objects"
    assert cs.remap_lut()[11] == 11 and cs.remap_lut()[12] == 255


def test_rle_decoding_maps_37_classes_to_12_and_keeps_255():
    values = np.array([0, 5, 7, 255, 36])
    rle = encode_rle(np.repeat(values, [3, 2, 1, 1, 1]))
    np.testing.assert_array_equal(rle, [0, 3, 5, 2, 7, 1, 255, 1, 36, 1])
    decoded = decode_rle(rle, (8, 1, 1)).ravel()
    assert decoded.tolist() == [0, 0, 0, NYU_SEG_CLASS_MAP[5], NYU_SEG_CLASS_MAP[5], 6, 255, 11]


def test_rle_errors_name_the_problem():
    with pytest.raises(DataFormatError, match="cover 3 voxels, expected 8"):
        decode_rle(np.array([1, 3]), (2, 2, 2))
    with pytest.raises(DataFormatError, match="label value 40"):
        decode_rle(np.array([40, 8]), (2, 2, 2))
    with pytest.raises(DataFormatError, match="odd number"):
        decode_rle(np.array([1, 3, 4]), (2, 2, 2))


def test_nyu_bin_round_trip_and_target_downsampling(tmp_path):
    full = np.zeros((240, 144, 240), dtype=np.uint8)
    full[:, :8, :] = 2
    full[100:140, 40:80, 100:140] = 5  # NYU 5 -> objects (11)
    origin = np.array([-1.0, 0.5, 2.0], np.float32)
    pose = np.eye(4, dtype=np.float32)
    pose[:3, 3] = [1, 2, 3]
    write_nyu_bin(tmp_path / "NYU0001_0000.bin", origin, pose, full)
    got_origin, got_pose, labels = read_nyu_bin(tmp_path / "NYU0001_0000.bin")
    np.testing.assert_array_equal(got_origin, origin)
    np.testing.assert_array_equal(got_pose, pose)
    assert labels.shape == (240, 144, 240) and labels[120, 60, 120] == 11 and labels[0, 0, 0] == 2
    target = nyu_target(labels)
    assert target.shape == NYU_DIMS
    assert target[0, 0, 0] == 2 and target[30, 15, 30] == 11 and target[0, 20, 0] == 0


def test_nyu_bin_truncated_header_is_a_clear_error(tmp_path):
    (tmp_path / "x.bin").write_bytes(b"\0" * 40)
    with pytest.raises(DataFormatError, match="76 header bytes"):
        read_nyu_bin(tmp_path / "x.bin")


def test_nyu_npz_files_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    labels = rng.choice(np.array([0, 3, 11, 255]), size=NYU_DIMS)
    tsdf = rng.normal(size=NYU_DIMS).astype(np.float32)
    weight = (rng.random(NYU_DIMS) < 0.5).astype(np.float32)
    mapping = rng.integers(0, 307201, NYU_DIMS)
    paths = NYUTsdfPaths(tmp_path)
    write_nyu_label(paths.label("0001"), labels)
    write_nyu_tsdf(paths.tsdf("0001"), tsdf, weight)
    write_nyu_mapping(paths.mapping("0001"), mapping)
    np.testing.assert_array_equal(read_nyu_label(paths.label("0001")), labels)
    got_tsdf, got_weight = read_nyu_tsdf(paths.tsdf("0001"))
    np.testing.assert_array_equal(got_tsdf, tsdf)
    np.testing.assert_array_equal(got_weight, weight)
    np.testing.assert_array_equal(read_nyu_mapping(paths.mapping("0001")), mapping)
    assert paths.tsdf("0001", cad=True) == tmp_path.parent / "NYUCAD" / "TSDF" / "0001.npz"


def test_nyu_npz_errors_name_file_and_array(tmp_path):
    np.savez_compressed(tmp_path / "short.npz", np.zeros(100))
    with pytest.raises(DataFormatError, match="short.npz: arr_0 .labels. has 100 values, expected 129600"):
        read_nyu_label(tmp_path / "short.npz")
    np.savez_compressed(tmp_path / "one.npz", np.zeros(129600))
    with pytest.raises(DataFormatError, match="one.npz: no array 'arr_1'"):
        read_nyu_tsdf(tmp_path / "one.npz")
    np.savez_compressed(tmp_path / "lab.npz", np.full(129600, 12))
    with pytest.raises(DataFormatError, match="label 12 is not a NYU SSC class"):
        read_nyu_label(tmp_path / "lab.npz")


def test_mapping_inverts_to_a_pixel_map():
    mapping = np.full(NYU_DIMS, 307200).ravel()
    mapping[5] = 0
    mapping[129599] = 640 * 479 + 639
    pixel_map = mapping_to_pixel_map(mapping)
    assert pixel_map.shape == (480, 640)
    assert pixel_map[0, 0] == 5 and pixel_map[479, 639] == 129599
    assert (pixel_map >= 0).sum() == 2


def test_nyu_depth_png_is_metres_times_8000(tmp_path):
    depth = np.array([[0.0, 1.0], [2.5, 8.0]], dtype=np.float32)
    write_nyu_depth(tmp_path / "NYU0001_0000.png", depth)
    np.testing.assert_allclose(read_nyu_depth(tmp_path / "NYU0001_0000.png"), depth, atol=1 / 8000)


def test_nyu_split_ids_from_list_or_rgb_folder(tmp_path):
    paths = NYUTsdfPaths(tmp_path)
    with pytest.raises(DataFormatError, match="no split list for 'test'"):
        paths.frame_ids("test")
    (tmp_path / "test" / "RGB").mkdir(parents=True)
    for name in ("NYU0007_rgb.png", "NYU0002_rgb.png"):
        (tmp_path / "test" / "RGB" / name).write_bytes(b"")
    assert paths.frame_ids("test") == ["0002", "0007"]
    (tmp_path / "train.txt").write_text("NYU0010_0000\nNYU0004_0000\n")
    assert paths.frame_ids("train") == ["0004", "0010"]
