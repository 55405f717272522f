"""2D augmentation of RGB-D samples: the image and its pixel -> voxel map move together."""

from __future__ import annotations

import numpy as np

from ssc_core.data.rgbd_augment import augment_rgbd, geometric_augmentation, photometric_distortion

H, W = 48, 64


def smooth_image_and_identity_map() -> tuple[np.ndarray, np.ndarray]:
    """A smooth colour ramp and a map sending every pixel to 'voxel' row * W + col (so a map value says which
    original pixel a pixel shows)."""
    rows, cols = np.mgrid[0:H, 0:W]
    image = np.stack([rows * 255 // (H - 1), cols * 255 // (W - 1), np.full((H, W), 128)], axis=-1).astype(np.uint8)
    return image, (rows * W + cols).astype(np.int64)


def test_every_kept_pixel_shows_the_voxel_its_map_names():
    image, mapping2d = smooth_image_and_identity_map()
    resized_or_flipped = 0
    for seed in range(12):
        out_img, out_map = geometric_augmentation(image, mapping2d, np.random.default_rng(seed))
        assert out_img.shape == image.shape and out_map.shape == mapping2d.shape
        kept = out_map >= 0
        src = image.reshape(-1, 3)[out_map[kept]].astype(int)
        assert np.abs(out_img[kept].astype(int) - src).max() <= 8  # bilinear vs nearest on a ramp of ~5 / pixel
        assert np.all(out_img[~kept] == 0)  # padding
        resized_or_flipped += int(not np.array_equal(out_map, mapping2d))
    assert resized_or_flipped >= 6


def test_photometric_distortion_keeps_the_map_and_changes_colours():
    image, mapping2d = smooth_image_and_identity_map()
    rng = np.random.default_rng(3)
    changed = [not np.array_equal(photometric_distortion(image, rng), image) for _ in range(8)]
    assert any(changed)
    out_img, out_map = augment_rgbd(image, mapping2d, np.random.default_rng(0))
    assert out_img.dtype == np.uint8 and out_map.dtype == np.int64 and (out_map >= 0).any()
