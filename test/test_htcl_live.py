"""HTCL live: the node's temporal window serves HTCL's keyframe history (frame offsets at 10 Hz -> seconds) and the
right image; what the window holds while the history fills, after time jumps and at other sensor rates; the
Predictor on the windows the WindowBuilder makes; ssc-bag run with an HTCL checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from htcl_street import small_config

from ssc_core.config import load_config
from ssc_core.data.label_maps import SEMANTIC_KITTI
from ssc_core.data.semantic_kitti import SequencePaths, read_calib
from ssc_core.inference.predictor import Predictor
from ssc_core.models import build_model
from ssc_core.training.checkpoint import save_checkpoint
from ssc_core.types import Calib, Frame, GridSpec
from ssc_ros.messages import make_camera_info, make_image, rosbags_namespace
from ssc_ros.pipeline.inputs import reference_offset
from ssc_ros.pipeline.params import SSC_NODE_PARAMS, defaults
from ssc_ros.pipeline.temporal_buffer import PushResult, TemporalBuffer
from ssc_ros.pipeline.window_builder import WindowBuilder

HTCL_OFFSETS = load_config("htcl")["data"]["history_offsets"]  # [-15, -10, -5] raw frames at 10 Hz
CALIB = Calib(P2=np.hstack([np.eye(3), np.zeros((3, 1))]), T_cam0_velo=np.eye(4))
MS = 1_000_000


def frame(t_ms: float) -> Frame:
    """A frame at t_ms whose LiDAR sits at x = t_ms / 1000 m along odom x."""
    pose = np.eye(4)
    pose[0, 3] = t_ms / 1000.0
    return Frame(stamp_ns=int(round(t_ms * MS)), image_left=np.zeros((2, 2, 3), np.uint8), calib=CALIB,
                 T_odom_velo=pose)


def htcl_buffer() -> TemporalBuffer:
    return TemporalBuffer.from_frame_offsets(HTCL_OFFSETS, 10.0)


def ages_s(window, current: Frame) -> list[float | None]:
    """Seconds each history slot lies behind the current frame (None: the current frame reused)."""
    return [None if f is current else round((current.stamp_ns - f.stamp_ns) / 1e9, 3) for f in window.history]


def test_keyframe_offsets_become_seconds_and_the_window_fills_over_the_first_one_and_a_half_seconds():
    assert HTCL_OFFSETS == [-15, -10, -5]
    buf = htcl_buffer()
    assert buf.offsets_ns == [-1_500_000_000, -1_000_000_000, -500_000_000] and buf.tolerance_ns == 250_000_000
    seen = {}
    for i in range(25):
        current = frame(100 * i)
        assert buf.push(current) is PushResult.ACCEPTED
        window, info = buf.window(current)
        seen[i] = ages_s(window, current)
        assert info.reused == sum(a is None for a in seen[i])
    assert seen[0] == seen[2] == [None, None, None]  # start-up: the current frame stands in for every keyframe
    assert seen[3] == [None, None, 0.3]  # a slot takes the nearest frame within 0.25 s of its wanted time
    assert seen[5] == [None, None, 0.5] and seen[10] == [None, 1.0, 0.5]
    assert seen[15] == [1.5, 1.0, 0.5] and seen[24] == [1.5, 1.0, 0.5]


def test_a_forward_time_jump_empties_the_history_until_it_refills():
    buf = htcl_buffer()
    for i in range(20):
        buf.push(frame(100 * i))
    after = frame(1900 + 5000)  # 5 s without frames (sensor dropout, paused bag)
    assert buf.push(after) is PushResult.ACCEPTED
    window, info = buf.window(after)
    assert info.reused == 3 and len(buf) == 1  # nothing within the window's span survives
    for i in range(1, 16):
        current = frame(6900 + 100 * i)
        buf.push(current)
    window, _ = buf.window(current)
    assert ages_s(window, current) == [1.5, 1.0, 0.5]


def test_a_backward_jump_beyond_reset_after_s_clears_the_window():
    buf = htcl_buffer()
    for i in range(20):
        buf.push(frame(10_000 + 100 * i))
    restart = frame(1000)  # the replay looped back by ~11 s
    assert buf.push(restart) is PushResult.RESET and len(buf) == 1
    _, info = buf.window(restart)
    assert info.reused == 3


@pytest.mark.parametrize("rate_hz", [20.0, 60.0])
def test_other_sensor_rates_get_the_same_keyframe_times(rate_hz):
    buf = htcl_buffer()
    period = 1000.0 / rate_hz
    frames = [frame(1000 + period * i) for i in range(int(3 * rate_hz))]
    for f in frames:
        buf.push(f)
    assert len(buf) <= buf.max_frames
    window, info = buf.window(frames[-1])
    assert info.reused == 0
    assert ages_s(window, frames[-1]) == pytest.approx([1.5, 1.0, 0.5], abs=buf.tolerance_ns / 1e9)


# ------------------------------------------------------------------------------------------------ node pipeline
@pytest.fixture(scope="module")
def htcl_checkpoint(tmp_path_factory):
    cfg = small_config()
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("htcl_ckpt") / "htcl_small.pt"
    return save_checkpoint(path, build_model(cfg), cfg, SEMANTIC_KITTI, GridSpec.from_dict(cfg["data"]["grid"]))


class TF:
    """camera <- LiDAR from the street's calibration, odometry from its poses (by stamp)."""

    def __init__(self, calib: Calib, poses: dict[int, np.ndarray]) -> None:
        self.T_cam_velo = reference_offset(calib.P2) @ calib.T_cam0_velo
        self.poses = poses

    def __call__(self, target, source, stamp_ns):
        if (target, source) == ("cam", "velo_link"):
            return self.T_cam_velo
        if (target, source) == ("odom", "velo_link"):
            return self.poses.get(stamp_ns)
        return None


def test_window_builder_feeds_the_htcl_predictor_stereo_sets_while_the_history_fills(htcl_street, htcl_checkpoint,
                                                                                     one_thread):
    from ssc_core.data.datasets import load_sequence_info
    from ssc_core.data.semantic_kitti import read_image

    predictor = Predictor.from_checkpoint(htcl_checkpoint, device="cpu")
    builder = WindowBuilder(predictor, defaults(SSC_NODE_PARAMS))
    assert builder.keys == ["image", "camera_info", "image_right", "camera_info_right"]  # stereo, no LiDAR
    ns = rosbags_namespace()
    paths = SequencePaths.of(htcl_street, "00")
    calib, info = read_calib(paths.calib), load_sequence_info(paths)
    stamps = [int(s) + 1_000_000_000 for s in info.stamps_ns]  # ROS stamps must be positive
    tf = TF(calib, {s: info.poses_velo[i] for i, s in enumerate(stamps)})
    reused = []
    for i in (0, 5, 10, 15):
        left, right = read_image(paths.image(i, 2)), read_image(paths.image(i, 3))
        h, w = left.shape[:2]
        items = {"image": make_image(ns, stamps[i], "cam", left),
                 "camera_info": make_camera_info(ns, stamps[i], "cam", calib.P2, w, h),
                 "image_right": make_image(ns, stamps[i], "cam_right", right),
                 "camera_info_right": make_camera_info(ns, stamps[i], "cam_right", calib.P3, w, h)}
        window = builder.build(items, stamps[i], tf, index=i)
        assert window is not None and window.current.image_right is not None
        reused.append(sum(f is window.current for f in window.history))
        prediction = predictor.predict(window)
        assert prediction.labels.shape == (32, 32, 8) and np.isfinite(prediction.confidence).all()
    # only every 5th frame is fed here: the -0.5 s slot fills from the second set on, all slots by the fourth
    assert reused == [3, 2, 1, 0]


def test_ssc_bag_run_with_an_htcl_checkpoint(htcl_street, htcl_checkpoint, tmp_path, one_thread):
    from ssc_ros.bag import kitti2bag, run

    cfg = small_config()
    grid = GridSpec.from_dict(cfg["data"]["grid"])
    bag = kitti2bag(SequencePaths.of(htcl_street, "00").dir, tmp_path / "street.mcap", grid=grid, progress=False)
    result = run(bag.path, tmp_path / "out.mcap", htcl_checkpoint, progress=False)
    assert result.frames == 16 and result.extra["drops"] == {}


def test_the_nodes_predictor_setup_takes_an_htcl_tiny_checkpoint_and_model_config_htcl_tiny(tmp_path):
    """What ``ros2 launch ssc_ros kitti_replay.launch.py checkpoint:=... model_config:=htcl_tiny`` hands the node."""
    from ssc_core.errors import CheckpointMismatchError
    from ssc_ros.pipeline.predictor_setup import build_predictor

    cfg = load_config("htcl_tiny")
    path = save_checkpoint(tmp_path / "htcl_tiny.pt", build_model(cfg), cfg, SEMANTIC_KITTI,
                           GridSpec.from_dict(cfg["data"]["grid"]))
    predictor = build_predictor(str(path), config="htcl_tiny", device="cpu")
    assert predictor.history_offsets == [-15, -10, -5] and predictor.grid.dims == (128, 128, 16)
    builder = WindowBuilder(predictor, defaults(SSC_NODE_PARAMS))
    assert builder.keys == ["image", "camera_info", "image_right", "camera_info_right"] and builder.needs_pose
    with pytest.raises(CheckpointMismatchError):
        build_predictor(str(path), config="sgn_tiny", device="cpu")
