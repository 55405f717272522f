"""The ego car's path and the street it drives on: either a seeded synthetic street (the car in the right
lane at constant speed) or a real KITTI poses.txt with the street laid under it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ssc_core.data.semantic_kitti import poses_cam0_to_velo, read_poses
from ssc_core.data.synthetic.options import SyntheticOptions, seed_stream
from ssc_core.data.synthetic.street import (
    CrossSections,
    Street,
    extend_polyline,
    random_centreline,
    random_junctions,
    resample_polyline,
)
from ssc_core.errors import DataFormatError

EGO_LANE_OFFSET_M = -1.75
LEAD_IN_M = 80.0
MARGIN_M = 260.0  # street beyond the last pose: more than the camera sees (250 m)


@dataclass
class EgoPath:
    """The street and the ego poses: T_world_velo (N, 4, 4) float64 for scans 0..N-1 at 10 Hz, and
    ego_s (N,) the arc length of each pose along the street."""

    street: Street
    T_world_velo: np.ndarray
    ego_s: np.ndarray

    def s_at(self, time_s: float) -> float:
        """Ego arc length at ``time_s`` (linear between scans, extrapolated at the ends)."""
        times = np.arange(len(self.ego_s)) / 10.0
        if len(times) < 2:
            return float(self.ego_s[0])
        rate = (self.ego_s[-1] - self.ego_s[0]) / max(times[-1], 1e-9)
        if time_s > times[-1]:
            return float(self.ego_s[-1] + rate * (time_s - times[-1]))
        return float(np.interp(time_s, times, self.ego_s))


def _pose(xy: np.ndarray, z: float, yaw: float) -> np.ndarray:
    out = np.eye(4)
    c, s = np.cos(yaw), np.sin(yaw)
    out[:3, :3] = [[c, -s, 0], [s, c, 0], [0, 0, 1]]
    out[:3, 3] = [xy[0], xy[1], z]
    return out


def synthetic_path(seed: int, n_scans: int, options: SyntheticOptions) -> EgoPath:
    """A seeded street and the ego car driving its right lane at a constant speed (7-11 m/s by default)."""
    speed = options.speed_mps if options.speed_mps is not None else seed_stream(seed, "speed").uniform(7.0, 11.0)
    drive = speed * max(n_scans - 1, 0) / 10.0
    length = LEAD_IN_M + drive + MARGIN_M
    centre = random_centreline(seed_stream(seed, "centreline"), length, options.curvature)
    street = Street(centre[:, :2], centre[:, 2], CrossSections.random(seed_stream(seed, "sections"), 0.0, length),
                    random_junctions(seed_stream(seed, "junctions"), LEAD_IN_M + 20.0, length, options.junctions))
    ego_s = LEAD_IN_M + speed * np.arange(n_scans) / 10.0
    xy, yaw, z = street.place(ego_s, np.full(n_scans, EGO_LANE_OFFSET_M))
    poses = np.stack([_pose(xy[i], z[i] + options.lidar_height_m, yaw[i]) for i in range(n_scans)])
    return EgoPath(street, poses, ego_s)


def trajectory_path(seed: int, n_min: int, n_scans: int, options: SyntheticOptions,
                    T_cam0_velo: np.ndarray) -> EgoPath:
    """Drive a real KITTI ``options.trajectory_file`` (camera-0 poses.txt) from ``trajectory_start``: the world
    frame is the first used LiDAR pose raised by the mounting height; the street centreline runs 1.75 m to
    the left of the car and its ground follows the car's height. Uses up to ``n_scans`` poses (fewer where
    the file ends) and raises DataFormatError when fewer than ``n_min`` remain."""
    poses_cam0 = read_poses(options.trajectory_file)
    start = options.trajectory_start
    if start < 0 or start >= len(poses_cam0):
        raise DataFormatError(
            f"{options.trajectory_file}: trajectory_start {start} is outside its {len(poses_cam0)} poses"
        )
    poses_velo = poses_cam0_to_velo(poses_cam0, T_cam0_velo)[start:start + n_scans]
    if len(poses_velo) < n_min:
        raise DataFormatError(
            f"{options.trajectory_file}: only {len(poses_velo)} poses from frame {start}, {n_min} frames asked "
            "(use fewer frames or an earlier trajectory start)"
        )
    lift = np.eye(4)
    lift[2, 3] = options.lidar_height_m
    T_world_velo = lift @ np.linalg.inv(poses_velo[0]) @ poses_velo
    forward = T_world_velo[:, :2, 0] / np.linalg.norm(T_world_velo[:, :2, 0], axis=1, keepdims=True)
    left = np.stack([-forward[:, 1], forward[:, 0]], axis=1)
    centre = np.concatenate([T_world_velo[:, :2, 3] - EGO_LANE_OFFSET_M * left,
                             T_world_velo[:, 2:3, 3] - options.lidar_height_m], axis=1)
    # A point 1 m ahead of the last pose keeps the polyline well defined when the car stands still.
    ahead = np.r_[centre[-1, :2] + forward[-1], centre[-1, 2]]
    centre = resample_polyline(extend_polyline(resample_polyline(np.vstack([centre, ahead])), LEAD_IN_M, MARGIN_M))
    length = float(np.sum(np.linalg.norm(np.diff(centre[:, :2], axis=0), axis=1)))
    street = Street(centre[:, :2], centre[:, 2], CrossSections.random(seed_stream(seed, "sections"), 0.0, length),
                    random_junctions(seed_stream(seed, "junctions"), 20.0, length, options.junctions))
    ego_s, _, _ = street.locate(T_world_velo[:, :2, 3])
    return EgoPath(street, T_world_velo, ego_s)
