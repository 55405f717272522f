"""Depth-based point sources: pseudo-LiDAR from stereo (OpenCV SGBM) or from precomputed files.

Registered on import in the point-source registry (``ssc_core.data.point_sources``):

- ``stereo_sgbm``: OpenCV StereoSGBM on the rectified pair image_2 / image_3 -> disparity ->
  depth = baseline * fx / disparity -> one point per pixel with a valid disparity, back-projected as SGN's
  pseudo-LiDAR preprocessing does (x = (u - cx) d / fx + P2[0,3] / -fx, y = (v - cy) d / fy, z = d in the
  rectified camera), moved to the LiDAR frame with inv(Tr), kept where x_velo >= 0 and z_velo < max_height,
  intensity 1.
- ``precomputed``: the original's files, ``<folder>/sequences/<seq>/<frame:06d>.npy`` (metric depth of the left
  image, back-projected as above) or ``.bin`` (float32 x, y, z, 1 pseudo-LiDAR in the LiDAR frame, used as is).
  A Frame that already carries ``depth`` is back-projected without reading a file.

The same depth maps, before back-projection, are depth-map sources for models that read a stereo depth map
(``data.stereo_depth.source``; L2COcc): ``stereo_sgbm`` and ``precomputed`` (``.npy`` files or ``Frame.depth``);
``register_depth_map_source`` adds more (``ssc_core.data.stereo_msnet``: ``stereo_msnet``).

Options live in the config's ``data.points`` section (documented in docs/training.md): ``stride`` (keep every
n-th pixel row and column, default 1), ``max_depth`` (metres, default none), ``max_height`` (default 80),
``sgbm`` (matcher settings), and for ``precomputed`` ``folder`` and ``format`` ('npy' | 'bin').
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ssc_core.data.point_sources import register_point_source
from ssc_core.data.semantic_kitti import read_points
from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.geometry.poses import invert_transform
from ssc_core.geometry.projection import depth_to_points_cam
from ssc_core.types import Calib, Frame

SGBM_DEFAULTS = {
    "min_disparity": 0,
    "num_disparities": 192,
    "block_size": 5,
    "uniqueness_ratio": 10,
    "speckle_window_size": 100,
    "speckle_range": 2,
    "disp12_max_diff": 1,
    "mode": "sgbm_3way",
}
SGBM_MODES = {"sgbm": 0, "hh": 1, "sgbm_3way": 2, "hh4": 3}
PRECOMPUTED_FORMATS = ("npy", "bin")


def points_section(cfg: dict) -> dict:
    """The ``data.points`` mapping of a ``data:`` section ({} when absent; ConfigError when not a mapping)."""
    points = cfg.get("points") or {}
    if not isinstance(points, dict):
        raise ConfigError(f"data.points must be a mapping, got {points!r}")
    return points


def _positive_int(points: dict, key: str, default: int) -> int:
    value = points.get(key, default)
    if not isinstance(value, int) or value < 1:
        raise ConfigError(f"data.points.{key} must be an integer >= 1, got {value!r}")
    return value


def depth_to_points_velo(
    depth: np.ndarray,
    calib: Calib,
    stride: int = 1,
    max_depth: float | None = None,
    max_height: float = 80.0,
) -> np.ndarray:
    """Back-project an (H, W) metric depth map of the left colour camera into the LiDAR frame, SGN's way.

    Every ``stride``-th pixel with finite depth > 0 (and <= ``max_depth`` when given) becomes a point
    (x, y, z) = (u - cx) d / fx + P2[0,3] / -fx, (v - cy) d / fy + P2[1,3] / -fy, d in the rectified camera;
    [x, y, z, 1] @ [R^T | -R^T t]^T (Tr = [R | t]) moves it to the LiDAR frame; points with x_velo < 0 or
    z_velo >= ``max_height`` are dropped. Everything runs in float64 with the operations of SGN's
    ``depth2lidar.py``, so with the defaults the result equals its ``.bin`` files bit for bit.
    Returns (N, 4) float32 x, y, z, intensity=1 in the frame's LiDAR frame, in row-major pixel order.
    """
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2:
        raise DataFormatError(f"depth map must be (H, W), got shape {depth.shape}")
    if stride > 1:
        # Keep every stride-th pixel by blanking the others (pixel coordinates stay those of the full image).
        keep = np.zeros(depth.shape, dtype=bool)
        keep[::stride, ::stride] = True
        depth = np.where(keep, depth, 0.0).astype(np.float32)
    if max_depth is not None:
        depth = np.where(depth <= max_depth, depth, 0.0).astype(np.float32)
    P2 = calib.P2
    points_cam = depth_to_points_cam(depth, calib.K, baseline_x=float(P2[0, 3] / -P2[0, 0]),
                                     baseline_y=float(P2[1, 3] / -P2[1, 1]))
    homogeneous = np.hstack([points_cam, np.ones((len(points_cam), 1))])
    points_velo = np.dot(homogeneous, np.transpose(invert_transform(calib.T_cam0_velo)[:3]))
    keep = (points_velo[:, 0] >= 0) & (points_velo[:, 2] < max_height)
    return np.hstack([points_velo[keep], np.ones((int(keep.sum()), 1))]).astype(np.float32)


def depth_options(points: dict) -> dict:
    """The back-projection options of ``data.points`` for ``depth_to_points_velo``: stride, max_depth,
    max_height (checked; ConfigError naming the bad key)."""
    max_depth = points.get("max_depth")
    if max_depth is not None and not (isinstance(max_depth, int | float) and max_depth > 0):
        raise ConfigError(f"data.points.max_depth must be a positive number or null, got {max_depth!r}")
    max_height = points.get("max_height", 80.0)
    if not isinstance(max_height, int | float):
        raise ConfigError(f"data.points.max_height must be a number, got {max_height!r}")
    return {"stride": _positive_int(points, "stride", 1), "max_depth": max_depth, "max_height": float(max_height)}


# ---------------------------------------------------------------------------------------------- SGBM
def sgbm_settings(points: dict) -> dict:
    """``data.points.sgbm`` merged over SGBM_DEFAULTS and checked (ConfigError names the bad key)."""
    user = points.get("sgbm") or {}
    if not isinstance(user, dict):
        raise ConfigError(f"data.points.sgbm must be a mapping, got {user!r}")
    unknown = sorted(set(user) - set(SGBM_DEFAULTS))
    if unknown:
        raise ConfigError(f"unknown data.points.sgbm keys {unknown}; known: {sorted(SGBM_DEFAULTS)}")
    settings = {**SGBM_DEFAULTS, **user}
    if settings["num_disparities"] < 16 or settings["num_disparities"] % 16:
        raise ConfigError(f"data.points.sgbm.num_disparities must be a positive multiple of 16, got "
                          f"{settings['num_disparities']!r}")
    if settings["block_size"] < 1 or settings["block_size"] % 2 == 0:
        raise ConfigError(f"data.points.sgbm.block_size must be odd and >= 1, got {settings['block_size']!r}")
    if settings["mode"] not in SGBM_MODES:
        raise ConfigError(f"data.points.sgbm.mode must be one of {sorted(SGBM_MODES)}, got {settings['mode']!r}")
    return settings


def sgbm_disparity(left_rgb: np.ndarray, right_rgb: np.ndarray, settings: dict | None = None) -> np.ndarray:
    """Disparity (H, W) float32 in pixels of a rectified pair ((H, W, 3) uint8 RGB each) by OpenCV StereoSGBM
    with ``settings`` (SGBM_DEFAULTS when None); pixels without a valid match are 0."""
    import cv2

    s = settings or SGBM_DEFAULTS
    left, right = np.asarray(left_rgb), np.asarray(right_rgb)
    if left.shape != right.shape or left.ndim != 3 or left.shape[2] != 3:
        raise DataFormatError(f"stereo pair must be two equal (H, W, 3) images, got {left.shape} and {right.shape}")
    channels = 3
    block = s["block_size"]
    matcher = cv2.StereoSGBM_create(
        minDisparity=s["min_disparity"],
        numDisparities=s["num_disparities"],
        blockSize=block,
        P1=8 * channels * block * block,
        P2=32 * channels * block * block,
        disp12MaxDiff=s["disp12_max_diff"],
        uniquenessRatio=s["uniqueness_ratio"],
        speckleWindowSize=s["speckle_window_size"],
        speckleRange=s["speckle_range"],
        mode=SGBM_MODES[s["mode"]],
    )
    raw = matcher.compute(np.ascontiguousarray(left), np.ascontiguousarray(right))
    disparity = raw.astype(np.float32) / 16.0  # OpenCV returns fixed point with 4 fractional bits
    disparity[disparity <= 0] = 0.0
    return disparity


def disparity_to_depth(disparity: np.ndarray, baseline_m: float, fx: float) -> np.ndarray:
    """Depth (H, W) float32 metres = baseline * fx / disparity where disparity > 0, else 0."""
    disparity = np.asarray(disparity, dtype=np.float32)
    depth = np.zeros_like(disparity)
    valid = disparity > 0
    depth[valid] = baseline_m * fx / disparity[valid]
    return depth


def sgbm_depth(frame: Frame, options: dict) -> np.ndarray:
    """(H, W) float32 metric depth of ``frame``'s left image from SGBM on image_left / image_right (0 where no
    match); ``options`` is the config section holding ``sgbm`` (``data.points`` or ``data.stereo_depth``).
    DataFormatError when the frame has no right image or no P3 (the baseline comes from P2 and P3)."""
    if frame.image_right is None:
        raise DataFormatError(f"frame {frame.index}: stereo_sgbm needs the right image (image_3)")
    baseline = frame.calib.stereo_baseline
    if baseline is None or not baseline > 0:
        raise DataFormatError(f"frame {frame.index}: stereo_sgbm needs P3 with a positive baseline in the "
                              f"calibration (got {baseline})")
    disparity = sgbm_disparity(frame.image_left, frame.image_right, sgbm_settings(options))
    return disparity_to_depth(disparity, baseline, float(frame.calib.P2[0, 0]))


def stereo_sgbm_points(frame: Frame, cfg: dict) -> np.ndarray:
    """Point source ``stereo_sgbm``: (N, 4) float32 pseudo-LiDAR points of ``frame`` in its LiDAR frame from
    ``sgbm_depth``. ``cfg`` is the ``data:`` section."""
    points = points_section(cfg)
    options = depth_options(points)  # checked before the matcher runs
    return depth_to_points_velo(sgbm_depth(frame, points), frame.calib, **options)


# ---------------------------------------------------------------------------------------------- files
def precomputed_path(cfg: dict, frame_index: int, section: str = "points") -> Path:
    """File of a frame for the ``precomputed`` source: ``<folder>/sequences/<sequence>/<frame:06d>.<format>``,
    the options read from ``data.<section>``. A relative ``folder`` is taken relative to ``root`` (the dataset
    root, which the dataset sets together with ``sequence``)."""
    points = cfg.get(section) or {}
    if not isinstance(points, dict):
        raise ConfigError(f"data.{section} must be a mapping, got {points!r}")
    fmt = points.get("format", "npy")
    if fmt not in PRECOMPUTED_FORMATS:
        raise ConfigError(f"data.{section}.format must be one of {PRECOMPUTED_FORMATS}, got {fmt!r}")
    folder = points.get("folder")
    sequence = points.get("sequence")
    if not folder:
        raise ConfigError(f"source 'precomputed' needs data.{section}.folder (the folder holding "
                          "sequences/<seq>/<frame>.npy|.bin)")
    if sequence is None:
        raise ConfigError(f"source 'precomputed' needs data.{section}.sequence (set by the dataset) to find "
                          f"the file of frame {frame_index}")
    folder = Path(folder)
    if not folder.is_absolute() and points.get("root"):
        folder = Path(points["root"]) / folder
    return folder / "sequences" / str(sequence) / f"{frame_index:06d}.{fmt}"


def read_depth_npy(path: Path) -> np.ndarray:
    """Read an (H, W) metric depth map saved with ``np.save``; DataFormatError naming the file otherwise."""
    if not path.is_file():
        raise DataFormatError(f"{path}: precomputed depth file not found")
    try:
        depth = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise DataFormatError(f"{path}: cannot read depth map ({exc})") from None
    if depth.ndim != 2 or not np.issubdtype(depth.dtype, np.floating):
        raise DataFormatError(f"{path}: depth map must be a 2-D float array, got {depth.shape} {depth.dtype}")
    return depth.astype(np.float32)


def write_depth_npy(path: Path, depth: np.ndarray) -> Path:
    """Save an (H, W) depth map as the original preprocessing does (``np.save`` of a C-ordered float32 array),
    creating the folder. Returns the path."""
    depth = np.asarray(depth)
    if depth.ndim != 2 or depth.dtype != np.float32:
        raise DataFormatError(f"{path}: depth map must be a 2-D float32 array, got {depth.shape} {depth.dtype}")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.ascontiguousarray(depth))
    return path


def precomputed_points(frame: Frame, cfg: dict) -> np.ndarray:
    """Point source ``precomputed``: (N, 4) float32 points in ``frame``'s LiDAR frame from ``frame.depth`` when
    set, else from the frame's file (``precomputed_path``): ``.npy`` depth back-projected like
    ``stereo_sgbm``, ``.bin`` pseudo-LiDAR (x, y, z, 1 in the LiDAR frame) returned as stored."""
    points = points_section(cfg)
    options = depth_options(points)
    if frame.depth is not None:
        return depth_to_points_velo(frame.depth, frame.calib, **options)
    path = precomputed_path(cfg, frame.index)
    if path.suffix == ".bin":
        if not path.is_file():
            raise DataFormatError(f"{path}: precomputed pseudo-LiDAR file not found")
        return read_points(path)
    return depth_to_points_velo(read_depth_npy(path), frame.calib, **options)


def precomputed_depth(frame: Frame, cfg: dict) -> np.ndarray:
    """Depth-map source ``precomputed``: ``frame.depth`` when set, else the ``.npy`` of ``precomputed_path(cfg,
    frame.index, "stereo_depth")``; (H, W) float32 metres of the raw left image."""
    if frame.depth is not None:
        return np.asarray(frame.depth, dtype=np.float32)
    path = precomputed_path(cfg, frame.index, "stereo_depth")
    if path.suffix != ".npy":
        raise ConfigError(f"data.stereo_depth.format must be 'npy' (a depth map), got {path.suffix[1:]!r}")
    return read_depth_npy(path)


def sgbm_depth_map(frame: Frame, cfg: dict) -> np.ndarray:
    """Depth-map source ``stereo_sgbm``: ``sgbm_depth`` with the matcher settings of ``data.stereo_depth.sgbm``."""
    return sgbm_depth(frame, cfg.get("stereo_depth") or {})


@dataclass(frozen=True)
class DepthMapSource:
    """A registered depth-map source: ``fn(frame, data_cfg) -> (H, W) float32`` metric depth of the frame's raw
    left image (0 = none), and the Frame fields it reads."""

    name: str
    fn: Callable[[Frame, dict], np.ndarray]
    requires: tuple[str, ...] = ()


_DEPTH_MAP_SOURCES: dict[str, DepthMapSource] = {}
# Modules that register further depth-map sources on import (tried once when a name is unknown).
_DEPTH_MAP_PLUGINS = ("ssc_core.data.stereo_msnet",)


def register_depth_map_source(name: str, fn: Callable[[Frame, dict], np.ndarray],
                              requires: tuple[str, ...] = ()) -> None:
    """Register a depth-map source under ``name`` for ``data.stereo_depth.source`` (a stereo network adds its
    own, as MobileStereoNet's ``stereo_msnet``)."""
    _DEPTH_MAP_SOURCES[name] = DepthMapSource(name, fn, tuple(requires))


def get_depth_map_source(name: str) -> DepthMapSource:
    """The source registered under ``name``; ConfigError listing the known ones otherwise."""
    if name not in _DEPTH_MAP_SOURCES:
        for module in _DEPTH_MAP_PLUGINS:
            importlib.import_module(module)
    if name not in _DEPTH_MAP_SOURCES:
        raise ConfigError(f"unknown data.stereo_depth.source {name!r}; known: {sorted(_DEPTH_MAP_SOURCES)}")
    return _DEPTH_MAP_SOURCES[name]


register_point_source("stereo_sgbm", stereo_sgbm_points, requires=("image_right",))
register_point_source("precomputed", precomputed_points)
register_depth_map_source("stereo_sgbm", sgbm_depth_map, requires=("image_right",))
register_depth_map_source("precomputed", precomputed_depth)
