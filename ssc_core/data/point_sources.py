"""Point sources: where a sample's point cloud comes from (real LiDAR, none, stereo depth, precomputed files).

A point source is ``fn(frame: Frame, cfg: dict) -> np.ndarray`` returning (N, 4) float32 x, y, z, intensity in
that frame's LiDAR frame. ``cfg`` is the config's ``data:`` section; a source reads its own options from
``cfg["points"]``. Sources are looked up by the name in ``data.points.source``.

This module provides ``lidar`` (the frame's own scan) and ``none`` (no points). Other modules register more
on import (``ssc_core.data.depth_sources``: ``stereo_sgbm``, ``precomputed``; ``ssc_core.data.stereo_msnet``:
``stereo_msnet``); ``get_point_source`` imports those modules on a miss so a config naming them works without an
explicit import.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.types import Frame

PointSourceFn = Callable[[Frame, dict], np.ndarray]

# Frame fields a source may need; datasets use this to decide what to load from disk.
FRAME_FIELDS = ("points_velo", "image_right", "depth")

# Modules that register further sources on import (tried once when a name is unknown).
_PLUGIN_MODULES = ("ssc_core.data.depth_sources", "ssc_core.data.stereo_msnet")


@dataclass(frozen=True)
class PointSource:
    """A registered source: its name, function, and the Frame fields it reads (subset of FRAME_FIELDS)."""

    name: str
    fn: PointSourceFn
    requires: tuple[str, ...] = ()


_REGISTRY: dict[str, PointSource] = {}


def register_point_source(name: str, fn: PointSourceFn, requires: Iterable[str] = ()) -> PointSourceFn:
    """Register ``fn`` under ``name``; ``requires`` names the Frame fields it reads ('points_velo',
    'image_right', 'depth') so loaders know what to read. Re-registering a name replaces it. Returns ``fn``."""
    requires = tuple(requires)
    unknown = set(requires) - set(FRAME_FIELDS)
    if unknown:
        raise ConfigError(f"point source {name!r}: unknown required frame fields {sorted(unknown)}; "
                          f"known: {list(FRAME_FIELDS)}")
    _REGISTRY[name] = PointSource(name, fn, requires)
    return fn


def _lookup(name: str) -> PointSource:
    if name not in _REGISTRY:
        for module in _PLUGIN_MODULES:
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name != module:
                    raise
    if name not in _REGISTRY:
        raise ConfigError(f"unknown point source {name!r} (data.points.source); known: {sorted(_REGISTRY)}")
    return _REGISTRY[name]


def get_point_source(name: str) -> PointSourceFn:
    """The function registered under ``name``; ConfigError listing the known names when there is none."""
    return _lookup(name).fn


def point_source_requires(name: str) -> tuple[str, ...]:
    """The Frame fields the named source reads (e.g. ('points_velo',) for 'lidar')."""
    return _lookup(name).requires


def point_source_name(data_cfg: dict) -> str:
    """The source named by ``data.points.source`` ('none' when the section or key is absent)."""
    points_cfg = data_cfg.get("points") or {}
    if not isinstance(points_cfg, dict):
        raise ConfigError(f"data.points must be a mapping like {{source: lidar}}, got {points_cfg!r}")
    name = points_cfg.get("source", "none")
    return "none" if name is None else str(name)


def lidar_points(frame: Frame, cfg: dict) -> np.ndarray:
    """The frame's own LiDAR scan, (N, 4) float32 in its LiDAR frame. DataFormatError when the frame has none."""
    if frame.points_velo is None:
        raise DataFormatError(f"frame {frame.index}: point source 'lidar' needs points_velo, but the frame has none")
    points = np.asarray(frame.points_velo)
    if points.ndim != 2 or points.shape[1] < 3:
        raise DataFormatError(f"frame {frame.index}: points_velo must be (N, 4), got shape {points.shape}")
    if points.shape[1] == 3:
        points = np.concatenate([points, np.zeros((len(points), 1), points.dtype)], axis=1)
    return np.ascontiguousarray(points[:, :4], dtype=np.float32)


def no_points(frame: Frame, cfg: dict) -> np.ndarray:
    """No points: an empty (0, 4) float32 array."""
    return np.zeros((0, 4), dtype=np.float32)


register_point_source("lidar", lidar_points, requires=("points_velo",))
register_point_source("none", no_points)
