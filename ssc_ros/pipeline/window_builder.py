"""WindowBuilder: one synchronized input set + a TF lookup -> the FrameWindow the model runs on.

The step between the synchronizer and the inference worker, shared by the live node (TF from tf2_ros) and
offline runs (TF from a bag): look up camera <- LiDAR (projection; camera models only), fixed <- LiDAR (temporal
window pose) and LiDAR <- cloud (when the cloud comes in another frame); turn the messages into a Frame
(``FrameAssembler``: validation, counted drops); store it in the ``TemporalBuffer`` and return the window for it.

Input sets are dicts keyed by the model's ``SensorInputs.keys``; ``lookup(target, source, stamp_ns)`` returns
T_target_source as a (4, 4) float64 array or None when the transform is unavailable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ssc_core.types import FrameWindow
from ssc_ros.pipeline.health import DropCounter
from ssc_ros.pipeline.inputs import FrameAssembler
from ssc_ros.pipeline.sensor_inputs import SensorInputs
from ssc_ros.pipeline.temporal_buffer import PushResult, TemporalBuffer

Lookup = Callable[[str, str, int], "np.ndarray | None"]


class WindowBuilder:
    """predictor: the Predictor contract (history_offsets, frame_rate_hz, needs_image, needs_points,
    needs_right_image); params: ssc_node parameter values (frames.*, window.*, log.period_s); drops: shared
    counters; warn: log function for rate-limited warnings."""

    def __init__(self, predictor: Any, params: dict[str, Any], drops: DropCounter | None = None,
                 warn: Callable[[str], None] = print) -> None:
        self.p = params
        self.drops = drops or DropCounter()
        self.inputs = SensorInputs.of(predictor)
        self.keys = self.inputs.keys
        self.assembler = FrameAssembler(self.inputs.points, self.inputs.image_right, self.drops, warn=warn,
                                        log_period_s=params["log.period_s"],
                                        reset_after_s=params["window.reset_after_s"], needs_image=self.inputs.image)
        window_kwargs = dict(tolerance_s=params["window.tolerance_s"] or None,
                             reset_after_s=params["window.reset_after_s"])
        if params["window.from_model"]:
            self.buffer = TemporalBuffer.from_frame_offsets(predictor.history_offsets, predictor.frame_rate_hz,
                                                            **window_kwargs)
        else:
            self.buffer = TemporalBuffer(list(params["window.offsets_s"]), **window_kwargs)
        self.last_push: PushResult | None = None

    @property
    def needs_pose(self) -> bool:
        """True when the window has history frames (their poses come from fixed <- LiDAR TF)."""
        return bool(self.buffer.offsets_ns)

    def lidar_frame(self, items: dict[str, Any]) -> str:
        """The LiDAR (grid) frame: frames.lidar, else the cloud's frame_id, else '' (unknown)."""
        if self.p["frames.lidar"]:
            return self.p["frames.lidar"]
        return items["points"].header.frame_id if "points" in items else ""

    def required_transforms(self, items: dict[str, Any]) -> list[tuple[str, str]]:
        """(target, source) pairs a set waits for: camera <- LiDAR (camera models) and, with history,
        fixed <- LiDAR."""
        lidar = self.lidar_frame(items)
        pairs = [(items["camera_info"].header.frame_id, lidar)] if self.inputs.image else []
        if self.needs_pose:
            pairs.append((self.p["frames.fixed"], lidar))
        return pairs

    def build(self, items: dict[str, Any], stamp_ns: int, lookup: Lookup, index: int = -1) -> FrameWindow | None:
        """The window for one set, or None (the reason is counted in ``drops`` and logged, rate-limited).
        ``index`` becomes the Frame's index (the bag path numbers its sets)."""
        self.last_push = None
        lidar = self.lidar_frame(items)
        T_cam_velo = None
        if self.inputs.image:
            camera = items["camera_info"].header.frame_id
            T_cam_velo = lookup(camera, lidar, stamp_ns) if lidar else None
            if T_cam_velo is None:
                return self._reject("missing_tf", f"no TF {camera} <- '{lidar}' at stamp {stamp_ns} ns")
        T_odom_velo = lookup(self.p["frames.fixed"], lidar, stamp_ns) if self.needs_pose else None
        if T_odom_velo is None and self.needs_pose:
            if self.p["window.require_pose"]:
                return self._reject("missing_pose", f"no pose {self.p['frames.fixed']} <- {lidar} at {stamp_ns} ns")
            self.drops.drop("missing_pose")
        cloud = items.get("points")
        T_velo_cloud = None
        if cloud is not None and cloud.header.frame_id and cloud.header.frame_id != lidar:
            T_velo_cloud = lookup(lidar, cloud.header.frame_id, stamp_ns)
            if T_velo_cloud is None:
                return self._reject("missing_tf", f"no TF {lidar} <- {cloud.header.frame_id} for the cloud")
        frame = self.assembler.assemble(
            items.get("image"), items.get("camera_info"), cloud, items.get("image_right"),
            items.get("camera_info_right"), T_cam_velo=T_cam_velo, T_odom_velo=T_odom_velo, T_velo_cloud=T_velo_cloud,
            index=index)
        if frame is None:
            return None
        self.last_push = self.buffer.push(frame)
        window, _ = self.buffer.window(frame)
        return window

    def _reject(self, reason: str, message: str) -> None:
        """A set dropped before it reached the assembler: counted as received and as a drop, logged."""
        self.drops.count_received()
        self.assembler.reject(reason, message)
