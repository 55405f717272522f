"""A simulated Velodyne HDL-64E: 64 beams between +2 and -24.8 deg, configurable azimuth step."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ssc_core.data.synthetic.options import SyntheticOptions
from ssc_core.data.synthetic.raycast import LidarGrid, cast
from ssc_core.data.synthetic.texture import value_noise
from ssc_core.data.synthetic.world import GROUND_COLOR, GROUND_REFLECTANCE, World


@dataclass
class Scan:
    """One LiDAR sweep: points_velo (N, 4) float32 x, y, z, remission in the sensor frame; semantic (N,)
    uint16 raw SemanticKITTI ids; instance (N,) uint16 (0 for stuff)."""

    points_velo: np.ndarray
    semantic: np.ndarray
    instance: np.ndarray


def beam_elevations(options: SyntheticOptions) -> np.ndarray:
    """(B,) beam elevation angles in radians, top beam first, evenly spread over ``lidar_fov_deg``."""
    top, bottom = options.lidar_fov_deg
    return np.deg2rad(np.linspace(top, bottom, options.lidar_beams))


def beam_azimuths(options: SyntheticOptions) -> np.ndarray:
    """(C,) azimuths in radians: 360 deg / ``azimuth_step_deg`` columns starting straight ahead."""
    n = int(round(360.0 / options.azimuth_step_deg))
    return np.arange(n) * (2 * np.pi / n)


def simulate_scan(world: World, T_world_velo: np.ndarray, time_s: float, options: SyntheticOptions,
                  rng: np.random.Generator) -> Scan:
    """Cast every beam from the sensor at ``T_world_velo`` (4, 4) into the world at ``time_s``; returns
    the points that hit something within ``lidar_max_range_m`` (ordered azimuth-major, beams within)."""
    grid = LidarGrid(T_world_velo, beam_elevations(options), beam_azimuths(options))
    hits = cast(grid, world.street, world.primitives_at(time_s), options.lidar_max_range_m, GROUND_COLOR,
                GROUND_REFLECTANCE)
    # Azimuth-major order, like a spinning head firing all lasers at each step.
    t = hits.t.T.ravel()
    valid = np.isfinite(t)
    rng_noise = rng.normal(0.0, options.range_noise_m, size=t.shape) if options.range_noise_m > 0 else 0.0
    t_noisy = np.where(valid, t + rng_noise, 0.0)
    dirs = grid.dirs_sensor.transpose(1, 0, 2).reshape(-1, 3)
    xyz = dirs * t_noisy[:, None]
    normal = hits.normal.transpose(1, 0, 2).reshape(-1, 3)
    world_dirs = grid.dirs.transpose(1, 0, 2).reshape(-1, 3)
    cos_inc = np.abs(np.einsum("ij,ij->i", normal, world_dirs))
    point_w = hits.point.transpose(1, 0, 2).reshape(-1, 3)
    refl = hits.reflectance.T.ravel()
    remission = refl * (0.4 + 0.6 * cos_inc) * (0.8 + 0.4 * value_noise(point_w, 0.3, world.texture_seed + 7))
    keep = valid & (t_noisy > 0)
    points = np.concatenate([xyz, np.clip(remission, 0.0, 1.0)[:, None]], axis=1)[keep]
    return Scan(points.astype(np.float32), hits.semantic.T.ravel()[keep], hits.instance.T.ravel()[keep])
