"""Bad input into the pipeline: each case is one rate-limited log line and a counted drop, never an exception."""

from __future__ import annotations

import numpy as np
import pytest

from ssc_ros.messages import make_camera_info, make_image, make_pointcloud2, make_time, rosbags_namespace
from ssc_ros.pipeline.health import DropCounter, RateLimitedLogger
from ssc_ros.pipeline.inputs import FrameAssembler, calib_from_ros, reference_offset
from ssc_ros.pipeline.sync import FrameSynchronizer

P2 = np.array([[700.0, 0.0, 8.0, 44.0], [0.0, 700.0, 6.0, 0.2], [0.0, 0.0, 1.0, 0.003]])
TR = np.array([[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, -0.08], [1.0, 0.0, 0.0, -0.27], [0, 0, 0, 1.0]])


@pytest.fixture(scope="module")
def ns():
    return rosbags_namespace()


class Inputs:
    """A valid synchronized set at ``stamp_ms``, to be broken by each test."""

    def __init__(self, ns, stamp_ms: int = 1000, n_points: int = 20):
        self.ns = ns
        stamp = stamp_ms * 1_000_000
        self.image = make_image(ns, stamp, "camera_color_left", np.full((12, 16, 3), 7, np.uint8))
        self.info = make_camera_info(ns, stamp, "camera_color_left", P2, 16, 12)
        pts = np.random.default_rng(stamp_ms).uniform(-5, 5, size=(n_points, 4)).astype(np.float32)
        self.cloud = make_pointcloud2(ns, stamp, "velo_link", pts)
        self.T_cam_velo = reference_offset(P2) @ TR

    def args(self):
        return dict(image_msg=self.image, info_msg=self.info, cloud_msg=self.cloud, T_cam_velo=self.T_cam_velo,
                    T_odom_velo=np.eye(4))


def assembler(lines: list[str], needs_points: bool = True) -> FrameAssembler:
    return FrameAssembler(needs_points=needs_points, needs_right_image=False, drops=DropCounter(),
                          warn=lines.append, log_period_s=60.0)


def test_valid_set_becomes_a_frame_with_kitti_calibration(ns):
    lines: list[str] = []
    asm = assembler(lines)
    frame = asm.assemble(**Inputs(ns).args())
    assert frame is not None and lines == [] and asm.drops.total == 0
    assert frame.stamp_ns == 1_000_000_000 and frame.image_left.shape == (12, 16, 3)
    np.testing.assert_allclose(frame.calib.T_cam0_velo, TR, atol=1e-12)  # Tr recovered from the camera's TF
    np.testing.assert_allclose(frame.calib.K, P2[:, :3])
    assert frame.points_velo.shape == (20, 4)


def test_calib_from_ros_matches_kitti_for_a_camera_with_zero_offset():
    P = np.hstack([np.diag([500.0, 500.0, 1.0]), np.zeros((3, 1))])
    np.testing.assert_allclose(calib_from_ros(P, TR).T_cam0_velo, TR)


def _broken(ns, case: str) -> dict:
    inp = Inputs(ns)
    args = inp.args()
    if case == "cloud_missing_z":
        arr = np.zeros(5, dtype=[("x", "<f4"), ("y", "<f4"), ("intensity", "<f4")])
        args["cloud_msg"] = make_pointcloud2(ns, 1, "velo_link", arr)
    elif case == "cloud_wrong_point_step":
        args["cloud_msg"].point_step = 6
    elif case == "cloud_truncated":
        args["cloud_msg"].data = args["cloud_msg"].data[:33]
    elif case == "cloud_empty":
        args["cloud_msg"] = make_pointcloud2(ns, 1, "velo_link", np.zeros((0, 4), np.float32))
    elif case == "cloud_all_nan":
        args["cloud_msg"] = make_pointcloud2(ns, 1, "velo_link", np.full((5, 4), np.nan, np.float32))
    elif case == "image_encoding":
        args["image_msg"].encoding = "bayer_rggb8"
    elif case == "camera_info_zero_K":
        args["info_msg"] = make_camera_info(ns, 1, "c", np.zeros((3, 4)), 16, 12)
    elif case == "camera_info_size_mismatch":
        args["info_msg"].width = 1242
    elif case == "missing_tf":
        args["T_cam_velo"] = None
    elif case == "unset_stamp":
        args["image_msg"].header.stamp = make_time(ns, 0)
    return args


BAD_CASES = {
    "cloud_missing_z": ("bad_points", "missing field"),
    "cloud_wrong_point_step": ("bad_points", "point_step"),
    "cloud_truncated": ("bad_points", "data has 33 bytes"),
    "cloud_empty": ("bad_points", "empty"),
    "cloud_all_nan": ("bad_points", "empty"),
    "image_encoding": ("bad_image", "unsupported encoding 'bayer_rggb8'"),
    "camera_info_zero_K": ("bad_camera_info", "K is all zero"),
    "camera_info_size_mismatch": ("bad_camera_info", "1242x12"),
    "missing_tf": ("missing_tf", "TF"),
    "unset_stamp": ("bad_stamp", "not positive"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_is_one_log_line_and_a_counted_drop(ns, case):
    reason, text = BAD_CASES[case]
    lines: list[str] = []
    asm = assembler(lines)
    assert asm.assemble(**_broken(ns, case)) is None
    assert asm.drops[reason] == 1
    assert len(lines) == 1 and text in lines[0], lines
    # the same problem again: counted, not logged again (rate limit), and a good set still goes through
    assert asm.assemble(**_broken(ns, case)) is None
    assert asm.drops[reason] == 2 and len(lines) == 1
    assert asm.assemble(**Inputs(ns, stamp_ms=2000).args()) is not None


def test_nan_points_are_removed_counted_and_logged_but_the_frame_survives(ns):
    lines: list[str] = []
    asm = assembler(lines)
    inp = Inputs(ns)
    pts = np.ones((6, 4), np.float32)
    pts[[1, 4], 2] = [np.nan, np.inf]
    inp.cloud = make_pointcloud2(ns, 1, "velo_link", pts)
    frame = asm.assemble(**inp.args())
    assert frame is not None and len(frame.points_velo) == 4
    assert asm.drops["nonfinite_points"] == 1 and "removed 2 of 6" in lines[0]


def test_points_are_ignored_when_the_model_does_not_use_them(ns):
    asm = assembler([], needs_points=False)
    args = _broken(ns, "cloud_truncated")
    frame = asm.assemble(**args)
    assert frame is not None and frame.points_velo is None


def test_repeated_and_backwards_stamps_are_dropped(ns):
    lines: list[str] = []
    asm = assembler(lines)
    assert asm.assemble(**Inputs(ns, 2000).args()) is not None
    assert asm.assemble(**Inputs(ns, 2000).args()) is None
    assert asm.assemble(**Inputs(ns, 1500).args()) is None
    assert asm.drops["repeated_stamp"] == 1 and asm.drops["backwards_stamp"] == 1
    assert any("repeated stamp" in line for line in lines) and any("backwards stamp" in line for line in lines)
    assert asm.assemble(**Inputs(ns, 2100).args()) is not None


def test_rate_limited_logger_reports_suppressed_count():
    now = [0.0]
    lines: list[str] = []
    log = RateLimitedLogger(lines.append, period_s=5.0, clock=lambda: now[0])
    assert log.log("k", "bad") and not log.log("k", "bad") and not log.log("k", "bad")
    assert log.log("other", "x")
    now[0] = 6.0
    assert log.log("k", "bad")
    assert lines == ["bad", "x", "bad (2 similar messages suppressed)"]


def test_synchronizer_matches_within_slop_and_counts_unmatched():
    sync = FrameSynchronizer(["image", "info", "points"], slop_s=0.02, queue_size=5)
    assert sync.add("image", 1_000_000_000, "img1") is None
    assert sync.add("info", 1_000_000_000, "info1") is None
    assert sync.add("image", 1_100_000_000, "img2") is None
    out = sync.add("points", 1_005_000_000, "pts1")
    assert out is not None and out.stamp_ns == 1_000_000_000
    assert out.items == {"image": "img1", "info": "info1", "points": "pts1"}
    # img2 stays queued and matches later inputs; a too-far point cloud does not match
    assert sync.add("info", 1_100_000_000, "info2") is None
    assert sync.add("points", 1_150_000_000, "far") is None
    assert sync.add("points", 1_101_000_000, "pts2").items["image"] == "img2"
    assert sync.drops["unmatched"] == 0


def test_synchronizer_queue_overflow_drops_the_oldest():
    sync = FrameSynchronizer(["image", "info"], slop_s=0.0, queue_size=3)
    for i in range(5):
        sync.add("image", i, f"img{i}")
    assert sync.drops["sync_overflow"] == 2
    assert sync.add("info", 0, "info0") is None  # img0 was dropped
    assert sync.add("info", 4, "info4").items["image"] == "img4"


def test_a_large_jump_back_is_a_restart_not_a_backwards_stamp(ns):
    lines: list[str] = []
    asm = FrameAssembler(needs_points=True, needs_right_image=False, warn=lines.append, reset_after_s=3.0)
    assert asm.assemble(**Inputs(ns, 20_000).args()) is not None
    assert asm.assemble(**Inputs(ns, 18_000).args()) is None          # 2 s back: a backwards stamp
    assert asm.assemble(**Inputs(ns, 1_000).args()) is not None       # 19 s back: the replay started again
    assert asm.drops["backwards_stamp"] == 1 and any("restart" in line for line in lines)


def test_synchronizer_discards_items_older_than_a_match_as_unmatched():
    sync = FrameSynchronizer(["image", "info"], slop_s=0.01, queue_size=10)
    sync.add("image", 100, "lonely")        # never gets its camera_info
    sync.add("image", 200, "img")
    assert sync.add("info", 200, "info").items == {"image": "img", "info": "info"}
    assert sync.drops["unmatched"] == 1
