"""An NYU split (3D-Sketch / CleanerS files plus the MonoScene ``.bin`` of each frame, as ``ssc-make-synthetic
--layout nyu`` writes them) as timed "what to publish" records, for ``ssc-bag nyu2bag`` (ROS-agnostic).

Every frame is its own room, shown for ``period_s``. Per frame, all stamped alike:

- ``/tf``: ``room -> camera_rgb_optical_frame`` (the camera pose of the ``.bin``) and ``room -> nyu_grid`` (a
  translation to the grid's corner, so the node runs with ``rgbd.grid_frame: nyu_grid`` and origin 0);
- the RGB image (rgb8), the depth registered to it (32FC1 metres, the NYU depth PNG's values exactly) and
  camera_info (NYU's K);
- the ground-truth labels as a MarkerArray in ``nyu_grid`` (255 hidden), with the NYU class colours.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ssc_core.data.nyu import (
    NYU,
    NYU_CAM_K,
    NYUTsdfPaths,
    find_nyu_root,
    read_nyu_bin,
    read_nyu_depth,
    read_nyu_label,
)
from ssc_core.data.rgbd import RGBDFrame, to_room_xyz
from ssc_core.data.semantic_kitti import read_image
from ssc_core.errors import DataFormatError
from ssc_core.geometry.poses import invert_transform
from ssc_core.types import GridSpec, Prediction
from ssc_ros.messages import (
    MessageNamespace,
    make_camera_info,
    make_depth_image,
    make_image,
    make_tf_message,
    make_transform_stamped,
)
from ssc_ros.replay import DEFAULT_STAMP_OFFSET_NS, GroundTruthMarkers


@dataclass(frozen=True)
class NYUReplayNames:
    """Topic and frame names of the indoor replay (OpenNI-style camera topics)."""

    room_frame: str = "room"
    grid_frame: str = "nyu_grid"
    camera_frame: str = "camera_rgb_optical_frame"
    image: str = "/camera/rgb/image_raw"
    depth: str = "/camera/depth_registered/image_raw"
    camera_info: str = "/camera/rgb/camera_info"
    gt_voxels: str = "/nyu/voxels_gt"
    tf: str = "/tf"
    tf_static: str = "/tf_static"


@dataclass
class NYURecord:
    """One frame: ``frame_id``; ``stamp_ns``; ``rgbd`` (image, depth, K, T_grid_cam with the grid frame at the grid
    corner, stamp); ``T_room_cam`` and ``grid`` (origin in the room) from the ``.bin``; ``labels`` (60, 36, 60)."""

    frame_id: str
    stamp_ns: int
    rgbd: RGBDFrame
    T_room_cam: np.ndarray
    grid: GridSpec
    labels: np.ndarray


def read_nyu_record(root: str | Path, frame_id: str, split: str, stamp_ns: int = 0) -> NYURecord:
    """Read one frame's image, depth, labels and (from ``NYU<split>/NYU<id>_0000.bin``) camera pose and grid origin.
    DataFormatError when a file is missing or malformed."""
    nyu = find_nyu_root(root)
    paths = NYUTsdfPaths(nyu)
    bin_path = nyu / f"NYU{split}" / f"NYU{frame_id}_0000.bin"
    origin, T_room_cam, _ = read_nyu_bin(bin_path)
    grid = replace(GridSpec.nyu(), origin=tuple(float(v) for v in origin))
    T_room_cam = np.asarray(T_room_cam, dtype=np.float64)
    T_room_grid = np.eye(4)
    T_room_grid[:3, 3] = origin
    rgbd = RGBDFrame(image_rgb=read_image(paths.rgb(frame_id, split)), depth_m=read_nyu_depth(paths.depth(frame_id,
                     split)), K=NYU_CAM_K.copy(), T_grid_cam=invert_transform(T_room_grid) @ T_room_cam,
                     stamp_ns=stamp_ns)
    if rgbd.image_rgb.shape[:2] != rgbd.depth_m.shape:
        raise DataFormatError(f"{nyu}: frame {frame_id}: image {rgbd.image_rgb.shape[:2]} and depth "
                              f"{rgbd.depth_m.shape} differ")
    return NYURecord(frame_id, stamp_ns, rgbd, T_room_cam, grid, read_nyu_label(paths.label(frame_id)))


def nyu_records(root: str | Path, split: str = "test", period_s: float = 1.0,
                stamp_offset_ns: int = DEFAULT_STAMP_OFFSET_NS) -> list[tuple[str, int]]:
    """(frame id, stamp) of every frame of ``split``, ``period_s`` apart from ``stamp_offset_ns``."""
    ids = NYUTsdfPaths(find_nyu_root(root)).frame_ids(split)
    return [(frame_id, stamp_offset_ns + int(round(i * period_s * 1e9))) for i, frame_id in enumerate(ids)]


def nyu_replay_messages(record: NYURecord, ns: MessageNamespace, names: NYUReplayNames = NYUReplayNames(),
                        gt_markers: GroundTruthMarkers | None = None) -> list[tuple[str, str, object]]:
    """[(topic, type name, message)] of one frame (module docstring), all stamped ``record.stamp_ns``."""
    stamp = record.stamp_ns
    T_room_grid = np.eye(4)
    T_room_grid[:3, 3] = record.grid.origin
    transforms = [make_transform_stamped(ns, stamp, names.room_frame, names.camera_frame, record.T_room_cam),
                  make_transform_stamped(ns, stamp, names.room_frame, names.grid_frame, T_room_grid)]
    h, w = record.rgbd.depth_m.shape
    P = np.hstack([record.rgbd.K, np.zeros((3, 1))])
    out = [(names.tf, "TFMessage", make_tf_message(ns, transforms)),
           (names.image, "Image", make_image(ns, stamp, names.camera_frame, record.rgbd.image_rgb)),
           (names.depth, "Image", make_depth_image(ns, stamp, names.camera_frame, record.rgbd.depth_m)),
           (names.camera_info, "CameraInfo", make_camera_info(ns, stamp, names.camera_frame, P, w, h))]
    if gt_markers is not None:
        at_corner = replace(record.grid, origin=(0.0, 0.0, 0.0))
        shown = to_room_xyz(Prediction(labels=record.labels, confidence=np.ones(record.labels.shape, np.float32),
                                       grid=at_corner))
        out.append((names.gt_voxels, "MarkerArray",
                    gt_markers.build(ns, shown.labels, shown.grid, stamp, names.grid_frame)))
    return out


def nyu_gt_markers() -> GroundTruthMarkers:
    """Ground-truth markers in the NYU class colours."""
    return GroundTruthMarkers(NYU)
