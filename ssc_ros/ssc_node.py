"""ssc_node: semantic scene completion from synchronized camera (+ LiDAR) topics, as a thin rclpy adapter.

Wiring (the logic lives in ssc_ros.pipeline and is tested without ROS):

    image, camera_info [, points] [, image_right, camera_info_right]      (sensor-data QoS)
    (input.mode rgbd: image, depth, camera_info; the grid frame in place of the LiDAR's: pipeline/rgbd.py)
      -> message_filters.ApproximateTimeSynchronizer -> _on_set: IntakeQueue.push (O(1))
      -> intake timer (own callback group): TF (camera <- LiDAR, fixed <- LiDAR) -> FrameAssembler -> Frame
         (WindowBuilder) -> TemporalBuffer.push / window -> InferenceWorker.submit (newest first, stale dropped)
      -> worker thread: Predictor.predict -> OutputBuilder -> ~/voxels, ~/voxel_cloud, ~/occupancy_grid
         (transient local, stamp = input stamp) + ~/processing_time_ms, ~/latency_ms; /diagnostics on a timer.

Parameters: ssc_ros.pipeline.params.SSC_NODE_PARAMS (documented in docs/ros.md, defaults in config/ssc_node.yaml).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from message_filters import ApproximateTimeSynchronizer, Subscriber
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.time import Time
from tf2_ros import Buffer, TransformException, TransformListener

from ssc_core.errors import SSCError
from ssc_core.runtime import set_num_threads
from ssc_ros.messages import (
    make_diagnostic_array,
    make_float64,
    rclpy_namespace,
    stamp_to_ns,
    transform_to_matrix,
)
from ssc_ros.node_common import declare_parameters, latched_qos, run_node
from ssc_ros.pipeline.health import DropCounter, InputActivity, RateLimitedLogger, receive_buffer_warning
from ssc_ros.pipeline.intake import InputSet, IntakeQueue
from ssc_ros.pipeline.outputs import OutputBuilder
from ssc_ros.pipeline.params import SSC_NODE_PARAMS, output_options
from ssc_ros.pipeline.predictor_setup import build_predictor
from ssc_ros.pipeline.rgbd import input_pipeline
from ssc_ros.pipeline.temporal_buffer import PushResult
from ssc_ros.pipeline.worker import InferenceWorker, Job, Result

INTAKE_PERIOD_S = 0.01


class SSCNode(Node):
    """The SSC node. ``predictor`` may be given (tests); otherwise it is built from the model.* parameters."""

    def __init__(self, predictor: Any = None, **kwargs: Any) -> None:
        super().__init__("ssc_node", **kwargs)
        self.worker: InferenceWorker | None = None  # destroy_node may run on a node whose __init__ raised
        self.p = declare_parameters(self, SSC_NODE_PARAMS)
        self.ns = rclpy_namespace()
        self.drops = DropCounter()
        self.warn = RateLimitedLogger(self.get_logger().warning, self.p["log.period_s"])
        threads, why = set_num_threads(self.p["model.num_threads"] or None)
        self.get_logger().info(f"torch CPU threads: {threads} ({why})")
        if predictor is None:
            predictor = build_predictor(self.p["model.checkpoint"], self.p["model.config"], self.p["model.device"],
                                        self.p["model.precision"])
        self.predictor, self.windows = input_pipeline(predictor, self.p, self.drops, warn=self.get_logger().warning)
        self.builder = OutputBuilder(self.predictor.class_set, output_options(self.p))
        self.intake = IntakeQueue(maxlen=self.p["sync.queue_size"], wait_s=self.p["tf.wait_s"], drops=self.drops)
        self.tf_buffer = Buffer()
        self.tf_listener = TransformListener(self.tf_buffer, self)
        self._make_publishers()
        self._make_subscriptions()
        self.worker = InferenceWorker(self.predictor, self._on_result, self._on_error,
                                      max_staleness_s=self.p["processing.max_staleness_s"], drops=self.drops).start()
        steady = Clock(clock_type=ClockType.STEADY_TIME)  # work timers: they must run when /clock pauses or jumps
        self.create_timer(INTAKE_PERIOD_S, self._on_intake, callback_group=MutuallyExclusiveCallbackGroup(),
                          clock=steady)
        self.create_timer(self.p["diagnostics.period_s"], self._on_diagnostics,
                          callback_group=MutuallyExclusiveCallbackGroup(), clock=steady)
        buffer_warning = receive_buffer_warning(self.input_names)
        if buffer_warning:
            self.get_logger().warning(buffer_warning)
        self.get_logger().info(
            f"ssc_node ready: inputs {self.windows.keys}, history offsets {self.windows.buffer.offsets_ns} ns, "
            f"fixed frame '{self.p['frames.fixed']}'")

    # ----------------------------------------------------------------------------------------------- wiring
    def _make_publishers(self) -> None:
        latch = bool(self.p["outputs.latch"])
        out_qos = latched_qos() if latch else QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        ns = self.ns
        self.pub_voxels = self.create_publisher(ns.MarkerArray, "~/voxels", out_qos) \
            if self.p["outputs.markers"] else None
        self.pub_cloud = self.create_publisher(ns.PointCloud2, "~/voxel_cloud", out_qos) \
            if self.p["outputs.cloud"] else None
        self.pub_grid = self.create_publisher(ns.OccupancyGrid, "~/occupancy_grid", out_qos) \
            if self.p["outputs.occupancy"] else None
        debug_qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self.pub_processing = self.create_publisher(ns.Float64, "~/processing_time_ms", debug_qos)
        self.pub_latency = self.create_publisher(ns.Float64, "~/latency_ms", debug_qos)
        self.pub_diag = self.create_publisher(ns.DiagnosticArray, "/diagnostics", 10)

    def _make_subscriptions(self) -> None:
        if self.p["input.qos"] == "sensor_data":
            qos = QoSProfile(depth=self.p["input.depth"], history=HistoryPolicy.KEEP_LAST,
                             reliability=qos_profile_sensor_data.reliability,
                             durability=qos_profile_sensor_data.durability)
        elif self.p["input.qos"] == "reliable":
            qos = QoSProfile(depth=self.p["input.depth"], reliability=ReliabilityPolicy.RELIABLE)
        else:
            raise SSCError(f"input.qos must be 'sensor_data' or 'reliable', got {self.p['input.qos']!r}")
        group = MutuallyExclusiveCallbackGroup()
        ns = self.ns
        types = {"image": ns.Image, "camera_info": ns.CameraInfo, "points": ns.PointCloud2,
                 "image_right": ns.Image, "camera_info_right": ns.CameraInfo, "depth": ns.Image}
        self.input_names = list(self.windows.keys)
        self.subs = [Subscriber(self, types[key], self.p[f"topics.{key}"], qos_profile=qos, callback_group=group)
                     for key in self.input_names]
        self.activity = InputActivity(self.input_names, time.monotonic())
        for key, sub in zip(self.input_names, self.subs):
            sub.registerCallback(self._on_input, key)
        self.sync = ApproximateTimeSynchronizer(self.subs, self.p["sync.queue_size"], self.p["sync.slop_s"])
        self.sync.registerCallback(self._on_set)

    # --------------------------------------------------------------------------------------- receive path
    def _on_input(self, _msg: Any, key: str) -> None:
        """Every message of every input (before synchronization): when it arrived, for the silence check."""
        self.activity.seen(key, time.monotonic())

    def _on_set(self, *msgs: Any) -> None:
        """message_filters callback (runs under the synchronizer's lock): store the set and return. The set's
        age at arrival (node clock, sim time under use_sim_time) starts its latency."""
        stamp_ns = stamp_to_ns(msgs[0].header.stamp)
        now_ns = self.get_clock().now().nanoseconds
        self.intake.push(InputSet(dict(zip(self.input_names, msgs)), stamp_ns, time.monotonic_ns(),
                                  age_ns=max(0, now_ns - stamp_ns) if now_ns else 0))

    def _tf_ready(self, item: InputSet) -> bool:
        """True when every transform the set needs is in the TF buffer at its stamp."""
        stamp = Time(nanoseconds=item.stamp_ns)
        return all(source and self.tf_buffer.can_transform(target, source, stamp)
                   for target, source in self.windows.required_transforms(item.msgs))

    def _lookup(self, target: str, source: str, stamp_ns: int) -> np.ndarray | None:
        """T_target_source at ``stamp_ns`` from TF, or None (logged, rate-limited)."""
        try:
            tf = self.tf_buffer.lookup_transform(target, source, Time(nanoseconds=stamp_ns))
        except TransformException as exc:
            self.warn.log(f"tf:{target}<-{source}", f"TF {target} <- {source} unavailable: {exc}")
            return None
        return transform_to_matrix(tf.transform, f"TF {target} <- {source}")

    def _on_intake(self) -> None:
        """Timer: sets whose TF arrived (or whose wait ran out) become windows; the newest goes to the worker."""
        for item, _ready in self.intake.pop_ready(self._tf_ready, time.monotonic_ns()):
            window = self.windows.build(item.msgs, item.stamp_ns, self._lookup)
            if self.windows.last_push is PushResult.RESET:
                self.get_logger().info("input time jumped back: temporal window cleared")
            if window is not None:
                self.worker.submit(Job(window, item.received_ns, meta=self.windows.lidar_frame(item.msgs),
                                       input_age_ns=item.age_ns))

    # ---------------------------------------------------------------------------------------- outputs
    def _wanted(self, pub: Any) -> bool:
        return pub is not None and (self.p["outputs.latch"] or pub.get_subscription_count() > 0)

    def _on_result(self, result: Result) -> None:
        """Worker thread: build and publish the outputs of one prediction (nothing once shutdown has begun)."""
        if not self.context.ok():
            return
        pred = result.prediction
        pred.frame_id = result.job.meta or pred.frame_id
        ns = self.ns
        sel = None
        if self._wanted(self.pub_voxels) or self._wanted(self.pub_cloud):
            sel = self.builder.select(pred)
        if self._wanted(self.pub_voxels):
            self.pub_voxels.publish(self.builder.marker_array(ns, pred, sel))
        if self._wanted(self.pub_cloud):
            self.pub_cloud.publish(self.builder.voxel_cloud(ns, pred, sel))
        if self._wanted(self.pub_grid):
            self.pub_grid.publish(self.builder.occupancy_grid(ns, pred))
        if self.pub_processing.get_subscription_count():
            self.pub_processing.publish(make_float64(ns, result.processing_s * 1e3))
        if self.pub_latency.get_subscription_count():
            job = result.job
            latency_ms = (job.input_age_ns + time.monotonic_ns() - job.received_ns) / 1e6
            self.pub_latency.publish(make_float64(ns, latency_ms))

    def _on_error(self, exc: BaseException, job: Job) -> None:
        """Worker thread: a failed prediction or output, logged (rate-limited); silent once shutdown has begun
        (a publish cut short by Ctrl-C is not a failure)."""
        if not self.context.ok():
            return
        stamp = job.window.current.stamp_ns
        self.warn.log(f"error:{type(exc).__name__}",
                      f"inference/output failed for stamp {stamp} ns: {type(exc).__name__}: {exc}")

    def _on_diagnostics(self) -> None:
        stats = self.worker.stats()
        drops = self.drops.as_dict()
        slow = stats.processed and stats.mean_processing_s * 1e3 > self.p["diagnostics.max_processing_ms"]
        silent = self.activity.silent(time.monotonic(), self.p["diagnostics.silent_after_s"])
        problems = [f"input '{key}' ({self.p[f'topics.{key}']}) silent for {age:.1f} s while others flow"
                    for key, age in sorted(silent.items())]
        if stats.errors and not stats.processed:
            level, problems = "ERROR", ["no prediction succeeded", *problems]
        else:
            problems += ["slow or failing frames"] if slow or stats.errors else []
            level = "WARN" if problems else "OK"
        message = "; ".join(problems) or "running"
        values = {"received_sets": self.drops.received, "processed": stats.processed,
                  "drop_rate": f"{stats.drop_rate:.3f}", "mean_processing_ms": f"{stats.mean_processing_s * 1e3:.1f}",
                  "max_processing_ms": f"{stats.max_processing_s * 1e3:.1f}",
                  "mean_latency_ms": f"{stats.mean_latency_s * 1e3:.1f}", "inference_errors": stats.errors,
                  **{f"silent_s.{key}": f"{age:.1f}" for key, age in sorted(silent.items())},
                  **{f"drops.{k}": v for k, v in sorted(drops.items())}}
        self.pub_diag.publish(make_diagnostic_array(self.ns, self.get_clock().now().nanoseconds,
                                                    f"{self.get_name()}: semantic scene completion", level, message,
                                                    values))

    def destroy_node(self) -> None:
        """Stop the worker thread, then destroy the node."""
        if self.worker is not None:
            self.worker.stop()
        super().destroy_node()


def _spin_multithreaded(node: Node) -> None:
    """Spin on three threads: the synchronizer, the intake timer and the diagnostics timer run concurrently."""
    executor = MultiThreadedExecutor(num_threads=3)
    executor.add_node(node)
    executor.spin()


def main(args: list[str] | None = None) -> int:
    """Entry point (``ros2 run ssc_ros ssc_node``): spins the node on a multi-threaded executor."""
    return run_node(SSCNode, _spin_multithreaded, args)


if __name__ == "__main__":
    raise SystemExit(main())
