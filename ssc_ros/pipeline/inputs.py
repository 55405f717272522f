"""Synchronized input messages -> ssc_core Frame, with validation, counted drops and rate-limited logs.

``FrameAssembler.assemble`` takes the messages of one synchronized set (image, camera_info, optional
PointCloud2, optional right image + camera_info; or the PointCloud2 alone for a LiDAR-only model) plus the
transforms the node looked up, and returns a Frame or None. Every rejection increments ``drops[reason]`` and
logs one rate-limited line naming the topic and the problem; nothing here raises.

Calibration from ROS: the left CameraInfo's P (3x4, rectified) plays KITTI's P2, and the camera pose comes from
TF. P's 4th column is a translation of the camera w.r.t. the rectified reference frame (KITTI: cam0), so
``T_cam0_velo = inv([I | t]) @ T_cam_velo`` with t = (P[0,3]/fx, P[1,3]/fy, P[2,3]); for a camera whose P has a
zero 4th column this is just T_cam_velo. The replay node publishes KITTI exactly this way, so the model sees
K = P2[:3,:3] and T_cam0_velo = Tr as in training.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ssc_core.errors import DataFormatError, SSCError
from ssc_core.geometry.poses import is_rigid, transform_points
from ssc_core.types import Calib, Frame
from ssc_ros.messages import camera_info_to_P, image_to_rgb, pointcloud2_to_xyzi, stamp_to_ns
from ssc_ros.pipeline.health import DropCounter, RateLimitedLogger


def reference_offset(P: np.ndarray) -> np.ndarray:
    """(4, 4) translation [I | t] of a rectified camera w.r.t. its reference frame, from P's 4th column."""
    T = np.eye(4)
    T[0, 3] = P[0, 3] / P[0, 0]
    T[1, 3] = P[1, 3] / P[1, 1]
    T[2, 3] = P[2, 3]
    return T


def calib_from_ros(P_left: np.ndarray, T_camleft_velo: np.ndarray, P_right: np.ndarray | None = None) -> Calib:
    """Calib (KITTI convention) from the left camera's P, its TF pose (camera <- LiDAR) and the right camera's P."""
    T_cam0_velo = np.linalg.inv(reference_offset(P_left)) @ np.asarray(T_camleft_velo, dtype=np.float64)
    return Calib(P2=P_left, T_cam0_velo=T_cam0_velo, P3=P_right)


class FrameAssembler:
    """Turns synchronized messages into Frames.

    needs_points / needs_right_image / needs_image: what the model consumes (a missing/empty one drops the set;
    without the image the set is the cloud alone, stamped by it, and the Frame has no image or calibration);
    drops: shared counters; warn: a function(str) for log lines (rate-limited here, per reason);
    reset_after_s: a stamp this far behind the last accepted one is a restart (replay/bag played again), not a
    backwards stamp: it is accepted and the stamp check starts over.
    """

    def __init__(
        self, needs_points: bool, needs_right_image: bool, drops: DropCounter | None = None,
        warn: Callable[[str], None] = print, log_period_s: float = 5.0, reset_after_s: float = 3.0,
        needs_image: bool = True,
    ) -> None:
        self.needs_points = needs_points or not needs_image
        self.needs_right_image = needs_right_image and needs_image
        self.needs_image = needs_image
        self.drops = drops or DropCounter()
        self.log = RateLimitedLogger(warn, log_period_s)
        self.reset_after_ns = int(reset_after_s * 1e9)
        self.last_stamp_ns: int | None = None

    def reject(self, reason: str, message: str) -> None:
        """Count a drop for ``reason`` and log ``message`` (rate-limited per reason)."""
        self.drops.drop(reason)
        self.log.log(reason, f"dropping input: {message}")

    def assemble(
        self, image_msg: Any = None, info_msg: Any = None, cloud_msg: Any = None, right_image_msg: Any = None,
        right_info_msg: Any = None, T_cam_velo: np.ndarray | None = None, T_odom_velo: np.ndarray | None = None,
        T_velo_cloud: np.ndarray | None = None, index: int = -1,
    ) -> Frame | None:
        """One Frame from one synchronized set, or None (counted + logged). T_cam_velo: left camera <- LiDAR
        (None = TF missing: dropped, for camera models); T_odom_velo: LiDAR pose in the fixed frame (None allowed:
        no history); T_velo_cloud: LiDAR <- cloud frame when the cloud is not in the LiDAR frame. Without
        ``needs_image`` the image, camera_info and T_cam_velo are not read (pass None)."""
        self.drops.count_received()
        reference, what = (image_msg, "image") if self.needs_image else (cloud_msg, "cloud")
        if reference is None:
            self.reject(f"missing_{'image' if self.needs_image else 'points'}", f"the set has no {what}")
            return None
        stamp_ns = stamp_to_ns(reference.header.stamp)
        if stamp_ns <= 0:
            self.reject("bad_stamp", f"{what} stamp {stamp_ns} ns is not positive (unset header?)")
            return None
        if self.last_stamp_ns is not None and stamp_ns < self.last_stamp_ns - self.reset_after_ns:
            self.log.log("time_reset", f"input time jumped back from {self.last_stamp_ns} to {stamp_ns} ns: restart")
            self.last_stamp_ns = None
        if self.last_stamp_ns is not None and stamp_ns <= self.last_stamp_ns:
            kind = "repeated" if stamp_ns == self.last_stamp_ns else "backwards"
            self.reject(f"{kind}_stamp", f"{kind} stamp {stamp_ns} ns (last processed {self.last_stamp_ns} ns)")
            return None
        try:
            frame = self._convert(stamp_ns, image_msg, info_msg, cloud_msg, right_image_msg, right_info_msg,
                                  T_cam_velo, T_odom_velo, T_velo_cloud, index)
        except _Reject as rej:
            self.reject(rej.reason, str(rej))
            return None
        self.last_stamp_ns = stamp_ns
        return frame

    def reset(self) -> None:
        """Forget the last stamp (after a replay restart / time jump)."""
        self.last_stamp_ns = None

    def _convert(self, stamp_ns, image_msg, info_msg, cloud_msg, right_image_msg, right_info_msg, T_cam_velo,
                 T_odom_velo, T_velo_cloud, index) -> Frame:
        if not self.needs_image:
            return Frame(stamp_ns=stamp_ns, image_left=None, calib=None, T_odom_velo=T_odom_velo,
                         points_velo=self._required_points(cloud_msg, T_velo_cloud), index=index)
        try:
            image = image_to_rgb(image_msg, "image")
        except DataFormatError as exc:
            raise _Reject("bad_image", str(exc)) from None
        try:
            P_left = camera_info_to_P(info_msg, "camera_info")
        except DataFormatError as exc:
            raise _Reject("bad_camera_info", str(exc)) from None
        w, h = int(info_msg.width), int(info_msg.height)
        if (w, h) != (0, 0) and (w, h) != (image.shape[1], image.shape[0]):
            raise _Reject("bad_camera_info",
                          f"camera_info is {w}x{h} but the image is {image.shape[1]}x{image.shape[0]}")
        if T_cam_velo is None:
            raise _Reject("missing_tf", "no camera <- LiDAR transform (TF) for this stamp; cannot project")
        if not is_rigid(T_cam_velo, atol=1e-4):
            raise _Reject("missing_tf", "camera <- LiDAR transform is not a rigid transform")
        P_right, image_right = None, None
        if self.needs_right_image:
            if right_image_msg is None or right_info_msg is None:
                raise _Reject("missing_right_image", "the model needs the right image but none came with the set")
            try:
                image_right = image_to_rgb(right_image_msg, "image_right")
                P_right = camera_info_to_P(right_info_msg, "camera_info_right")
            except DataFormatError as exc:
                raise _Reject("bad_right_image", str(exc)) from None
        points = self._required_points(cloud_msg, T_velo_cloud) if self.needs_points else None
        try:
            calib = calib_from_ros(P_left, T_cam_velo, P_right)
        except SSCError as exc:
            raise _Reject("bad_camera_info", str(exc)) from None
        return Frame(stamp_ns=stamp_ns, image_left=image, calib=calib, T_odom_velo=T_odom_velo,
                     image_right=image_right, points_velo=points, index=index)

    def _required_points(self, cloud_msg: Any, T_velo_cloud: np.ndarray | None) -> np.ndarray:
        if cloud_msg is None:
            raise _Reject("missing_points", "the model needs a point cloud but none came with the set")
        try:
            return self._points(cloud_msg, T_velo_cloud)
        except DataFormatError as exc:
            raise _Reject("bad_points", str(exc)) from None

    def _points(self, cloud_msg: Any, T_velo_cloud: np.ndarray | None) -> np.ndarray:
        n_total = int(cloud_msg.width) * int(cloud_msg.height)
        points = pointcloud2_to_xyzi(cloud_msg, "points")
        if len(points) == 0:
            raise DataFormatError(f"points: the cloud is empty (no finite points among {n_total})")
        if len(points) < n_total:
            self.drops.drop("nonfinite_points")
            self.log.log("nonfinite_points",
                         f"points: removed {n_total - len(points)} of {n_total} points with NaN/inf coordinates")
        if T_velo_cloud is not None:
            points = transform_points(T_velo_cloud, points)
        return points


class _Reject(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
