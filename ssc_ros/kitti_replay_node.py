"""kitti_replay_node: publishes a SemanticKITTI sequence folder as ROS 2 topics (thin rclpy adapter).

What is published comes from ssc_ros.replay (the same records ``ssc-bag kitti2bag`` writes): images +
camera_info (P2, P3), the LiDAR cloud, /tf (odom -> velo_link) and /tf_static (velo_link -> cameras) through the
tf2_ros broadcasters, /clock from times.txt and the ground-truth voxels (latched MarkerArray) when present.
Frames are read and their messages built ahead on a thread (ssc_ros.prefetch); the timer only publishes. The
timer runs on the steady clock (the node drives /clock, so it must not wait for it): run it with use_sim_time
false and every other node with use_sim_time true.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import rclpy
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from tf2_ros import StaticTransformBroadcaster, TransformBroadcaster

from ssc_core.errors import SSCError
from ssc_ros.messages import rclpy_namespace
from ssc_ros.node_common import declare_parameters, latched_qos, run_node
from ssc_ros.pipeline.health import RateLimitedLogger
from ssc_ros.pipeline.params import REPLAY_NODE_PARAMS, label_grid
from ssc_ros.prefetch import DONE, NOT_READY, Prefetcher
from ssc_ros.replay import GroundTruthMarkers, KittiSequence, ReplayNames, replay_messages, static_messages

WARN_PERIOD_S = 5.0  # at most one warning of a kind ("ground truth left out", "reading is late") per period
PREFETCH_FRAMES = 3  # frames read and built ahead of the timer


class KittiReplayNode(Node):
    """Publishes one frame per timer tick at ``rate`` x the sequence's frame rate."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("kitti_replay_node", **kwargs)
        self.reader: Prefetcher | None = None  # set last: destroy_node may run on a node whose __init__ raised
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
        self.warn = RateLimitedLogger(self.get_logger().warning, WARN_PERIOD_S)
        self.names = ReplayNames(fixed_frame=self.p["frames.fixed"], lidar_frame=self.p["frames.lidar"],
                                 left_frame=self.p["frames.camera_left"], right_frame=self.p["frames.camera_right"])
        self.ns = rclpy_namespace()
        self.gt = GroundTruthMarkers(self.seq.class_set) if self.p["publish_ground_truth"] else None
        self._pubs: dict[str, Any] = {}
        self.tf_broadcaster = TransformBroadcaster(self)
        self.tf_static_broadcaster = StaticTransformBroadcaster(self)
        first = self.seq.stamp_ns(self.seq.frames[0])
        for _topic, _type_name, msg in static_messages(self.seq, self.ns, first, self.names):
            self.tf_static_broadcaster.sendTransform(msg.transforms)
        self.reader = Prefetcher(self._frames(), PREFETCH_FRAMES, name="replay-reader").start()
        period = self.seq.period_s / self.p["rate"]
        self.timer = self.create_timer(period, self._on_tick, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(f"replaying {len(self.seq)} frames of {self.seq.paths.dir} every {period:.3f} s")

    def _frames(self) -> Iterator[tuple[int, list | None, str | None]]:
        """(frame, [(topic, type name, message)] or None, error or ground-truth note) in replay order, looping
        when asked; runs on the reader thread."""
        loop = 0
        while True:
            for frame in self.seq.frames:
                try:
                    record = self.seq.record(frame, loop=loop)
                    messages = replay_messages(self.seq, record, self.ns, self.names, self.gt,
                                               self.p["publish_clock"])
                except SSCError as exc:
                    yield frame, None, str(exc)
                    continue
                yield frame, messages, record.gt_error
            if not self.p["loop"]:
                return
            loop += 1

    def _publisher(self, topic: str, type_name: str) -> Any:
        if topic not in self._pubs:
            if topic == self.names.gt_voxels:
                qos = latched_qos()
            else:
                qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.VOLATILE)
            self._pubs[topic] = self.create_publisher(self.ns.classes[type_name], topic, qos)
        return self._pubs[topic]

    def _on_tick(self) -> None:
        item = self.reader.get()
        if item is NOT_READY:
            self.warn.log("late", "reading the sequence is slower than the replay rate: frames go out late "
                                  "(lower rate, or check the disk)")
            return
        if item is DONE:
            self.get_logger().info("replay finished")
            self.timer.cancel()
            return
        frame, messages, note = item
        if messages is None:
            self.get_logger().error(f"skipping frame {frame}: {note}")
            return
        if note:
            self.warn.log("ground_truth", f"frame {frame}: ground truth left out ({note}); "
                                          "check grid.dims / grid.voxel_size against the label files")
        for topic, type_name, msg in messages:
            if topic == self.names.tf:
                self.tf_broadcaster.sendTransform(msg.transforms)
            else:
                self._publisher(topic, type_name).publish(msg)

    def destroy_node(self) -> None:
        """Stop the reader thread, then destroy the node."""
        if self.reader is not None:
            self.reader.stop()
        super().destroy_node()


def main(args: list[str] | None = None) -> int:
    """Entry point (``ros2 run ssc_ros kitti_replay_node --ros-args -p sequence_dir:=...``)."""
    return run_node(KittiReplayNode, rclpy.spin, args)


if __name__ == "__main__":
    raise SystemExit(main())
