"""A SemanticKITTI sequence folder as timed "what to publish" records (ROS-agnostic).

Used by ``kitti_replay_node`` (live topics) and by ``ssc-bag kitti2bag`` (bag files): ``KittiSequence`` reads
frames (images, scan, pose, ground-truth voxels) and calibration; ``replay_messages`` / ``static_messages`` turn
them into ``(topic, type name, message)`` tuples through a ``MessageNamespace``.

Conventions (kitti2bag names, see docs/ros.md):
- stamps: ``stamp_offset_ns + times.txt`` (one stamp per frame index shared by images and scan, so exact-time
  sync works); the default offset of 1 s keeps the first stamp away from 0, which TF reads as "latest".
  When looping, loop ``k`` adds ``k * (duration + loop_gap_s)``: time never goes backwards, and the gap is longer
  than any model's history window, so the first frames of a loop do not pick history from the previous one.
- TF: ``odom -> velo_link`` from poses.txt (LiDAR poses ``Tr^-1 P_i Tr``); static ``velo_link -> camera_gray_left``
  (cam0 = inv(Tr)), ``velo_link -> camera_color_left`` (inv([I|t2] Tr)) and ``camera_color_right`` (from P3).
- CameraInfo: P = P2 (P3 for the right camera), K = P[:3,:3], R = I, D = 0, size from the PNG.
- ground truth: ``voxels/NNNNNN.label`` (+ ``.invalid``) as a MarkerArray in velo_link, when present.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ssc_core.data.label_maps import SEMANTIC_KITTI, ClassSet
from ssc_core.data.semantic_kitti import (
    SequencePaths,
    read_calib,
    read_image,
    read_packed_bits,
    read_points,
    read_poses,
    read_times,
    read_voxel_labels,
    remap_voxel_labels,
)
from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.geometry.poses import invert_transform
from ssc_core.types import IGNORE_LABEL, GridSpec, Prediction
from ssc_ros.messages import (
    MessageNamespace,
    make_camera_info,
    make_clock,
    make_image,
    make_pointcloud2,
    make_tf_message,
    make_transform_stamped,
)
from ssc_ros.pipeline.inputs import reference_offset
from ssc_ros.pipeline.outputs import OutputBuilder, OutputOptions

DEFAULT_STAMP_OFFSET_NS = 1_000_000_000
DEFAULT_PERIOD_S = 0.1


@dataclass(frozen=True)
class ReplayNames:
    """Topic and frame names of the replay (kitti2bag style)."""

    fixed_frame: str = "odom"
    lidar_frame: str = "velo_link"
    cam0_frame: str = "camera_gray_left"
    left_frame: str = "camera_color_left"
    right_frame: str = "camera_color_right"
    left_image: str = "/kitti/camera_color_left/image_raw"
    left_info: str = "/kitti/camera_color_left/camera_info"
    right_image: str = "/kitti/camera_color_right/image_raw"
    right_info: str = "/kitti/camera_color_right/camera_info"
    cloud: str = "/kitti/velo/pointcloud"
    gt_voxels: str = "/kitti/voxels_gt"
    tf: str = "/tf"
    tf_static: str = "/tf_static"
    clock: str = "/clock"


@dataclass
class ReplayRecord:
    """One frame to publish. stamp_ns: its stamp; image_left/right: (H, W, 3) uint8 RGB or None;
    points_velo: (N, 4) float32 or None; T_odom_velo: (4, 4) LiDAR pose or None; gt_labels: (X, Y, Z) uint8
    train ids with 255 for invalid voxels, or None when the frame has no voxel labels; gt_error: why the frame's
    voxel labels were left out (only with ``KittiSequence(skip_bad_gt=True)``), else None."""

    index: int
    stamp_ns: int
    image_left: np.ndarray | None
    image_right: np.ndarray | None
    points_velo: np.ndarray | None
    T_odom_velo: np.ndarray | None
    gt_labels: np.ndarray | None
    gt_error: str | None = None


class KittiSequence:
    """Reads one SemanticKITTI sequence folder for replay.

    sequence_dir: ``.../sequences/XX``; start/end: frame range [start, end) (end None = all);
    load_right / load_gt: read image_3 and voxel labels when present; stamp_offset_ns: added to times.txt;
    loop_gap_s: extra time between loops; grid: the voxel grid of the GT files; skip_bad_gt: a frame whose voxel
    labels cannot be read (wrong size for ``grid``, corrupt) keeps its images, scan and pose and says why in
    ``ReplayRecord.gt_error`` instead of raising DataFormatError. ``notes``: one line per thing the replay
    leaves out or makes up (no times.txt: stamps from the frame number; no poses.txt: no /tf), to show the user.
    """

    def __init__(
        self, sequence_dir: str | Path, start: int = 0, end: int | None = None, load_right: bool = True,
        load_gt: bool = True, stamp_offset_ns: int = DEFAULT_STAMP_OFFSET_NS, loop_gap_s: float = 5.0,
        class_set: ClassSet = SEMANTIC_KITTI, grid: GridSpec | None = None, skip_bad_gt: bool = False,
    ) -> None:
        sequence_dir = Path(sequence_dir)
        if start < 0 or (end is not None and end < 0):
            raise ConfigError(f"frame range start {start} / end {end} must not be negative")
        self.paths = SequencePaths.existing(sequence_dir)
        self.calib = read_calib(self.paths.calib)
        self.class_set = class_set
        self.grid = grid or GridSpec.semantic_kitti()
        self.load_right = load_right and self.calib.P3 is not None
        self.load_gt = load_gt
        self.skip_bad_gt = skip_bad_gt
        all_frames = sorted(set(self.paths.scan_frames()) | set(self.paths.image_frames(2)))
        if not all_frames:
            raise DataFormatError(f"{sequence_dir}: no scans in velodyne/ and no images in image_2/")
        self.frames = [f for f in all_frames if f >= start and (end is None or f < end)]
        if not self.frames:
            raise DataFormatError(f"{sequence_dir}: no frames in the range [{start}, {end}) (have "
                                  f"{all_frames[0]}..{all_frames[-1]})")
        n_needed = all_frames[-1] + 1
        self.notes: list[str] = []  # what the replay leaves out or makes up, for the user to read
        if self.paths.times.is_file():
            self.times_s = read_times(self.paths.times)
            if len(self.times_s) < n_needed:
                raise DataFormatError(f"{self.paths.times}: {len(self.times_s)} times for frames up to {n_needed - 1}")
            if np.any(np.diff(self.times_s) <= 0):
                raise DataFormatError(f"{self.paths.times}: times must increase strictly")
        else:
            self.times_s = np.arange(n_needed) * DEFAULT_PERIOD_S
            self.notes.append(f"{self.paths.times} is missing: frames are stamped {DEFAULT_PERIOD_S:g} s apart by "
                              "their number")
        self.poses_velo = None
        if self.paths.poses.is_file():
            poses_cam0 = read_poses(self.paths.poses)
            if len(poses_cam0) < n_needed:
                raise DataFormatError(f"{self.paths.poses}: {len(poses_cam0)} poses for frames up to {n_needed - 1}")
            tr = self.calib.T_cam0_velo
            self.poses_velo = invert_transform(tr)[None] @ poses_cam0 @ tr[None]
        else:
            self.notes.append(f"{self.paths.poses} is missing: no odom -> velo_link transforms (/tf), so models with "
                              "a history window cannot place earlier frames")
        self.stamp_offset_ns = int(stamp_offset_ns)
        first, last = self.times_s[self.frames[0]], self.times_s[self.frames[-1]]
        self.loop_period_ns = int(round((last - first + loop_gap_s) * 1e9))
        self._sizes: dict[int, tuple[int, int]] = {}

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def period_s(self) -> float:
        """Median time between frames (s)."""
        sel = self.times_s[self.frames]
        return float(np.median(np.diff(sel))) if len(sel) > 1 else DEFAULT_PERIOD_S

    def stamp_ns(self, frame: int, loop: int = 0) -> int:
        """Stamp of ``frame`` in loop number ``loop``."""
        return self.stamp_offset_ns + loop * self.loop_period_ns + int(round(self.times_s[frame] * 1e9))

    def image_size(self, camera: int = 2) -> tuple[int, int]:
        """(width, height) of the camera's images (read from the first PNG, cached)."""
        if camera not in self._sizes:
            from PIL import Image

            frames = self.paths.image_frames(camera)
            if not frames:
                raise DataFormatError(f"{self.paths.dir}: no images in image_{camera}/")
            with Image.open(self.paths.image(frames[0], camera)) as img:
                self._sizes[camera] = img.size
        return self._sizes[camera]

    def record(self, frame: int, loop: int = 0) -> ReplayRecord:
        """Read everything of one frame."""
        img_path = self.paths.image(frame, 2)
        right_path = self.paths.image(frame, 3)
        scan_path = self.paths.velodyne(frame)
        gt, gt_error = None, None
        label_path = self.paths.voxel(frame, "label")
        if self.load_gt and label_path.is_file():
            try:
                gt = self._read_gt(frame, label_path)
            except DataFormatError as exc:
                if not self.skip_bad_gt:
                    raise
                gt_error = str(exc)
        return ReplayRecord(
            index=frame, stamp_ns=self.stamp_ns(frame, loop),
            image_left=read_image(img_path) if img_path.is_file() else None,
            image_right=read_image(right_path) if self.load_right and right_path.is_file() else None,
            points_velo=read_points(scan_path) if scan_path.is_file() else None,
            T_odom_velo=None if self.poses_velo is None else self.poses_velo[frame].copy(),
            gt_labels=gt, gt_error=gt_error,
        )

    def _read_gt(self, frame: int, label_path: Path) -> np.ndarray:
        """(X, Y, Z) uint8 train ids of a frame's voxel labels, 255 where ``.invalid`` is set."""
        raw = read_voxel_labels(label_path, self.grid.dims)
        invalid_path = self.paths.voxel(frame, "invalid")
        invalid = read_packed_bits(invalid_path, self.grid.dims) if invalid_path.is_file() else None
        return remap_voxel_labels(raw, self.class_set, invalid, source=label_path)

    def __iter__(self) -> Iterator[ReplayRecord]:
        for frame in self.frames:
            yield self.record(frame)

    def static_transforms(self, names: ReplayNames = ReplayNames()) -> list[tuple[str, str, np.ndarray]]:
        """[(parent, child, T_parent_child)] of the fixed sensor frames: LiDAR -> cameras."""
        tr = self.calib.T_cam0_velo
        out = [(names.lidar_frame, names.cam0_frame, invert_transform(tr)),
               (names.lidar_frame, names.left_frame, invert_transform(reference_offset(self.calib.P2) @ tr))]
        if self.calib.P3 is not None:
            out.append((names.lidar_frame, names.right_frame,
                        invert_transform(reference_offset(self.calib.P3) @ tr)))
        return out


def static_messages(seq: KittiSequence, ns: MessageNamespace, stamp_ns: int,
                    names: ReplayNames = ReplayNames()) -> list[tuple[str, str, object]]:
    """[(topic, type name, message)] to publish once, latched: /tf_static with the sensor frames."""
    transforms = [make_transform_stamped(ns, stamp_ns, p, c, T) for p, c, T in seq.static_transforms(names)]
    return [(names.tf_static, "TFMessage", make_tf_message(ns, transforms))]


class GroundTruthMarkers:
    """Ground-truth voxel labels -> serialised MarkerArray (namespace 'gt/<class>'), invalid voxels hidden."""

    def __init__(self, class_set: ClassSet = SEMANTIC_KITTI, options: OutputOptions | None = None) -> None:
        opts = options or OutputOptions()
        self.builder = OutputBuilder(class_set, OutputOptions(**{**opts.__dict__, "marker_ns": "gt"}))

    def build(self, ns: MessageNamespace, labels: np.ndarray, grid: GridSpec, stamp_ns: int, frame_id: str):
        """MarkerArray of ``labels`` (train ids, 255 = invalid) on ``grid``, as CDR bytes (what rclpy publishers and
        the bag writer take; ``OutputBuilder.marker_array``)."""
        shown = np.where(labels == IGNORE_LABEL, 0, labels).astype(np.uint8)
        pred = Prediction(labels=shown, confidence=np.ones(shown.shape, np.float32), grid=grid,
                          stamp_ns=stamp_ns, frame_id=frame_id)
        return self.builder.marker_array(ns, pred)


def replay_messages(
    seq: KittiSequence, record: ReplayRecord, ns: MessageNamespace, names: ReplayNames = ReplayNames(),
    gt_markers: GroundTruthMarkers | None = None, publish_clock: bool = True,
) -> list[tuple[str, str, object]]:
    """[(topic, type name, message)] of one frame, all stamped ``record.stamp_ns``: /clock, /tf (odom -> velo),
    left (and right) image + camera_info, the cloud (x, y, z, intensity) and, with ``gt_markers`` and labels,
    the ground-truth MarkerArray (serialised: CDR bytes)."""
    stamp = record.stamp_ns
    out: list[tuple[str, str, object]] = []
    if publish_clock:
        out.append((names.clock, "Clock", make_clock(ns, stamp)))
    if record.T_odom_velo is not None:
        tf = make_transform_stamped(ns, stamp, names.fixed_frame, names.lidar_frame, record.T_odom_velo)
        out.append((names.tf, "TFMessage", make_tf_message(ns, [tf])))
    if record.image_left is not None:
        h, w = record.image_left.shape[:2]
        out.append((names.left_image, "Image", make_image(ns, stamp, names.left_frame, record.image_left)))
        out.append((names.left_info, "CameraInfo", make_camera_info(ns, stamp, names.left_frame, seq.calib.P2, w, h)))
    if record.image_right is not None and seq.calib.P3 is not None:
        h, w = record.image_right.shape[:2]
        out.append((names.right_image, "Image", make_image(ns, stamp, names.right_frame, record.image_right)))
        out.append((names.right_info, "CameraInfo",
                    make_camera_info(ns, stamp, names.right_frame, seq.calib.P3, w, h)))
    if record.points_velo is not None:
        out.append((names.cloud, "PointCloud2", make_pointcloud2(ns, stamp, names.lidar_frame, record.points_velo)))
    if gt_markers is not None and record.gt_labels is not None:
        markers = gt_markers.build(ns, record.gt_labels, seq.grid, stamp, names.lidar_frame)
        out.append((names.gt_voxels, "MarkerArray", markers))
    return out
