"""RGB-D frames -> model samples for the indoor (NYU-style) models, offline and live alike.

``rgbd_sample`` is the one place that turns an image, a voxel -> pixel mapping and a TSDF into model inputs; the NYU
Dataset calls it with the files' arrays, ``rgbd_frame_to_sample`` with the arrays ``depth_volume`` computes from a
live depth image, so a frame gives the same tensors either way. Sample keys (per sample):

- ``img`` float32 (3, h, w): RGB / 255, ImageNet-normalised, resized to ``data.image_size`` [h, w] (bilinear) when
  set and different from the image;
- ``mapping2d`` int64 (H, W): pixel -> flat voxel index (C order over the grid), -1 = none (the full-size image
  grid, whatever ``data.image_size`` is);
- ``mapping`` int64 (X, Y, Z): voxel -> pixel index row * W + col, H * W = none;
- ``tsdf`` float32 (1, X, Y, Z).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from ssc_core.data.nyu import mapping_to_pixel_map
from ssc_core.data.transforms import normalize_image
from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.geometry.tsdf import DepthVolume, depth_volume
from ssc_core.types import GridSpec, Prediction


def image_size(data_cfg: dict) -> tuple[int, int] | None:
    """``data.image_size`` as (h, w), or None (keep the image's size). ConfigError when malformed."""
    size = data_cfg.get("image_size")
    if size is None:
        return None
    if not isinstance(size, list | tuple) or len(size) != 2 or any(int(v) != v or v < 16 for v in size):
        raise ConfigError(f"data.image_size must be [h, w] integers >= 16 or null, got {size!r}")
    return int(size[0]), int(size[1])


def rgbd_sample(image_rgb: np.ndarray, mapping: np.ndarray, tsdf: np.ndarray, data_cfg: dict,
                mapping2d: np.ndarray | None = None) -> dict:
    """One sample from an (H, W, 3) uint8 RGB image, the (X, Y, Z) voxel -> pixel mapping (H * W = none) and the
    (X, Y, Z) TSDF of the same view (keys: module docstring). ``mapping2d`` (H, W) replaces the inverse of
    ``mapping`` (an augmented pixel -> voxel map). DataFormatError on mismatched shapes."""
    image_rgb = np.asarray(image_rgb)
    mapping = np.asarray(mapping, dtype=np.int64)
    tsdf = np.asarray(tsdf, dtype=np.float32)
    if mapping.shape != tsdf.shape or mapping.ndim != 3:
        raise DataFormatError(f"mapping {mapping.shape} and TSDF {tsdf.shape} must be the same (X, Y, Z) grid")
    img = normalize_image(image_rgb, "RGB-D image")
    h, w = img.shape[1:]
    if mapping.size and (mapping.min() < 0 or mapping.max() > h * w):
        raise DataFormatError(f"mapping values must lie in [0, {h * w}] for a {w}x{h} image")
    if mapping2d is not None and np.shape(mapping2d) != (h, w):
        raise DataFormatError(f"mapping2d {np.shape(mapping2d)} does not fit the {w}x{h} image")
    size = image_size(data_cfg)
    if size is not None and size != (h, w):
        img = F.interpolate(img[None], size=size, mode="bilinear", align_corners=False)[0]
    return {
        "img": img,
        "mapping2d": torch.from_numpy(np.ascontiguousarray(
            mapping_to_pixel_map(mapping, (h, w)) if mapping2d is None else mapping2d, dtype=np.int64)),
        "mapping": torch.from_numpy(mapping),
        "tsdf": torch.from_numpy(np.ascontiguousarray(tsdf))[None],
    }


@dataclass
class RGBDFrame:
    """One live RGB-D view: ``image_rgb`` (H, W, 3) uint8, ``depth_m`` (H, W) float32 metres registered to the
    colour image (0 or non-finite = no depth), ``K`` (3, 3) intrinsics of the colour camera, ``T_grid_cam`` (4, 4)
    camera (optical: x right, y down, z forward) -> the grid's room frame (z up), ``stamp_ns``."""

    image_rgb: np.ndarray
    depth_m: np.ndarray
    K: np.ndarray
    T_grid_cam: np.ndarray
    stamp_ns: int = 0


def rgbd_frame_volume(frame: RGBDFrame, grid: GridSpec, subdivision: int = 4) -> DepthVolume:
    """TSDF, label weight and mapping of ``frame``'s depth on ``grid`` (``depth_volume``). DataFormatError when
    image and depth differ in size."""
    image = np.asarray(frame.image_rgb)
    depth = np.asarray(frame.depth_m)
    if image.shape[:2] != depth.shape:
        raise DataFormatError(f"image {image.shape[:2]} and depth {depth.shape} differ in size: the depth must be "
                              "registered to the colour image")
    return depth_volume(depth, frame.K, frame.T_grid_cam, grid, subdivision)


def rgbd_frame_to_sample(frame: RGBDFrame, grid: GridSpec, data_cfg: dict, subdivision: int = 4) -> dict:
    """The sample of a live frame: its depth's TSDF and mapping computed on ``grid``, then ``rgbd_sample``."""
    volume = rgbd_frame_volume(frame, grid, subdivision)
    return rgbd_sample(frame.image_rgb, volume.mapping, volume.tsdf, data_cfg)


def to_room_xyz(prediction: Prediction) -> Prediction:
    """A Prediction on an NYU-order grid (index axes room x, z, y) as one on an x, y, z grid (dims (X, Y, Z) =
    (dims[0], dims[2], dims[1]), same origin and voxel size), which the ROS outputs and renderers expect."""
    dims = prediction.grid.dims
    grid = replace(prediction.grid, dims=(dims[0], dims[2], dims[1]))
    return Prediction(labels=np.ascontiguousarray(prediction.labels.transpose(0, 2, 1)),
                      confidence=np.ascontiguousarray(prediction.confidence.transpose(0, 2, 1)), grid=grid,
                      stamp_ns=prediction.stamp_ns, frame_id=prediction.frame_id)
