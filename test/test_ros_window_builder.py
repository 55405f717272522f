"""WindowBuilder: a synchronized set + TF lookups -> the model's window, or a counted drop."""

from __future__ import annotations

import numpy as np
import pytest

from ssc_ros.messages import make_camera_info, make_image, make_pointcloud2, rosbags_namespace
from ssc_ros.pipeline.inputs import reference_offset
from ssc_ros.pipeline.params import SSC_NODE_PARAMS, defaults
from ssc_ros.pipeline.sensor_inputs import SensorInputs
from ssc_ros.pipeline.temporal_buffer import PushResult
from ssc_ros.pipeline.window_builder import WindowBuilder

P2 = np.array([[700.0, 0.0, 8.0, 44.0], [0.0, 700.0, 6.0, 0.2], [0.0, 0.0, 1.0, 0.003]])
TR = np.array([[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, -0.08], [1.0, 0.0, 0.0, -0.27], [0, 0, 0, 1.0]])


class Model:
    """The parts of the Predictor contract the builder reads."""

    history_offsets = [-2, -1]
    frame_rate_hz = 10.0
    needs_points = True
    needs_right_image = False


@pytest.fixture(scope="module")
def ns():
    return rosbags_namespace()


def inputs(ns, stamp_ms: int, cloud_frame: str = "velo_link") -> dict:
    stamp = stamp_ms * 1_000_000
    return {"image": make_image(ns, stamp, "cam", np.zeros((4, 6, 3), np.uint8)),
            "camera_info": make_camera_info(ns, stamp, "cam", P2, 6, 4),
            "points": make_pointcloud2(ns, stamp, cloud_frame, np.array([[1.0, 2.0, 3.0, 0.5]], np.float32))}


class TF:
    """A TF table: {(target, source): T} valid at every stamp, plus odometry moving +1 m/s along x."""

    def __init__(self, with_pose: bool = True, extra: dict | None = None):
        self.static = {("cam", "velo_link"): reference_offset(P2) @ TR, **(extra or {})}
        self.with_pose = with_pose

    def __call__(self, target, source, stamp_ns):
        if (target, source) == ("odom", "velo_link"):
            if not self.with_pose:
                return None
            T = np.eye(4)
            T[0, 3] = stamp_ns / 1e9
            return T
        return self.static.get((target, source))


def test_input_keys_follow_what_the_model_needs():
    assert SensorInputs().keys == ["image", "camera_info"]
    assert SensorInputs(points=True, image_right=True).keys == ["image", "camera_info", "points", "image_right",
                                                                "camera_info_right"]
    assert SensorInputs(image=False, points=True).keys == ["points"]  # a LiDAR-only model: the cloud alone


def test_a_lidar_only_model_waits_for_no_camera(ns):
    class LidarModel(Model):
        needs_image = False

    builder = WindowBuilder(LidarModel(), defaults(SSC_NODE_PARAMS), warn=lambda s: None)
    assert builder.keys == ["points"]
    items = {"points": inputs(ns, 1000)["points"]}
    assert builder.required_transforms(items) == [("odom", "velo_link")]  # history pose only, no camera
    no_camera_tf = TF()
    no_camera_tf.static.pop(("cam", "velo_link"))
    windows = [builder.build({"points": inputs(ns, t)["points"]}, t * 1_000_000, no_camera_tf)
               for t in (1000, 1100, 1200)]
    current = windows[-1].current
    assert current.image_left is None and current.calib is None and current.stamp_ns == 1_200_000_000
    np.testing.assert_allclose(current.points_velo, [[1.0, 2.0, 3.0, 0.5]])
    assert [f.stamp_ns for f in windows[-1].history] == [1_000_000_000, 1_100_000_000]
    assert builder.build({}, 1_300_000_000, no_camera_tf) is None and builder.drops["missing_points"] == 1


def test_windows_carry_history_moved_into_the_current_frame(ns):
    builder = WindowBuilder(Model(), defaults(SSC_NODE_PARAMS), warn=lambda s: None)
    assert builder.required_transforms(inputs(ns, 1000)) == [("cam", "velo_link"), ("odom", "velo_link")]
    windows = [builder.build(inputs(ns, 1000 + 100 * i), (1000 + 100 * i) * 1_000_000, TF()) for i in range(4)]
    last = windows[-1]
    assert [f.stamp_ns for f in last.history] == [1_100_000_000, 1_200_000_000]
    np.testing.assert_allclose(last.T_cur_hist[0][0, 3], -0.2)   # the -0.2 s frame was 0.2 m behind
    np.testing.assert_allclose(last.current.calib.T_cam0_velo, TR, atol=1e-12)


def test_missing_camera_tf_drops_the_set(ns):
    builder = WindowBuilder(Model(), defaults(SSC_NODE_PARAMS), warn=lambda s: None)
    assert builder.build(inputs(ns, 1000), 1_000_000_000, lambda *a: None) is None
    assert builder.drops["missing_tf"] == 1


def test_missing_pose_runs_without_history_unless_required(ns):
    lax = WindowBuilder(Model(), defaults(SSC_NODE_PARAMS), warn=lambda s: None)
    for i in range(3):
        window = lax.build(inputs(ns, 1000 + 100 * i), (1000 + 100 * i) * 1_000_000, TF(with_pose=False))
    assert window is not None and all(f is window.current for f in window.history)
    assert lax.drops["missing_pose"] == 3
    strict = WindowBuilder(Model(), {**defaults(SSC_NODE_PARAMS), "window.require_pose": True}, warn=lambda s: None)
    assert strict.build(inputs(ns, 1000), 1_000_000_000, TF(with_pose=False)) is None


def test_a_cloud_in_another_frame_is_moved_into_the_lidar_frame(ns):
    T_velo_os = np.eye(4)
    T_velo_os[2, 3] = 10.0
    tf = TF(extra={("velo_link", "os_sensor"): T_velo_os})
    builder = WindowBuilder(Model(), defaults(SSC_NODE_PARAMS), warn=lambda s: None)
    window = builder.build(inputs(ns, 1000, cloud_frame="os_sensor"), 1_000_000_000, tf)
    np.testing.assert_allclose(window.current.points_velo[0, :3], [1.0, 2.0, 13.0])
    assert builder.build(inputs(ns, 1100, cloud_frame="unknown"), 1_100_000_000, tf) is None


def test_a_restarted_replay_clears_the_window(ns):
    builder = WindowBuilder(Model(), defaults(SSC_NODE_PARAMS), warn=lambda s: None)
    for t in (20_000, 20_100, 20_200):
        builder.build(inputs(ns, t), t * 1_000_000, TF())
    window = builder.build(inputs(ns, 1000), 1_000_000_000, TF())
    assert window is not None and builder.last_push is PushResult.RESET
    assert all(f is window.current for f in window.history)


def test_sets_dropped_for_tf_still_count_as_received(ns):
    builder = WindowBuilder(Model(), defaults(SSC_NODE_PARAMS), warn=lambda s: None)
    builder.build(inputs(ns, 1000), 1_000_000_000, lambda *a: None)
    builder.build(inputs(ns, 1100), 1_100_000_000, TF())
    assert builder.drops.received == 2 and builder.drops.total == 1
