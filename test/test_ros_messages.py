"""messages.py: what it builds survives rosbags CDR serialisation, and the reverse conversions validate input."""

from __future__ import annotations

import numpy as np
import pytest

from ssc_core.errors import DataFormatError
from ssc_ros.messages import (
    camera_info_to_P,
    image_to_rgb,
    make_camera_info,
    make_clock,
    make_diagnostic_array,
    make_image,
    make_marker_array,
    make_occupancy_grid,
    make_pointcloud2,
    make_tf_message,
    make_transform_stamped,
    marker_fields,
    pointcloud2_to_xyzi,
    rosbags_namespace,
    stamp_to_ns,
    transform_to_matrix,
)


@pytest.fixture(scope="module")
def ns():
    return rosbags_namespace("humble")


def roundtrip(ns, msg, name):
    raw = ns.typestore.serialize_cdr(msg, ns.msgtype(name))
    return ns.typestore.deserialize_cdr(raw, ns.msgtype(name))


def test_pointcloud_roundtrip_keeps_points_and_stamp(ns):
    pts = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    back = roundtrip(ns, make_pointcloud2(ns, 1_500_000_123, "velo_link", pts), "PointCloud2")
    assert stamp_to_ns(back.header.stamp) == 1_500_000_123
    assert back.header.frame_id == "velo_link"
    assert [f.name for f in back.fields] == ["x", "y", "z", "intensity"]
    np.testing.assert_array_equal(pointcloud2_to_xyzi(back), pts)


def test_image_roundtrip_and_bgr_conversion(ns):
    img = np.random.default_rng(1).integers(0, 255, size=(6, 5, 3), dtype=np.uint8)
    back = roundtrip(ns, make_image(ns, 7, "cam", img), "Image")
    np.testing.assert_array_equal(image_to_rgb(back), img)
    back.encoding = "bgr8"
    np.testing.assert_array_equal(image_to_rgb(back), img[:, :, ::-1])


def test_image_with_row_padding_is_read_by_step(ns):
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    padded = np.zeros((2, 12), dtype=np.uint8)
    padded[:, :9] = img.reshape(2, 9)
    msg = make_image(ns, 1, "cam", img)
    msg.step, msg.data = 12, ns.u8_seq(padded.reshape(-1))
    np.testing.assert_array_equal(image_to_rgb(msg), img)


def test_camera_info_roundtrip_gives_back_P(ns):
    P = np.array([[700.0, 0, 600, 45], [0, 700, 180, 0.1], [0, 0, 1, 0.003]])
    back = roundtrip(ns, make_camera_info(ns, 3, "cam", P, 1242, 375), "CameraInfo")
    np.testing.assert_allclose(camera_info_to_P(back), P)
    assert (back.width, back.height) == (1242, 375)


def test_camera_info_with_zero_K_is_rejected(ns):
    msg = make_camera_info(ns, 3, "cam", np.zeros((3, 4)), 10, 10)
    with pytest.raises(DataFormatError, match="K is all zero"):
        camera_info_to_P(msg)


def test_transform_roundtrip_is_exact_to_float_precision(ns):
    from scipy.spatial.transform import Rotation

    T = np.eye(4)
    T[:3, :3] = Rotation.from_euler("xyz", [0.1, -0.4, 1.2]).as_matrix()
    T[:3, 3] = [1.0, -2.0, 0.5]
    tf = roundtrip(ns, make_tf_message(ns, [make_transform_stamped(ns, 5, "odom", "velo_link", T)]), "TFMessage")
    assert tf.transforms[0].header.frame_id == "odom"
    assert tf.transforms[0].child_frame_id == "velo_link"
    np.testing.assert_allclose(transform_to_matrix(tf.transforms[0].transform), T, atol=1e-12)


def test_marker_occupancy_clock_and_diagnostics_serialise(ns):
    marker = marker_fields(9, "velo_link", marker_ns="ssc/car", marker_id=1, marker_type=ns.Marker.CUBE_LIST,
                           action=ns.Marker.ADD, scale=0.2, rgb_u8=[255, 0, 0],
                           points_xyz=np.array([[0.1, 0.2, 0.3], [1.0, 2.0, 3.0]]))
    raw = make_marker_array(ns, [marker])
    back = ns.typestore.deserialize_cdr(raw, ns.msgtype("MarkerArray")).markers[0]
    assert (back.ns, back.id, back.type) == ("ssc/car", 1, ns.Marker.CUBE_LIST)
    assert stamp_to_ns(back.header.stamp) == 9 and back.header.frame_id == "velo_link"
    assert [(p.x, p.y, p.z) for p in back.points] == [(0.1, 0.2, 0.3), (1.0, 2.0, 3.0)]
    assert back.color.r == 1.0 and back.color.g == 0.0 and back.color.a == 1.0
    assert back.pose.orientation.w == 1.0 and back.scale.z == pytest.approx(0.2)
    cells = np.array([[-1, 0], [100, 0], [0, 100]], dtype=np.int8)  # (X=3, Y=2)
    grid = roundtrip(ns, make_occupancy_grid(ns, 9, "velo_link", cells, 0.2, (0.0, -25.6, -2.0)), "OccupancyGrid")
    assert (grid.info.width, grid.info.height) == (3, 2)
    np.testing.assert_array_equal(np.asarray(grid.data).reshape(2, 3), cells.T)
    assert grid.info.origin.position.y == pytest.approx(-25.6)
    assert stamp_to_ns(roundtrip(ns, make_clock(ns, 2_000_000_001), "Clock").clock) == 2_000_000_001
    diag = roundtrip(ns, make_diagnostic_array(ns, 1, "ssc_node", "WARN", "slow", {"drops": 3}), "DiagnosticArray")
    assert diag.status[0].level == ns.DiagnosticStatus.WARN and diag.status[0].values[0].value == "3"


def test_jazzy_namespace_builds_the_same_marker():
    jazzy = rosbags_namespace("jazzy")
    marker = marker_fields(1, "f", marker_ns="x", marker_id=0, marker_type=jazzy.Marker.CUBE_LIST,
                           action=jazzy.Marker.DELETEALL)
    raw = make_marker_array(jazzy, [marker])
    assert jazzy.typestore.deserialize_cdr(raw, jazzy.msgtype("MarkerArray")).markers[0].action == 3
    with pytest.raises(DataFormatError, match="negative stamp"):
        marker_fields(-1, "f", marker_ns="x", marker_id=0, marker_type=6, action=3)


def _cloud(ns, fields=("x", "y", "z", "intensity"), n=4):
    dtype = np.dtype([(f, "<f4") for f in fields])
    arr = np.zeros(n, dtype=dtype)
    for i, f in enumerate(fields):
        arr[f] = np.arange(n) + i
    return make_pointcloud2(ns, 1, "velo_link", arr)


def test_cloud_without_z_is_rejected_naming_the_field(ns):
    with pytest.raises(DataFormatError, match=r"missing field\(s\) \['z'\]"):
        pointcloud2_to_xyzi(_cloud(ns, ("x", "y", "intensity")))


def test_cloud_with_wrong_point_step_is_rejected(ns):
    msg = _cloud(ns)
    msg.point_step = 8  # the z field at offset 8 no longer fits
    with pytest.raises(DataFormatError, match="does not fit point_step"):
        pointcloud2_to_xyzi(msg)


def test_truncated_cloud_is_rejected(ns):
    msg = _cloud(ns)
    msg.data = msg.data[:-5]
    with pytest.raises(DataFormatError, match="expected 64"):
        pointcloud2_to_xyzi(msg)


def test_cloud_without_intensity_reads_zero_intensity_and_drops_nan_points(ns):
    msg = _cloud(ns, ("x", "y", "z"))
    pts = pointcloud2_to_xyzi(msg)
    assert pts.shape == (4, 4) and np.all(pts[:, 3] == 0)
    arr = np.zeros(3, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4")])
    arr["x"] = [1.0, np.nan, np.inf]
    assert len(pointcloud2_to_xyzi(make_pointcloud2(ns, 1, "v", arr))) == 1


def test_unsupported_image_encoding_is_rejected(ns):
    msg = make_image(ns, 1, "cam", np.zeros((2, 2, 3), np.uint8))
    msg.encoding = "16UC1"
    with pytest.raises(DataFormatError, match="unsupported encoding '16UC1'"):
        image_to_rgb(msg)


def test_truncated_image_is_rejected(ns):
    msg = make_image(ns, 1, "cam", np.zeros((4, 4, 3), np.uint8))
    msg.data = msg.data[:20]
    with pytest.raises(DataFormatError, match="expected 48"):
        image_to_rgb(msg)
