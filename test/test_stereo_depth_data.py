"""The stereo depth map of a sample: its sources and the image transform applied to it."""

from __future__ import annotations

import numpy as np
import pytest

from ssc_core.data.stereo_depth import stereo_depth_requires, stereo_depth_sample, stereo_depth_source, warp_depth_map
from ssc_core.data.synthetic.options import default_calib
from ssc_core.errors import ConfigError
from ssc_core.types import Frame


def test_identity_transform_copies_and_pads_with_zeros():
    depth = np.arange(12, dtype=np.float32).reshape(3, 4)
    out = warp_depth_map(depth, np.eye(3), (4, 5))
    assert np.array_equal(out[:3, :4], depth) and not out[3].any() and not out[:, 4].any()


def test_resize_and_bottom_crop_read_the_nearest_raw_pixel():
    depth = np.array([[1.0, 2.0], [3.0, np.nan]], dtype=np.float32)
    # scale 2 (pixel centres: u' = 2 (u + 0.5) - 0.5), then drop the top row
    transform = np.array([[2.0, 0.0, 0.5], [0.0, 2.0, 0.5 - 1.0], [0.0, 0.0, 1.0]])
    out = warp_depth_map(depth, transform, (3, 4))
    assert out.tolist() == [[1.0, 1.0, 2.0, 2.0], [3.0, 3.0, 0.0, 0.0], [3.0, 3.0, 0.0, 0.0]]


def test_frames_carrying_depth_feed_the_precomputed_source():
    depth = np.full((4, 6), 7.0, dtype=np.float32)
    frame = Frame(stamp_ns=1, image_left=np.zeros((4, 6, 3), np.uint8), calib=default_calib(), depth=depth)
    cfg = {"stereo_depth": {"source": "precomputed"}}
    assert stereo_depth_source(cfg) == "precomputed" and stereo_depth_requires(cfg) == ()
    out = stereo_depth_sample(frame, np.eye(3), (4, 6), cfg)
    assert out.dtype.is_floating_point and out.shape == (4, 6) and float(out.min()) == 7.0
    assert stereo_depth_source({}) == "none"
    assert stereo_depth_requires({"stereo_depth": {"source": "stereo_sgbm"}}) == ("image_right",)
    assert stereo_depth_requires({"stereo_depth": {"source": "stereo_msnet"}}) == ("image_right",)  # MobileStereoNet
    with pytest.raises(ConfigError, match="unknown data.stereo_depth.source"):
        stereo_depth_requires({"stereo_depth": {"source": "lidar"}})
