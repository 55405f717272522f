"""TemporalBuffer: history by time offsets, gaps, duplicates, out-of-order and backwards stamps."""

from __future__ import annotations

import numpy as np
import pytest

from ssc_core.errors import ConfigError
from ssc_core.types import Calib, Frame
from ssc_ros.pipeline.temporal_buffer import PushResult, TemporalBuffer

CALIB = Calib(P2=np.hstack([np.eye(3), np.zeros((3, 1))]), T_cam0_velo=np.eye(4))
MS = 1_000_000


def frame(t_ms: float) -> Frame:
    """A frame at t_ms whose LiDAR sits at x = t_ms / 1000 m along odom x (driving at 1 m/s)."""
    pose = np.eye(4)
    pose[0, 3] = t_ms / 1000.0
    return Frame(stamp_ns=int(t_ms * MS), image_left=np.zeros((2, 2, 3), np.uint8), calib=CALIB, T_odom_velo=pose)


def sgn_buffer(**kw) -> TemporalBuffer:
    return TemporalBuffer.from_frame_offsets([-12, -9, -6, -3], 10.0, **kw)


def test_window_picks_frames_at_the_time_offsets_oldest_first():
    buf = sgn_buffer()
    frames = [frame(1000 + 100 * i) for i in range(20)]
    for f in frames:
        assert buf.push(f) is PushResult.ACCEPTED
    window, info = buf.window(frames[-1])
    assert [f.stamp_ns for f in window.history] == [frames[i].stamp_ns for i in (7, 10, 13, 16)]
    assert info.reused == 0
    # T_cur_hist moves history points into the current frame: the -1.2 s frame sat 1.2 m behind
    np.testing.assert_allclose(window.T_cur_hist[0][0, 3], -1.2)


def test_works_at_another_sensor_rate_by_time():
    buf = sgn_buffer()
    frames = [frame(1000 + 50 * i) for i in range(40)]  # 20 Hz sensor, model trained at 10 Hz
    for f in frames:
        buf.push(f)
    window, _ = buf.window(frames[-1])
    assert [(frames[-1].stamp_ns - f.stamp_ns) / 1e9 for f in window.history] == pytest.approx([1.2, 0.9, 0.6, 0.3])


def test_missing_history_reuses_the_current_frame():
    buf = sgn_buffer()
    first = frame(1000)
    buf.push(first)
    window, info = buf.window(first)
    assert all(f is first for f in window.history) and info.reused == 4
    assert all(np.allclose(T, np.eye(4)) for T in window.T_cur_hist)


def test_a_gap_is_filled_with_the_current_frame_only_where_no_frame_is_near():
    buf = sgn_buffer()
    stamps = [1000 + 100 * i for i in range(20) if not 11 <= i <= 14]  # a 0.5 s hole
    frames = [frame(t) for t in stamps]
    for f in frames:
        buf.push(f)
    current = frames[-1]  # t = 2900
    window, info = buf.window(current)
    assert info.used_stamps_ns == [1700 * MS, 2000 * MS, None, 2600 * MS]
    assert window.history[2] is current


def test_duplicate_stamp_is_ignored():
    buf = sgn_buffer()
    assert buf.push(frame(1000)) is PushResult.ACCEPTED
    assert buf.push(frame(1000)) is PushResult.DUPLICATE
    assert len(buf) == 1


def test_out_of_order_frame_is_kept_for_history_but_flagged():
    buf = sgn_buffer()
    for t in (1000, 1100, 1300, 1400, 1500, 1600, 1700, 1800, 1900, 2000, 2100, 2200):
        buf.push(frame(t))
    late = frame(1200)
    assert buf.push(late) is PushResult.OUT_OF_ORDER
    window, _ = buf.window(frame(2400))
    assert window.history[0] is late  # 2400 - 1200 ms


def test_large_backwards_jump_resets_the_buffer():
    buf = sgn_buffer(reset_after_s=3.0)
    for i in range(10):
        buf.push(frame(10_000 + 100 * i))
    assert buf.push(frame(1000)) is PushResult.RESET
    assert len(buf) == 1


def test_frames_without_pose_are_not_used_as_history():
    buf = sgn_buffer()
    frames = [frame(1000 + 100 * i) for i in range(13)]
    frames[0].T_odom_velo = None
    for f in frames:
        buf.push(f)
    _, info = buf.window(frames[-1])
    assert info.used_stamps_ns[0] is None and info.reused == 1


def test_memory_is_bounded_by_the_window_span():
    buf = sgn_buffer()
    for i in range(500):
        buf.push(frame(1000 + 100 * i))
    assert len(buf) <= 14  # 1.2 s of 10 Hz frames plus the tolerance


def test_positive_offsets_are_rejected():
    with pytest.raises(ConfigError, match="negative"):
        TemporalBuffer([0.3])
