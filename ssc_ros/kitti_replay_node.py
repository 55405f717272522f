"""kitti_replay_node: publishes a SemanticKITTI sequence folder as ROS 2 topics (thin rclpy adapter).

What is published comes from ssc_ros.replay (the same records ``ssc-bag kitti2bag`` writes): images +
camera_info (P2, P3), the LiDAR cloud, /tf (odom -> velo_link), /tf_static (velo_link -> cameras, latched),
/clock from times.txt and the ground-truth voxels (latched MarkerArray) when present. The node's own timer runs
on the steady clock (it drives /clock, so it must not wait for it): run it with use_sim_time false and every
other node with use_sim_time true.
"""

from __future__ import annotations

from typing import Any

import rclpy
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from ssc_core.errors import SSCError
from ssc_ros.messages import rclpy_namespace
from ssc_ros.pipeline.health import RateLimitedLogger
from ssc_ros.pipeline.params import REPLAY_NODE_PARAMS, label_grid
from ssc_ros.replay import GroundTruthMarkers, KittiSequence, ReplayNames, replay_messages, static_messages
from ssc_ros.ssc_node import declare_parameters, latched_qos, run_node

GT_WARN_PERIOD_S = 5.0  # at most one "ground truth left out" warning per this many seconds


class KittiReplayNode(Node):
    """Publishes one frame per timer tick at ``rate`` x the sequence's frame rate."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("kitti_replay_node", **kwargs)
        self.p = declare_parameters(self, REPLAY_NODE_PARAMS)
        if not self.p["sequence_dir"]:
            raise SSCError("parameter sequence_dir is required (a .../sequences/XX folder)")
        if self.p["rate"] <= 0:
            raise SSCError(f"parameter rate must be > 0, got {self.p['rate']}")
        end = None if self.p["end_frame"] < 0 else self.p["end_frame"]
        self.seq = KittiSequence(self.p["sequence_dir"], start=self.p["start_frame"], end=end,
                                 load_right=self.p["publish_right"], load_gt=self.p["publish_ground_truth"],
                                 stamp_offset_ns=int(round(self.p["stamp_offset_s"] * 1e9)),
                                 grid=label_grid(self.p), skip_bad_gt=True)
        self.warn = RateLimitedLogger(self.get_logger().warning, GT_WARN_PERIOD_S)
        self.names = ReplayNames(fixed_frame=self.p["frames.fixed"], lidar_frame=self.p["frames.lidar"],
                                 left_frame=self.p["frames.camera_left"], right_frame=self.p["frames.camera_right"])
        self.ns = rclpy_namespace()
        self.gt = GroundTruthMarkers(self.seq.class_set) if self.p["publish_ground_truth"] else None
        self._pubs: dict[str, Any] = {}
        self._cursor, self._loop = 0, 0
        first = self.seq.stamp_ns(self.seq.frames[0])
        for topic, type_name, msg in static_messages(self.seq, self.ns, first, self.names):
            self._publisher(topic, type_name).publish(msg)
        period = self.seq.period_s / self.p["rate"]
        self.timer = self.create_timer(period, self._on_tick, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(f"replaying {len(self.seq)} frames of {self.seq.paths.dir} every {period:.3f} s")

    def _publisher(self, topic: str, type_name: str) -> Any:
        if topic not in self._pubs:
            names = self.names
            if topic in (names.tf_static, names.gt_voxels):
                qos = latched_qos()
            elif topic == names.tf:
                qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
            else:
                qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.VOLATILE)
            self._pubs[topic] = self.create_publisher(self.ns.classes[type_name], topic, qos)
        return self._pubs[topic]

    def _on_tick(self) -> None:
        if self._cursor >= len(self.seq.frames):
            if not self.p["loop"]:
                self.get_logger().info("replay finished")
                self.timer.cancel()
                return
            self._cursor, self._loop = 0, self._loop + 1
        frame = self.seq.frames[self._cursor]
        self._cursor += 1
        try:
            record = self.seq.record(frame, loop=self._loop)
            messages = replay_messages(self.seq, record, self.ns, self.names, self.gt, self.p["publish_clock"])
        except SSCError as exc:
            self.get_logger().error(f"skipping frame {frame}: {exc}")
            return
        if record.gt_error:
            self.warn.log("ground_truth", f"frame {frame}: ground truth left out ({record.gt_error}); "
                                          "check grid.dims / grid.voxel_size against the label files")
        for topic, type_name, msg in messages:
            self._publisher(topic, type_name).publish(msg)


def main(args: list[str] | None = None) -> int:
    """Entry point (``ros2 run ssc_ros kitti_replay_node --ros-args -p sequence_dir:=...``)."""
    return run_node(KittiReplayNode, rclpy.spin, args)


if __name__ == "__main__":
    raise SystemExit(main())
