"""ssc_ros.cdr: messages written from dicts and numpy arrays are byte for byte what rosbags' serializer writes for
the same message objects, in the Humble and the Jazzy definitions (test_ros_rclpy.py compares with rclpy's)."""

from __future__ import annotations

import numpy as np
import pytest

from ssc_core.errors import DataFormatError
from ssc_ros.cdr import encode_cdr, message_layout
from ssc_ros.messages import (
    make_camera_info,
    make_diagnostic_array,
    make_image,
    make_occupancy_grid,
    rosbags_namespace,
)

DISTROS = ("humble", "jazzy")
XYZ = np.array([[0.5, -1.25, 3.0], [1e-3, 2.0, -7.5], [4.0, 4.0, 4.0]])


def reference_marker(ns, points, action=0, color=(1.0, 0.5, 0.0, 0.8)):
    """A Marker object with every field set, as a message-object builder would make it."""
    fields = {name: None for name, _ in message_layout(ns, ns.msgtype("Marker"))}
    kwargs = dict(
        header=ns.Header(stamp=ns.Time(sec=12, nanosec=345), frame_id="velo_link"), ns="ssc/car", id=1, type=6,
        action=action, pose=ns.Pose(position=ns.Point(x=0.0, y=0.0, z=0.0),
                                    orientation=ns.Quaternion(x=0.0, y=0.0, z=0.0, w=1.0)),
        scale=ns.Vector3(x=0.2, y=0.2, z=0.2), color=ns.ColorRGBA(r=color[0], g=color[1], b=color[2], a=color[3]),
        lifetime=ns.Duration(sec=0, nanosec=0), frame_locked=False,
        points=[ns.Point(x=x, y=y, z=z) for x, y, z in points], colors=[], text="", mesh_resource="",
        mesh_use_embedded_materials=False,
    )
    if "texture" in fields:  # Jazzy's Marker (and later Humble syncs) carry texture and mesh fields
        kwargs.update(texture_resource="", uv_coordinates=[],
                      texture=ns.CompressedImage(header=ns.Header(stamp=ns.Time(sec=0, nanosec=0), frame_id=""),
                                                 format="", data=np.zeros(0, np.uint8)),
                      mesh_file=ns.MeshFile(filename="", data=np.zeros(0, np.uint8)))
    return ns.Marker(**kwargs)


def marker_dict(points, action=0, color=(1.0, 0.5, 0.0, 0.8)):
    return {"header": {"stamp": {"sec": 12, "nanosec": 345}, "frame_id": "velo_link"}, "ns": "ssc/car", "id": 1,
            "type": 6, "action": action, "pose": {"orientation": {"w": 1.0}},
            "scale": {"x": 0.2, "y": 0.2, "z": 0.2}, "color": dict(zip("rgba", color)), "points": points}


@pytest.mark.parametrize("distro", DISTROS)
def test_marker_array_from_numpy_is_byte_identical_to_rosbags(distro):
    ns = rosbags_namespace(distro)
    expected = ns.typestore.serialize_cdr(
        ns.MarkerArray(markers=[reference_marker(ns, [], action=3, color=(0, 0, 0, 0)), reference_marker(ns, XYZ)]),
        ns.msgtype("MarkerArray"))
    got = encode_cdr(ns, "MarkerArray", {"markers": [
        marker_dict(np.zeros((0, 3)), action=3, color=(0, 0, 0, 0)), marker_dict(XYZ)]})
    assert got == expected
    back = ns.typestore.deserialize_cdr(got, ns.msgtype("MarkerArray"))
    assert [(p.x, p.y, p.z) for p in back.markers[1].points] == [tuple(r) for r in XYZ.tolist()]
    # a list of point dicts is the same message
    as_dicts = [dict(zip("xyz", row)) for row in XYZ.tolist()]
    assert encode_cdr(ns, "MarkerArray", {"markers": [
        marker_dict([], action=3, color=(0, 0, 0, 0)), marker_dict(as_dicts)]}) == expected


@pytest.mark.parametrize("distro", DISTROS)
def test_fixed_arrays_primitive_sequences_and_nested_lists_match_rosbags(distro):
    ns = rosbags_namespace(distro)
    P = np.arange(12, dtype=np.float64).reshape(3, 4) + 0.5
    info = make_camera_info(ns, 7_000_000_123, "cam", P, 64, 32)
    info_dict = {"header": {"stamp": {"sec": 7, "nanosec": 123}, "frame_id": "cam"}, "height": 32, "width": 64,
                 "distortion_model": info.distortion_model, "d": np.asarray(info.d), "k": np.asarray(info.k),
                 "r": np.asarray(info.r), "p": P.reshape(-1), "binning_x": 0, "binning_y": 0,
                 "roi": {"x_offset": 0, "y_offset": 0, "height": 0, "width": 0, "do_rectify": False}}
    assert encode_cdr(ns, "CameraInfo", info_dict) == ns.typestore.serialize_cdr(info, ns.msgtype("CameraInfo"))
    img = np.arange(5 * 3 * 3, dtype=np.uint8).reshape(5, 3, 3)
    image = make_image(ns, 1, "cam", img)
    image_dict = {"header": {"stamp": {"nanosec": 1}, "frame_id": "cam"}, "height": 5, "width": 3,
                  "encoding": "rgb8", "step": 9, "data": img.reshape(-1)}
    assert encode_cdr(ns, "Image", image_dict) == ns.typestore.serialize_cdr(image, ns.msgtype("Image"))
    cells = np.array([[-1, 0, 100]], dtype=np.int8)
    grid = make_occupancy_grid(ns, 3, "velo_link", cells, 0.2, (0.0, -25.6, -2.0))
    grid_dict = {"header": {"stamp": {"nanosec": 3}, "frame_id": "velo_link"},
                 "info": {"map_load_time": {"nanosec": 3}, "resolution": 0.2, "width": 1, "height": 3,
                          "origin": {"position": {"y": -25.6, "z": -2.0}, "orientation": {"w": 1.0}}},
                 "data": cells.T.reshape(-1)}
    assert encode_cdr(ns, "OccupancyGrid", grid_dict) == ns.typestore.serialize_cdr(grid, ns.msgtype("OccupancyGrid"))
    diag = make_diagnostic_array(ns, 5, "ssc_node", "WARN", "slow", {"a": 1, "bb": "x"})
    diag_dict = {"header": {"stamp": {"nanosec": 5}}, "status": [
        {"level": ns.DiagnosticStatus.WARN, "name": "ssc_node", "message": "slow",
         "values": [{"key": "a", "value": "1"}, {"key": "bb", "value": "x"}]}]}
    assert encode_cdr(ns, "DiagnosticArray", diag_dict) == ns.typestore.serialize_cdr(
        diag, ns.msgtype("DiagnosticArray"))


def test_wrong_input_is_refused_with_a_clear_error():
    ns = rosbags_namespace("humble")
    with pytest.raises(DataFormatError, match=r"has no field\(s\) \['colour'\]"):
        encode_cdr(ns, "ColorRGBA", {"colour": 1.0})
    with pytest.raises(DataFormatError, match="fixed array of 9 elements given 4"):
        encode_cdr(ns, "CameraInfo", {"k": np.zeros(4)})
    with pytest.raises(DataFormatError, match="not a list of 3-value elements"):
        encode_cdr(ns, "Marker", {"points": np.zeros((2, 2))})
    with pytest.raises(DataFormatError, match="mixed fields"):
        encode_cdr(ns, "DiagnosticArray", {"status": np.zeros((1, 4))})
