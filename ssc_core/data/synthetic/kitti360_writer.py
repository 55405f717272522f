"""The SSCBench-KITTI-360 layout of the synthetic world: KITTI-360 calibration and image size, images in
``image_00|01/data_rect``, raw scans in ``data_3d_raw``, ``cam0_to_world.txt``, the calibration files of the
real KITTI-360 (``calibration/perspective.txt`` with the intrinsics scaled to the image size,
``calibration/calib_cam_to_velo.txt``), and voxels with SSCBench's
variants — ``.invalid`` one byte per voxel meaning "never hit nor traversed by a LiDAR ray", no
``.occluded``, trunks labelled vegetation (KITTI-360 has no trunk class)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from ssc_core.data.kitti360 import (
    KITTI360_IMAGE_HW,
    Kitti360Paths,
    kitti360_calib,
    write_kitti360_calib,
    write_kitti360_invalid,
    write_kitti360_labels,
    write_kitti360_occupancy,
    write_kitti360_poses,
)
from ssc_core.data.semantic_kitti import write_image, write_points
from ssc_core.data.synthetic.generate import SyntheticScene, claim_output
from ssc_core.data.synthetic.lidar import Scan
from ssc_core.data.synthetic.options import SEQ08_IMAGE_SIZE, SyntheticOptions
from ssc_core.data.synthetic.voxels import range_filter, traversed_by_rays
from ssc_core.geometry.poses import invert_transform, transform_points
from ssc_core.geometry.voxelize import majority_vote_labels, occupancy_from_points

KITTI360_IMAGE_SIZE = (KITTI360_IMAGE_HW[1], KITTI360_IMAGE_HW[0])
TRUNK, VEGETATION = 71, 70


def kitti360_velodyne_path(paths: Kitti360Paths, frame: int) -> Path:
    """``<root>/data_3d_raw/<drive>/velodyne_points/data/NNNNNNNNNN.bin``, where KITTI-360 keeps raw scans."""
    return paths.root / "data_3d_raw" / paths.drive / "velodyne_points" / "data" / f"{frame:010d}.bin"


def kitti360_options(options: SyntheticOptions) -> SyntheticOptions:
    """The options with KITTI-360's image size (1408 x 376) as the calibration's size, and as the image size
    unless another than the SemanticKITTI default was asked for."""
    size = KITTI360_IMAGE_SIZE if tuple(options.image_size) == SEQ08_IMAGE_SIZE else options.image_size
    return replace(options, image_size=size, calib_image_size=KITTI360_IMAGE_SIZE, calib_file=None)


def kitti360_voxels(scene: SyntheticScene, index: int, scans: dict[int, Scan]) -> tuple[np.ndarray, ...]:
    """(label uint16 raw ids, bin 0/1, invalid 0/1) of frame ``index``: majority vote of the aggregated
    scans (trunk -> vegetation), single-scan occupancy, and voxels neither occupied nor crossed by any ray of
    every ``invalid_origin_stride``-th aggregated scan."""
    o = scene.options
    grid = o.grid
    last = min(index + o.label_scans, scene.n_scans - 1)
    T_cur_world = invert_transform(scene.T_world_velo(index))
    points, labels, rays_end, rays_origin = [], [], [], []
    for k, j in enumerate(range(index, last + 1)):
        keep = range_filter(scans[j].points_velo, o.label_min_range_m, o.label_max_range_m)
        T_cur_j = T_cur_world @ scene.T_world_velo(j)
        pts = transform_points(T_cur_j, scans[j].points_velo[keep, :3].astype(np.float64))
        points.append(pts)
        labels.append(np.where(scans[j].semantic[keep] == TRUNK, VEGETATION, scans[j].semantic[keep]))
        if k % o.invalid_origin_stride == 0:
            rays_end.append(pts)
            rays_origin.append(np.broadcast_to(T_cur_j[:3, 3], pts.shape))
    label = majority_vote_labels(np.concatenate(points), np.concatenate(labels), grid)
    first = range_filter(scans[index].points_velo, o.label_min_range_m, o.label_max_range_m)
    single = occupancy_from_points(scans[index].points_velo[first], grid)
    seen = traversed_by_rays(np.concatenate(rays_end), np.concatenate(rays_origin), grid)
    invalid = (~seen & (label == 0)).astype(np.uint8)
    return label, single, invalid


def generate_kitti360_drive(output_root: str | Path, drive: str | int = 9, frames: int = 20, seed: int = 0,
                            options: SyntheticOptions | None = None, progress: bool = False) -> Kitti360Paths:
    """Write a synthetic drive in the SSCBench-KITTI-360 layout under ``output_root/data_2d_raw/<drive>``
    (and ``data_3d_raw`` for the scans, ``calibration/`` for the calibration the images were rendered with,
    shared by every drive of the root). The right image uses a 0.54 m baseline. Folders holding data that no
    synthetic run wrote (a real KITTI-360 root) are never touched: ConfigError. Returns the drive's paths."""
    options = kitti360_options(options or SyntheticOptions())
    paths = Kitti360Paths.of(output_root, drive)
    claim_output(paths.root, [paths.calibration, paths.dir, kitti360_velodyne_path(paths, 0).parent.parent])
    scene = SyntheticScene(frames, seed, options, base_calib=kitti360_calib())
    write_kitti360_calib(paths.root, scene.calib, options.image_size)
    T_world_cam0 = scene.path.T_world_velo[:frames] @ invert_transform(scene.calib.T_cam0_velo)[None]
    write_kitti360_poses(paths.cam0_to_world, np.arange(frames), T_world_cam0, rows=4)
    for i, scan, ready, scans in scene.drive(f"synthetic {paths.drive}", progress):
        if i < frames:
            write_points(kitti360_velodyne_path(paths, i), scan.points_velo)
            if options.write_images:
                write_image(paths.image(i, 0), scene.render(i, 2).rgb)
                if options.write_right_image:
                    write_image(paths.image(i, 1), scene.render(i, 3).rgb)
        for frame in ready:
            label, single, invalid = kitti360_voxels(scene, frame, scans)
            write_kitti360_labels(paths.voxel(frame, "label"), label)
            write_kitti360_occupancy(paths.voxel(frame, "bin"), single)
            write_kitti360_invalid(paths.voxel(frame, "invalid"), invalid)
    return paths
