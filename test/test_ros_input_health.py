"""Input health without ROS: an input gone silent while the others flow, and the socket receive buffer check."""

from __future__ import annotations

from ssc_ros.pipeline.health import InputActivity, receive_buffer_warning


def test_an_input_is_silent_only_while_another_one_flows():
    activity = InputActivity(["image", "camera_info", "points"], start_s=0.0)
    assert activity.silent(1.0, after_s=2.0) == {}  # nothing arrived yet: too early to say
    for t in (0.5, 1.0, 1.5, 2.0, 2.5):
        activity.seen("image", t)
        activity.seen("camera_info", t)
    activity.seen("points", 0.5)
    assert activity.silent(2.4, after_s=2.0) == {}  # points last seen 1.9 s ago: not yet
    assert activity.silent(2.6, after_s=2.0) == {"points": 2.1}
    assert activity.silent(10.0, after_s=2.0) == {}  # everything stopped: the publisher went away, not one topic
    never = InputActivity(["image", "points"], start_s=0.0)
    never.seen("image", 2.9)
    assert never.silent(3.0, after_s=2.0) == {"points": 3.0}  # never received at all


def test_receive_buffer_warning_compares_rmem_max_with_the_inputs(tmp_path):
    rmem = tmp_path / "rmem_max"
    rmem.write_text("212992\n")  # the Linux default
    message = receive_buffer_warning(["image", "camera_info", "points"], str(rmem))
    assert "net.core.rmem_max is 0.21 MB" in message and "4.0 MB" in message and "docs/ros.md" in message
    assert "2.8 MB" in receive_buffer_warning(["image", "camera_info"], str(rmem))  # images: 2 x 1.4 MB
    rmem.write_text("2147483647\n")
    assert receive_buffer_warning(["image", "camera_info", "points"], str(rmem)) is None
    assert receive_buffer_warning(["points"], str(tmp_path / "missing")) is None  # not Linux: no check
