"""The stereo depth map of a sample (``data.stereo_depth``; L2COcc's camera models read it as ``stereo_depth``).

``data.stereo_depth.source`` names a depth-map source (``ssc_core.data.depth_sources``: ``stereo_sgbm`` on the raw
stereo pair, ``precomputed`` ``.npy`` files such as MobileStereoNet's ``sequences_msnet3d_depth``, or ``none``);
the depth of the raw left image is brought to the image tensor's pixels by the same transform as the image
(``post_rot`` / ``post_tran``), sampling the nearest raw pixel (depths are not blended across edges), 0 where the
tensor pixel has no raw pixel.
"""

from __future__ import annotations

import numpy as np
import torch

from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.types import Frame


def stereo_depth_source(data_cfg: dict) -> str:
    """``data.stereo_depth.source`` ('none' when the section or key is absent)."""
    section = data_cfg.get("stereo_depth") or {}
    if not isinstance(section, dict):
        raise ConfigError(f"data.stereo_depth must be a mapping like {{source: stereo_sgbm}}, got {section!r}")
    return str(section.get("source") or "none")


def stereo_depth_requires(data_cfg: dict) -> tuple[str, ...]:
    """The Frame fields the configured depth-map source reads (e.g. ('image_right',) for stereo_sgbm)."""
    from ssc_core.data.depth_sources import get_depth_map_source

    name = stereo_depth_source(data_cfg)
    return () if name == "none" else get_depth_map_source(name).requires


def warp_depth_map(depth: np.ndarray, transform: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """(H0, W0) depth of the raw image -> (H, W) float32 in the image tensor's pixels, for the (3, 3) pixel
    transform (raw -> tensor, homogeneous): each tensor pixel reads the raw pixel nearest to its preimage, 0 when
    that falls outside the raw image; non-finite depths become 0."""
    depth = np.asarray(depth, dtype=np.float32)
    if depth.ndim != 2:
        raise DataFormatError(f"depth map must be (H, W), got shape {depth.shape}")
    h, w = out_hw
    inverse = np.linalg.inv(np.asarray(transform, dtype=np.float64))
    v, u = np.mgrid[0:h, 0:w]
    raw = inverse @ np.stack([u.ravel(), v.ravel(), np.ones(h * w)])
    cols, rows = np.round(raw[0]).astype(np.int64), np.round(raw[1]).astype(np.int64)
    inside = (cols >= 0) & (cols < depth.shape[1]) & (rows >= 0) & (rows < depth.shape[0])
    out = np.zeros(h * w, dtype=np.float32)
    out[inside] = depth[rows[inside], cols[inside]]
    out[~np.isfinite(out)] = 0.0
    return out.reshape(h, w)


def stereo_depth_sample(frame: Frame, transform: np.ndarray, out_hw: tuple[int, int], data_cfg: dict
                        ) -> torch.Tensor:
    """The ``stereo_depth`` entry of a sample: (H, W) float32 metres in the image tensor's pixels (0 = none) from
    the source ``data.stereo_depth.source`` names, for the frame whose image was transformed by ``transform``."""
    from ssc_core.data.depth_sources import get_depth_map_source

    depth = get_depth_map_source(stereo_depth_source(data_cfg)).fn(frame, data_cfg)
    return torch.from_numpy(warp_depth_map(depth, transform, out_hw))
