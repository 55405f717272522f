"""Point source ``stereo_msnet``: MobileStereoNet disparity -> depth -> pseudo-LiDAR, as SGN's preprocessing.

The stereo pair image_left / image_right goes through MSNet2D or MSNet3D (weights imported with
``ssc-import-checkpoint --method msnet3d``); depth = baseline * fx / max(disparity, 1e-8) in float32, exactly as
the original ``prediction.py`` writes its ``.npy`` files; every pixel then becomes a point as its
``depth2lidar.py`` does (``depth_to_points_velo``). The ``precomputed`` source reads the files that
``ssc-precompute-depth`` writes with the same functions, so both paths give the same points.

Options under ``data.points.msnet`` (documented in docs/training.md):

- ``weights``: the imported checkpoint (required); ``device``: where the network runs ('auto' = CUDA when
  available);
- ``pad_to``: [H, W] network input size (the original pads SemanticKITTI to 384 x 1248, KITTI-360 to
  576 x 1872; null = each side up to a multiple of 32);
- ``baseline_m``: stereo baseline in metres (null = from the calibration's P2 and P3; SGN used 0.54 for
  SemanticKITTI, 0.6 for KITTI-360), or ``baseline_focal``: the baseline * fx constant itself (px * m, e.g.
  388.1823 for SemanticKITTI sequences 00-02);
- ``cache_frames``: how many recent frames' disparities are kept, so history frames of a window that were
  current frames before are not matched again (default 16).

``data.points.stride``, ``max_depth`` and ``max_height`` apply as for the other depth sources.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
from torch import nn

from ssc_core.data.depth_sources import depth_options, depth_to_points_velo, points_section, register_depth_map_source
from ssc_core.data.point_sources import register_point_source
from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.types import Calib, Frame

MSNET_OPTION_KEYS = ("weights", "device", "pad_to", "baseline_m", "baseline_focal", "cache_frames")
MIN_DISPARITY = 1e-8
_NETWORKS: dict[tuple[str, float, str], nn.Module] = {}
_CACHE: OrderedDict[tuple, np.ndarray] = OrderedDict()
_LOCK = threading.Lock()


def msnet_options(points: dict) -> dict:
    """``data.points.msnet`` checked and completed with defaults (ConfigError naming the bad key)."""
    options = points.get("msnet") or {}
    if not isinstance(options, dict):
        raise ConfigError(f"data.points.msnet must be a mapping, got {options!r}")
    unknown = sorted(set(options) - set(MSNET_OPTION_KEYS))
    if unknown:
        raise ConfigError(f"unknown data.points.msnet keys {unknown}; known: {list(MSNET_OPTION_KEYS)}")
    out = {"weights": None, "device": "auto", "pad_to": None, "baseline_m": None, "baseline_focal": None,
           "cache_frames": 16, **options}
    if not out["weights"]:
        raise ConfigError("point source 'stereo_msnet' needs data.points.msnet.weights (a file written by "
                          "ssc-import-checkpoint --method msnet3d or msnet2d)")
    if out["pad_to"] is not None and (not isinstance(out["pad_to"], list | tuple) or len(out["pad_to"]) != 2):
        raise ConfigError(f"data.points.msnet.pad_to must be [H, W] or null, got {out['pad_to']!r}")
    for key in ("baseline_m", "baseline_focal"):
        if out[key] is not None and not (isinstance(out[key], int | float) and out[key] > 0):
            raise ConfigError(f"data.points.msnet.{key} must be a positive number or null, got {out[key]!r}")
    if out["baseline_m"] is not None and out["baseline_focal"] is not None:
        raise ConfigError("set data.points.msnet.baseline_m or baseline_focal, not both")
    if not isinstance(out["cache_frames"], int) or out["cache_frames"] < 0:
        raise ConfigError(f"data.points.msnet.cache_frames must be an integer >= 0, got {out['cache_frames']!r}")
    return out


def baseline_focal(calib: Calib, options: dict) -> float:
    """The baseline * fx constant (px * m) that turns disparity into depth: ``baseline_focal`` when set, else
    (``baseline_m`` or the calibration's P2/P3 baseline) * P2[0, 0]. DataFormatError without P3 and options."""
    if options.get("baseline_focal") is not None:
        return float(options["baseline_focal"])
    baseline = options.get("baseline_m")
    if baseline is None:
        baseline = calib.stereo_baseline
        if baseline is None or not baseline > 0:
            raise DataFormatError(f"point source 'stereo_msnet' needs P3 with a positive baseline in the "
                                  f"calibration, or data.points.msnet.baseline_m (got {baseline})")
    return float(baseline) * float(calib.P2[0, 0])


def disparity_to_depth_clipped(disparity: np.ndarray, scale: float) -> np.ndarray:
    """(H, W) float32 depth = ``scale`` / max(disparity, 1e-8): the original MobileStereoNet prediction
    script's conversion, float32 operations included (no pixel is left out; zero disparity gives a far point)."""
    return float(scale) / np.asarray(disparity, dtype=np.float32).clip(min=MIN_DISPARITY)


def load_network(weights: str | Path, device: str | None) -> nn.Module:
    """The stereo network of a weights file on ``device`` ('auto'/None = CUDA when available), loaded once per
    (file, modification time, device) in this process."""
    from ssc_core.models.stereo.msnet import load_stereo_model
    from ssc_core.training.distributed import resolve_device

    path = Path(weights).expanduser()
    if not path.is_file():
        raise DataFormatError(f"{path}: data.points.msnet.weights not found")
    dev = resolve_device(None if device in (None, "auto") else str(device))
    key = (str(path.resolve()), path.stat().st_mtime, str(dev))
    with _LOCK:
        if key not in _NETWORKS:
            _NETWORKS[key] = load_stereo_model(path, dev)
        return _NETWORKS[key]


def _fingerprint(frame: Frame) -> bytes:
    digest = hashlib.blake2b(digest_size=16)
    for array in (frame.image_left, frame.image_right):
        array = np.ascontiguousarray(array)
        digest.update(repr((array.shape, str(array.dtype))).encode())
        digest.update(array.tobytes())
    return digest.digest()


def msnet_disparity(frame: Frame, options: dict) -> np.ndarray:
    """(H, W) float32 disparity of ``frame``'s left image from its stereo pair (``options`` from
    ``msnet_options``), remembered for the last ``cache_frames`` distinct pairs (keyed by image content)."""
    from ssc_core.models.stereo.msnet import padded_size, predict_disparity

    if frame.image_right is None:
        raise DataFormatError(f"frame {frame.index}: point source 'stereo_msnet' needs the right image")
    left, right = np.asarray(frame.image_left), np.asarray(frame.image_right)
    if left.shape != right.shape:
        raise DataFormatError(f"frame {frame.index}: left image {left.shape} and right image {right.shape} differ")
    pad_to = tuple(options["pad_to"]) if options["pad_to"] is not None else None
    padded_size(left.shape[0], left.shape[1], pad_to)  # checks pad_to before the network loads
    key = (str(options["weights"]), pad_to, _fingerprint(frame))
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    disparity = predict_disparity(load_network(options["weights"], options["device"]), left, right, pad_to)
    if options["cache_frames"]:
        with _LOCK:
            _CACHE[key] = disparity
            while len(_CACHE) > options["cache_frames"]:
                _CACHE.popitem(last=False)
    return disparity


def msnet_depth(frame: Frame, cfg: dict) -> np.ndarray:
    """(H, W) float32 depth of ``frame``'s left image by MobileStereoNet (``cfg`` = the ``data:`` section)."""
    options = msnet_options(points_section(cfg))
    return disparity_to_depth_clipped(msnet_disparity(frame, options), baseline_focal(frame.calib, options))


def stereo_msnet_points(frame: Frame, cfg: dict) -> np.ndarray:
    """Point source ``stereo_msnet``: (N, 4) float32 pseudo-LiDAR points of ``frame`` in its LiDAR frame (one
    per pixel, SGN's back-projection; see the module docstring). ``cfg`` is the ``data:`` section."""
    return depth_to_points_velo(msnet_depth(frame, cfg), frame.calib, **depth_options(points_section(cfg)))


def msnet_depth_map(frame: Frame, cfg: dict) -> np.ndarray:
    """Depth-map source ``stereo_msnet``: MobileStereoNet's depth of ``frame``'s left image with the options of
    ``data.stereo_depth`` (the same keys as ``data.points`` takes for the point source)."""
    options = msnet_options(cfg.get("stereo_depth") or {})
    return disparity_to_depth_clipped(msnet_disparity(frame, options), baseline_focal(frame.calib, options))


register_point_source("stereo_msnet", stereo_msnet_points, requires=("image_right",))
register_depth_map_source("stereo_msnet", msnet_depth_map, requires=("image_right",))
