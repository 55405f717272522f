"""``data.sweeps``: the occupancy VoxFormer's query proposals start from (sample key ``sweep_occupancy``).

The depth points of the current frame and the ``frames - 1`` raw frames before it (a point source applied to each,
moved into the current LiDAR frame by the poses) are ray-cast into log-odds occupancy on ``data.grid``
(``ssc_core.geometry.raycast``); voxels with log-odds > 0 are occupied. Keys of ``data.sweeps``:

- ``frames`` (10): current + 9 previous raw frames, as VoxFormer's ``sequence_length=10``; a frame before the
  sequence start (or without a pose) is replaced by the current frame, as history frames are;
- ``source`` (null = ``data.points.source``): the point source of the sweeps (its options are read from
  ``data.points`` as usual), e.g. ``stereo_sgbm`` for pseudo-LiDAR or ``lidar``;
- ``origin`` (``current``): rays start at the current LiDAR origin for every frame (VoxFormer's preprocessing),
  or ``per_frame`` at each frame's own LiDAR origin;
- ``mode`` (``once``) and ``merge_endpoints`` (true): the log-odds update (``raycast_logodds``);
- ``root`` (null): read the occupancy from the original's bit-packed files ``<root>/<seq>/voxels/<frame>.pseudo``
  instead of computing it (``ssc-precompute sweeps`` writes them); then the sweep frames are not loaded at all.
"""

from __future__ import annotations

import numpy as np
import torch

from ssc_core.config import reject_unknown_keys
from ssc_core.data.point_sources import get_point_source, point_source_name
from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.geometry.poses import transform_points
from ssc_core.geometry.raycast import RAYCAST_MODES, raycast_logodds
from ssc_core.types import Frame, GridSpec

SWEEP_KEYS = {"frames", "source", "origin", "mode", "merge_endpoints", "root"}
SWEEP_ORIGINS = ("current", "per_frame")


def sweeps_cfg(data_cfg: dict) -> dict | None:
    """The checked ``data.sweeps`` mapping, or None when the section is absent or null. ConfigError when
    malformed."""
    section = data_cfg.get("sweeps")
    if section is None:
        return None
    if not isinstance(section, dict):
        raise ConfigError(f"data.sweeps must be a mapping (e.g. {{frames: 10, source: lidar}}), got {section!r}")
    reject_unknown_keys(section, SWEEP_KEYS, "data.sweeps")
    frames = section.get("frames", 10)
    if not isinstance(frames, int) or isinstance(frames, bool) or frames < 1:
        raise ConfigError(f"data.sweeps.frames must be an integer >= 1, got {frames!r}")
    if section.get("origin", "current") not in SWEEP_ORIGINS:
        raise ConfigError(f"data.sweeps.origin must be one of {SWEEP_ORIGINS}, got {section.get('origin')!r}")
    if section.get("mode", "once") not in RAYCAST_MODES:
        raise ConfigError(f"data.sweeps.mode must be one of {RAYCAST_MODES}, got {section.get('mode')!r}")
    return section


def sweep_source_name(data_cfg: dict) -> str | None:
    """The point source the sweeps read (None without computed sweeps: no section, or cached files)."""
    section = sweeps_cfg(data_cfg)
    if section is None or section.get("root"):
        return None
    source = section.get("source")
    return point_source_name(data_cfg) if source is None else str(source)


def sweep_offsets(data_cfg: dict) -> list[int]:
    """Raw frame offsets of the previous sweep frames, oldest first ([-9, ..., -1] for 10 frames); [] when the
    sweeps are not computed from frames."""
    if sweep_source_name(data_cfg) is None:
        return []
    return list(range(1 - int(sweeps_cfg(data_cfg).get("frames", 10)), 0))


def window_offsets(data_cfg: dict) -> list[int]:
    """Every history offset a window must hold, sorted oldest first: ``data.history_offsets`` (image frames, kept
    as given, repeats included: a repeated offset is one more frame) and the sweep frames that are not image
    frames already."""
    images = [int(o) for o in data_cfg.get("history_offsets") or []]
    return sorted(images + [o for o in sweep_offsets(data_cfg) if o not in images])


def sweep_occupancy(frames: list[Frame], transforms: list[np.ndarray], data_cfg: dict) -> np.ndarray:
    """(X, Y, Z) uint8 occupancy of ``data.grid`` from the sweep frames.

    frames: the sweep frames (oldest first, the current one last); transforms: T_cur_f (4, 4) of each; data_cfg:
    the ``data:`` section (grid, points, sweeps). The source's points of every frame are moved into the current
    LiDAR frame and ray-cast; 1 where the log-odds is > 0."""
    section = sweeps_cfg(data_cfg) or {}
    name = sweep_source_name(data_cfg)
    if name is None or name == "none":
        raise ConfigError("data.sweeps needs a point source: set data.sweeps.source or data.points.source")
    source = get_point_source(name)
    grid = GridSpec.from_dict(data_cfg.get("grid") or {})
    clouds, origin_index = [], []
    for i, (frame, T_cur_f) in enumerate(zip(frames, transforms)):
        points = np.asarray(source(frame, data_cfg), dtype=np.float32)
        if points.ndim != 2 or points.shape[1] < 3:
            raise DataFormatError(f"frame {frame.index}: point source {name!r} returned shape {points.shape}")
        clouds.append(transform_points(T_cur_f, points[:, :3]))
        origin_index.append(np.full(len(points), i if section.get("origin") == "per_frame" else 0))
    origins = np.stack([T[:3, 3] for T in transforms]) if section.get("origin") == "per_frame" else np.zeros((1, 3))
    logodds = raycast_logodds(torch.from_numpy(np.concatenate(clouds)), grid, origins=torch.from_numpy(origins),
                              origin_index=torch.from_numpy(np.concatenate(origin_index)),
                              mode=section.get("mode", "once"),
                              merge_endpoints=bool(section.get("merge_endpoints", True)))
    return (logodds > 0).numpy().astype(np.uint8)


def window_roles(num_frames: int, data_cfg: dict) -> tuple[list[int], list[int]]:
    """Which frames of a window (history oldest first, current last) are image frames and which are sweep frames.

    Without computed sweeps every frame is an image frame (and there are no sweep frames). With them the window
    must hold exactly ``window_offsets(data_cfg)`` as its history (DataFormatError otherwise); the current frame
    is both."""
    if sweep_source_name(data_cfg) is None:
        return list(range(num_frames)), []
    offsets = window_offsets(data_cfg)
    if num_frames != len(offsets) + 1:
        raise DataFormatError(f"frame window has {num_frames - 1} history frames; data.history_offsets and data.sweeps "
                              f"need {len(offsets)} (offsets {offsets})")
    history, sweeps = set(data_cfg.get("history_offsets") or []), set(sweep_offsets(data_cfg))
    current = num_frames - 1
    return ([i for i, o in enumerate(offsets) if o in history] + [current],
            [i for i, o in enumerate(offsets) if o in sweeps] + [current])
