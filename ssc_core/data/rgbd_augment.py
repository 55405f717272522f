"""Training-time 2D augmentation of an RGB-D sample (CleanerS's recipe, after mmseg): the image and its
pixel -> voxel map move together, so every kept pixel still lands on its voxel.

In order: random resize by 0.8-1.2 (p = 0.5; image bilinear, map nearest), random crop back to the original size
and pad where smaller (image 0, map -1), horizontal flip (p = 0.5), photometric distortion (each p = 0.5:
brightness +-32, contrast x 0.5-1.5, saturation x 0.5-1.5, hue +-18 on OpenCV's 0-180 scale; contrast first or
last at random).
"""

from __future__ import annotations

import cv2
import numpy as np


def _resize(image: np.ndarray, mapping2d: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    h, w = mapping2d.shape
    size = (max(1, int(round(w * scale))), max(1, int(round(h * scale))))
    image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    rows = np.minimum((np.arange(size[1]) + 0.5) / scale, h - 1).astype(np.int64)
    cols = np.minimum((np.arange(size[0]) + 0.5) / scale, w - 1).astype(np.int64)
    return image, mapping2d[rows[:, None], cols[None, :]]


def _crop_or_pad(image: np.ndarray, mapping2d: np.ndarray, hw: tuple[int, int], rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
    h, w = hw
    top = int(rng.integers(0, max(mapping2d.shape[0] - h, 0) + 1))
    left = int(rng.integers(0, max(mapping2d.shape[1] - w, 0) + 1))
    image, mapping2d = image[top:top + h, left:left + w], mapping2d[top:top + h, left:left + w]
    out_img = np.zeros((h, w, 3), dtype=np.uint8)
    out_map = np.full((h, w), -1, dtype=np.int64)
    out_img[: image.shape[0], : image.shape[1]] = image
    out_map[: mapping2d.shape[0], : mapping2d.shape[1]] = mapping2d
    return out_img, out_map


def photometric_distortion(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """mmseg's PhotoMetricDistortion on an (H, W, 3) uint8 RGB image (see the module docstring)."""
    img = image.astype(np.float32)
    if rng.random() < 0.5:
        img = img + rng.uniform(-32, 32)
    contrast_first = rng.random() < 0.5
    contrast = rng.uniform(0.5, 1.5) if rng.random() < 0.5 else None
    if contrast_first and contrast is not None:
        img = img * contrast
    hsv = cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.float32)
    if rng.random() < 0.5:
        hsv[..., 1] = hsv[..., 1] * rng.uniform(0.5, 1.5)
    if rng.random() < 0.5:
        hsv[..., 0] = (hsv[..., 0] + rng.uniform(-18, 18)) % 180
    img = cv2.cvtColor(np.clip(hsv, 0, [180, 255, 255]).astype(np.uint8), cv2.COLOR_HSV2RGB).astype(np.float32)
    if not contrast_first and contrast is not None:
        img = img * contrast
    return np.clip(img, 0, 255).astype(np.uint8)


def augment_rgbd(image_rgb: np.ndarray, mapping2d: np.ndarray, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Augment an (H, W, 3) uint8 RGB image and its (H, W) int64 pixel -> voxel map (-1 = none) together; returns
    both at the original size."""
    hw = mapping2d.shape
    image, mapping2d = np.asarray(image_rgb), np.asarray(mapping2d, dtype=np.int64)
    if rng.random() < 0.5:
        image, mapping2d = _resize(image, mapping2d, float(rng.uniform(0.8, 1.2)))
    image, mapping2d = _crop_or_pad(image, mapping2d, hw, rng)
    if rng.random() < 0.5:
        image, mapping2d = image[:, ::-1], mapping2d[:, ::-1]
    return photometric_distortion(np.ascontiguousarray(image), rng), np.ascontiguousarray(mapping2d)
