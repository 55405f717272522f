"""A structured-light (Kinect v1-like) depth sensor model: what the NYUv2 depth looks like next to the perfect
depth rendered from the scene (NYUCAD's depth).

Applied to a clean depth image, in this order:

- no depth on glass (windows, some screens), at grazing incidence (|cos| < ``grazing_cos``) and outside
  [``min_range_m``, ``max_range_m``];
- projector shadows: the projector sits ``baseline_m`` to the right of the IR camera, so background next to the
  left edge of a nearer surface gets no pattern: pixel u at depth z is dropped when a pixel u + k (k >= 1) at depth
  z' < z satisfies k < fx * b * (1 / z' - 1 / z);
- dropouts: a few blobs of missing depth and a sprinkle of single missing pixels;
- axial noise N(0, sigma(z)), sigma(z) = 0.0012 + 0.0019 (z - 0.4)^2 m (Nguyen, Izadi, Lovell 2012), then the
  disparity quantisation of 1/8 pixel: d = fx * b / z rounded to 1/8, z = fx * b / d.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class KinectModel:
    """Parameters of the sensor model (defaults: Kinect v1 as commonly measured)."""

    baseline_m: float = 0.075
    min_range_m: float = 0.5
    max_range_m: float = 8.0
    grazing_cos: float = 0.12
    dropout_pixels: float = 0.003
    max_blobs: int = 4
    max_shadow_px: int = 80


def axial_sigma(z: np.ndarray) -> np.ndarray:
    """Axial noise standard deviation (m) at depth ``z`` (m): 0.0012 + 0.0019 (z - 0.4)^2."""
    return 0.0012 + 0.0019 * (np.asarray(z) - 0.4) ** 2


def projector_shadow(depth: np.ndarray, fx: float, baseline_m: float, max_px: int) -> np.ndarray:
    """(H, W) bool: pixels the projector (``baseline_m`` right of the camera) cannot light (see the module
    docstring); ``depth`` 0 = no surface."""
    h, w = depth.shape
    inv = np.where(depth > 0, 1.0 / np.where(depth > 0, depth, 1.0), 0.0)
    shadow = np.zeros((h, w), dtype=bool)
    for k in range(1, min(max_px, w - 1) + 1):
        nearer = inv[:, k:]  # pixel u + k
        here = inv[:, :-k]
        shadow[:, :-k] |= (depth[:, :-k] > 0) & (nearer > here) & (k < fx * baseline_m * (nearer - here))
    return shadow


def kinect_depth(depth_clean: np.ndarray, incidence_cos: np.ndarray, glass: np.ndarray, fx: float,
                 rng: np.random.Generator, model: KinectModel = KinectModel()) -> np.ndarray:
    """The sensor's view of a scene: (H, W) float32 metres, 0 = no depth.

    depth_clean: (H, W) true depth along the optical axis (0 = nothing); incidence_cos: (H, W) |cos| of the angle
    between the viewing ray and the surface normal; glass: (H, W) bool pixels that see glass; fx: focal length in
    pixels; rng: the noise source (seed it for reproducible frames)."""
    depth = np.asarray(depth_clean, dtype=np.float64)
    h, w = depth.shape
    valid = (depth >= model.min_range_m) & (depth <= model.max_range_m) & ~glass
    valid &= np.asarray(incidence_cos) >= model.grazing_cos
    valid &= ~projector_shadow(depth, fx, model.baseline_m, model.max_shadow_px)
    v, u = np.mgrid[0:h, 0:w]
    for _ in range(int(rng.integers(0, model.max_blobs + 1))):
        cu, cv = rng.uniform(0, w), rng.uniform(0, h)
        ru, rv = rng.uniform(3, 18, 2)
        valid &= ((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2 > 1.0
    valid &= rng.random((h, w)) >= model.dropout_pixels
    noisy = depth + rng.normal(0.0, 1.0, (h, w)) * axial_sigma(depth)
    scale = fx * model.baseline_m
    disparity = np.round(8.0 * scale / np.where(valid, noisy, 1.0)) / 8.0
    out = np.where(valid & (disparity > 0), scale / np.where(disparity > 0, disparity, 1.0), 0.0)
    return out.astype(np.float32)
