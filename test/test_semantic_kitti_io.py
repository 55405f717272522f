"""SemanticKITTI file formats and label maps: every reader/writer round trip, the MSB-first bit order, the
official remap rules, and a DataFormatError naming the file for every malformed input."""

from __future__ import annotations

import numpy as np
import pytest

from ssc_core.data import semantic_kitti as sk
from ssc_core.data.label_maps import SEMANTIC_KITTI, SGN_SEMANTIC_KITTI_CLASS_WEIGHTS
from ssc_core.errors import DataFormatError
from ssc_core.types import Calib

SMALL = (4, 2, 8)  # 64 voxels = 8 packed bytes


def _calib() -> Calib:
    rng = np.random.default_rng(0)
    return Calib(P2=rng.normal(size=(3, 4)), T_cam0_velo=np.vstack([rng.normal(size=(3, 4)), [0, 0, 0, 1]]),
                 P3=rng.normal(size=(3, 4)), P0=rng.normal(size=(3, 4)), P1=rng.normal(size=(3, 4)))


# ----------------------------------------------------------------------------------------------- points
def test_points_round_trip_as_little_endian_float32(tmp_path):
    pts = np.random.default_rng(1).normal(size=(100, 4)).astype(np.float32)
    path = tmp_path / "velodyne" / "000000.bin"
    sk.write_points(path, pts)
    assert path.stat().st_size == 100 * 16
    np.testing.assert_array_equal(sk.read_points(path), pts)
    np.testing.assert_array_equal(np.fromfile(path, dtype="<f4").reshape(-1, 4), pts)


def test_points_file_not_a_multiple_of_16_bytes_names_the_file(tmp_path):
    path = tmp_path / "000001.bin"
    path.write_bytes(b"\0" * 20)
    with pytest.raises(DataFormatError, match=r"000001\.bin.*multiple of 16"):
        sk.read_points(path)
    with pytest.raises(DataFormatError, match=r"\(N, 4\)"):
        sk.write_points(path, np.zeros((3, 3), np.float32))


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(DataFormatError, match=r"nothere\.bin: file not found"):
        sk.read_points(tmp_path / "nothere.bin")


def test_point_labels_round_trip_semantic_low_16_instance_high_16(tmp_path):
    semantic = np.array([0, 10, 252, 40, 65535], dtype=np.uint16)
    instance = np.array([0, 3, 7, 0, 65535], dtype=np.uint16)
    path = tmp_path / "000000.label"
    sk.write_point_labels(path, semantic, instance)
    raw = np.fromfile(path, dtype="<u4")
    assert raw[1] == (3 << 16) | 10 and raw[4] == 0xFFFFFFFF
    sem, inst = sk.read_point_labels(path, num_points=5)
    np.testing.assert_array_equal(sem, semantic)
    np.testing.assert_array_equal(inst, instance)
    sk.write_point_labels(path, semantic)
    assert not sk.read_point_labels(path)[1].any()


def test_point_labels_truncated_or_of_wrong_count_name_the_file(tmp_path):
    path = tmp_path / "000002.label"
    path.write_bytes(b"\0" * 10)
    with pytest.raises(DataFormatError, match=r"000002\.label.*multiple of 4"):
        sk.read_point_labels(path)
    sk.write_point_labels(path, np.zeros(6, np.uint16))
    with pytest.raises(DataFormatError, match=r"000002\.label: 6 labels for a scan of 7 points"):
        sk.read_point_labels(path, num_points=7)


# ----------------------------------------------------------------------------------------------- voxels
def test_voxel_labels_round_trip_in_xyz_c_order(tmp_path):
    labels = np.arange(np.prod(SMALL), dtype=np.uint16).reshape(SMALL) * 3
    path = tmp_path / "000000.label"
    sk.write_voxel_labels(path, labels)
    flat = np.fromfile(path, dtype="<u2")
    # flat index = x * (Y * Z) + y * Z + z: z is fastest.
    assert flat[1 * 2 * 8 + 1 * 8 + 3] == labels[1, 1, 3]
    np.testing.assert_array_equal(sk.read_voxel_labels(path, SMALL), labels)


def test_full_size_voxel_label_is_4194304_bytes(tmp_path):
    path = tmp_path / "000000.label"
    labels = np.zeros(sk.VOXEL_DIMS, np.uint16)
    labels[255, 0, 31] = 259
    sk.write_voxel_labels(path, labels)
    assert path.stat().st_size == 4_194_304
    assert sk.read_voxel_labels(path)[255, 0, 31] == 259


def test_truncated_voxel_label_names_the_file_and_sizes(tmp_path):
    path = tmp_path / "000005.label"
    path.write_bytes(b"\0" * (2 * 64 - 2))
    with pytest.raises(DataFormatError, match=r"000005\.label: 126 bytes, expected 128"):
        sk.read_voxel_labels(path, SMALL)
    with pytest.raises(DataFormatError, match="3-D"):
        sk.write_voxel_labels(path, np.zeros(8, np.uint16))
    with pytest.raises(DataFormatError, match="uint16"):
        sk.write_voxel_labels(path, np.full(SMALL, 70000, np.int64))


@pytest.mark.parametrize("kind", ["bin", "invalid", "occluded"])
def test_packed_voxel_files_round_trip(tmp_path, kind):
    mask = (np.random.default_rng(2).random(SMALL) > 0.5).astype(np.uint8)
    path = tmp_path / f"000000.{kind}"
    sk.write_packed_bits(path, mask)
    assert path.stat().st_size == 8
    np.testing.assert_array_equal(sk.read_packed_bits(path, SMALL), mask)


def test_packed_bits_are_msb_first_voxel_0_is_bit_0x80_of_byte_0(tmp_path):
    raw = bytearray(8)
    raw[0] = 0x80  # voxel 0
    raw[0] |= 0x01  # voxel 7
    raw[1] = 0x40  # voxel 9
    raw[7] = 0x01  # voxel 63 = last
    path = tmp_path / "000000.invalid"
    path.write_bytes(bytes(raw))
    mask = sk.read_packed_bits(path, SMALL)
    assert set(np.flatnonzero(mask.ravel())) == {0, 7, 9, 63}
    assert mask[0, 0, 0] == 1 and mask[0, 1, 1] == 1 and mask[3, 1, 7] == 1  # 9 = 0*16 + 1*8 + 1
    written = tmp_path / "again.invalid"
    sk.write_packed_bits(written, mask)
    assert written.read_bytes() == bytes(raw)
    assert sk.pack_bits(np.eye(1, 16, 0, dtype=np.uint8).reshape(1, 2, 8)).tolist() == [0x80, 0x00]


def test_packed_file_of_wrong_size_names_the_file(tmp_path):
    path = tmp_path / "000000.occluded"
    path.write_bytes(b"\0" * 7)
    with pytest.raises(DataFormatError, match=r"000000\.occluded: 7 bytes, expected 8"):
        sk.read_packed_bits(path, SMALL)
    path.write_bytes(b"\0" * 262_143)
    with pytest.raises(DataFormatError, match="expected 262144"):
        sk.read_packed_bits(path)


# ----------------------------------------------------------------------------------------------- label maps
def test_remap_lut_has_359_entries_and_the_official_ignore_rules():
    lut = SEMANTIC_KITTI.remap_lut()
    assert lut.shape == (359,) and lut.dtype == np.int32
    assert lut[0] == 0
    for raw in (1, 52, 99, 2, 9, 12, 300, 358):
        assert lut[raw] == 255, raw
    assert lut[252] == 1 and lut[10] == 1 and lut[60] == 9 and lut[255] == 8 and lut[259] == 5
    assert set(np.unique(lut)) == set(range(20)) | {255}


def test_remap_voxel_labels_applies_the_lut_and_invalid_mask():
    raw = np.array([[[0, 1, 52, 99, 2, 300, 252, 10]]], dtype=np.uint16)
    invalid = np.array([[[0, 0, 0, 0, 0, 0, 0, 1]]], dtype=np.uint8)
    assert sk.remap_voxel_labels(raw).tolist() == [[[0, 255, 255, 255, 255, 255, 1, 1]]]
    out = sk.remap_voxel_labels(raw, invalid=invalid)
    assert out.dtype == np.uint8 and out.tolist() == [[[0, 255, 255, 255, 255, 255, 1, 255]]]


def test_remap_of_an_id_beyond_the_lut_is_a_data_format_error():
    with pytest.raises(DataFormatError, match="359"):
        sk.remap_voxel_labels(np.array([359], np.uint16))


def test_learning_map_inverse_and_names():
    inv = SEMANTIC_KITTI.learning_map_inv()
    assert inv[5] == 20 and inv[1] == 10 and inv[7] == 31 and inv[0] == 0
    assert SEMANTIC_KITTI.inverse_lut().tolist() == [inv[i] for i in range(20)]
    assert SEMANTIC_KITTI.inverse_lut().dtype == np.uint16
    # Round trip train -> raw -> train is the identity on 0..19.
    assert SEMANTIC_KITTI.remap_lut()[SEMANTIC_KITTI.inverse_lut()].tolist() == list(range(20))
    assert SEMANTIC_KITTI.num_classes == 20 and SEMANTIC_KITTI.names[19] == "traffic-sign"


def test_colours_are_rgb_converted_from_the_yaml_bgr():
    colors = SEMANTIC_KITTI.colors_rgb
    assert colors.shape == (20, 3) and colors.dtype == np.uint8
    assert colors[1].tolist() == [100, 150, 245]  # car: BGR [245, 150, 100]
    assert colors[9].tolist() == [255, 0, 255]  # road
    assert colors[15].tolist() == [0, 175, 0]  # vegetation
    assert colors[13].tolist() == [255, 200, 0]  # building: BGR [0, 200, 255]


def test_class_weights_equal_the_sgn_10x_table_to_3_decimals():
    weights = SEMANTIC_KITTI.class_weights(scale=10.0)
    np.testing.assert_allclose(np.round(weights.astype(np.float64), 3), SGN_SEMANTIC_KITTI_CLASS_WEIGHTS, atol=1e-9)
    assert abs(SEMANTIC_KITTI.class_weights()[0] - 0.04462) < 1e-5


# ----------------------------------------------------------------------------------------------- calib
def test_calib_round_trip(tmp_path):
    calib = _calib()
    path = tmp_path / "calib.txt"
    sk.write_calib(path, calib)
    back = sk.read_calib(path)
    for name in ("P0", "P1", "P2", "P3", "T_cam0_velo"):
        np.testing.assert_allclose(getattr(back, name), getattr(calib, name), rtol=1e-11)
    assert back.T_cam0_velo.shape == (4, 4) and back.T_cam0_velo[3].tolist() == [0, 0, 0, 1]


def test_real_calib_of_sequence_00_matches_the_published_values(shared_data):
    calib = sk.read_calib(shared_data / "kitti_odometry_calib" / "sequences" / "00" / "calib.txt")
    np.testing.assert_allclose(calib.P2[0], [718.856, 0, 607.1928, 45.38225], rtol=1e-6)
    np.testing.assert_allclose(calib.T_cam0_velo[0], [4.2768e-4, -0.99997, -8.0845e-3, -0.011985], atol=1e-4)
    assert calib.K.shape == (3, 3) and calib.K[2, 2] == 1.0


def test_calib_without_tr_names_the_file(tmp_path):
    path = tmp_path / "calib.txt"
    path.write_text("P2: " + " ".join(["1"] * 12) + "\n")
    with pytest.raises(DataFormatError, match=r"calib\.txt: no 'Tr:' entry"):
        sk.read_calib(path)


def test_calib_with_non_numeric_or_short_values_names_the_file_and_line(tmp_path):
    path = tmp_path / "calib.txt"
    path.write_text("P2: " + " ".join(["1"] * 12) + "\nTr: 1 2 x 4 5 6 7 8 9 10 11 12\n")
    with pytest.raises(DataFormatError, match=r"calib\.txt:2: non-numeric value in Tr"):
        sk.read_calib(path)
    path.write_text("P2: " + " ".join(["1"] * 12) + "\nTr: " + " ".join(["1"] * 11) + "\n")
    with pytest.raises(DataFormatError, match=r"calib\.txt: 'Tr' has 11 values, expected 12"):
        sk.read_calib(path)
    path.write_text("garbage line\n")
    with pytest.raises(DataFormatError, match=r"calib\.txt:1: expected 'KEY: values'"):
        sk.read_calib(path)
    path.write_text("P2: " + " ".join(["1"] * 11 + ["nan"]) + "\n")
    with pytest.raises(DataFormatError, match=r"calib\.txt:1: non-finite value \(nan/inf\) in P2"):
        sk.read_calib(path)


# ----------------------------------------------------------------------------------------------- poses, times
def test_poses_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    poses = np.tile(np.eye(4), (5, 1, 1))
    poses[:, :3, :4] = rng.normal(size=(5, 3, 4))
    path = tmp_path / "poses.txt"
    sk.write_poses(path, poses)
    assert len(path.read_text().splitlines()) == 5
    np.testing.assert_allclose(sk.read_poses(path), poses, rtol=1e-11)


def test_poses_with_non_numeric_or_wrong_count_name_file_and_line(tmp_path):
    path = tmp_path / "poses.txt"
    path.write_text(" ".join(["1"] * 12) + "\n" + " ".join(["1"] * 11 + ["nan?"]) + "\n")
    with pytest.raises(DataFormatError, match=r"poses\.txt:2: non-numeric"):
        sk.read_poses(path)
    path.write_text(" ".join(["1"] * 13) + "\n")
    with pytest.raises(DataFormatError, match=r"poses\.txt:1: 13 values, expected 12"):
        sk.read_poses(path)
    path.write_text(" ".join(["1"] * 12) + "\n" + " ".join(["1"] * 11 + ["inf"]) + "\n")
    with pytest.raises(DataFormatError, match=r"poses\.txt:2: non-finite pose value"):
        sk.read_poses(path)


def test_pose_count_different_from_scan_count_names_poses_file(tmp_path):
    paths = sk.SequencePaths.of(tmp_path, 3)
    sk.write_calib(paths.calib, _calib())
    sk.write_poses(paths.poses, np.tile(np.eye(4), (2, 1, 1)))
    for i in range(3):
        sk.write_points(paths.velodyne(i), np.zeros((1, 4), np.float32))
    with pytest.raises(DataFormatError, match=r"03/poses\.txt: 2 poses for 3 scans"):
        sk.read_velo_poses(paths)
    assert sk.read_velo_poses(paths, check_count=False).shape == (2, 4, 4)


def test_times_round_trip_and_non_numeric(tmp_path):
    path = tmp_path / "times.txt"
    times = np.array([0.0, 0.103731, 1234.5678])
    sk.write_times(path, times)
    np.testing.assert_allclose(sk.read_times(path), times, rtol=1e-6)
    path.write_text("0.0\nabc\n")
    with pytest.raises(DataFormatError, match=r"times\.txt: non-numeric"):
        sk.read_times(path)
    path.write_text("0.0\n0.1\nnan\n")
    with pytest.raises(DataFormatError, match=r"times\.txt: non-finite time value \(nan/inf\) at line 3"):
        sk.read_times(path)


def test_real_times_and_poses_of_sequence_08_have_one_line_per_scan(shared_data):
    seq = shared_data / "kitti_odometry_calib" / "sequences" / "08"
    assert sk.read_poses(seq / "poses.txt").shape == (4071, 4, 4)
    times = sk.read_times(seq / "times.txt")
    assert times.shape == (4071,) and np.all(np.diff(times) > 0)
    assert 0.09 < np.median(np.diff(times)) < 0.11  # 10 Hz


# ----------------------------------------------------------------------------------------------- images
def test_image_round_trip_png_rgb(tmp_path):
    img = np.random.default_rng(4).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    path = tmp_path / "image_2" / "000000.png"
    sk.write_image(path, img)
    np.testing.assert_array_equal(sk.read_image(path), img)


def test_wrong_image_is_a_data_format_error_naming_the_file(tmp_path):
    path = tmp_path / "000000.png"
    path.write_bytes(b"this is not a png")
    with pytest.raises(DataFormatError, match=r"000000\.png: cannot decode image"):
        sk.read_image(path)
    with pytest.raises(DataFormatError, match=r"\(H, W, 3\) uint8"):
        sk.write_image(path, np.zeros((5, 7), np.uint8))


def test_real_frame_image_is_1242x375_rgb(shared_data):
    img = sk.read_image(shared_data / "kitti_real_frame" / "sequences" / "00" / "image_2" / "000000.png")
    assert img.shape == (375, 1242, 3) and img.dtype == np.uint8


# ----------------------------------------------------------------------------------------------- layout
def test_sequence_paths_follow_the_semantic_kitti_layout(tmp_path):
    paths = sk.SequencePaths.of(tmp_path, 8)
    assert paths.dir == tmp_path / "sequences" / "08"
    assert paths.velodyne(5) == paths.dir / "velodyne" / "000005.bin"
    assert paths.point_labels(5) == paths.dir / "labels" / "000005.label"
    assert paths.image(5, 3) == paths.dir / "image_3" / "000005.png"
    assert paths.voxel(5, "invalid") == paths.dir / "voxels" / "000005.invalid"
    assert paths.prediction(5) == paths.dir / "predictions" / "000005.label"
    assert sk.SequencePaths.from_sequence_dir(paths.dir) == paths
    assert sk.SequencePaths(str(tmp_path), "08") == paths
    with pytest.raises(ValueError, match="unknown voxel file kind"):
        paths.voxel(0, "labels")


def test_sequence_paths_list_labelled_scan_and_image_frames(tmp_path):
    paths = sk.SequencePaths.of(tmp_path, "00")
    for i in (10, 0, 5):
        sk.write_voxel_labels(paths.voxel(i, "label"), np.zeros(SMALL, np.uint16))
    for i in range(3):
        sk.write_points(paths.velodyne(i), np.zeros((1, 4), np.float32))
        sk.write_image(paths.image(i, 2), np.zeros((2, 2, 3), np.uint8))
    (paths.dir / "voxels" / "notes.label").write_text("x")
    assert paths.labelled_frames() == [0, 5, 10]
    assert paths.scan_frames() == [0, 1, 2]
    assert paths.image_frames(2) == [0, 1, 2] and paths.image_frames(3) == []
