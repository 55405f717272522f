"""Options of the synthetic street world and the default (real KITTI seq-08) calibration."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ssc_core.errors import ConfigError
from ssc_core.types import Calib, GridSpec

# Facts: the calibration of KITTI odometry sequence 08 (calib.txt), whose images are 1226 x 370.
SEQ08_P0 = np.array([[707.0912, 0.0, 601.8873, 0.0], [0.0, 707.0912, 183.1104, 0.0], [0.0, 0.0, 1.0, 0.0]])
SEQ08_P2 = np.array(
    [[707.0912, 0.0, 601.8873, 46.88783], [0.0, 707.0912, 183.1104, 0.1178601], [0.0, 0.0, 1.0, 0.006203223]]
)
SEQ08_TR = np.array(
    [
        [-1.857739385241e-03, -9.999659513510e-01, -8.039975204516e-03, -4.784029760483e-03],
        [-6.481465826011e-03, 8.051860151134e-03, -9.999466081774e-01, -7.337429464231e-02],
        [9.999773098287e-01, -1.805528627661e-03, -6.496203536139e-03, -3.339968064433e-01],
    ]
)
SEQ08_IMAGE_SIZE = (1226, 370)
STEREO_BASELINE_M = 0.54


@dataclass
class SyntheticOptions:
    """Everything that shapes a synthetic sequence besides the seed and the frame count.

    Sensors: ``image_size`` (W, H) of the rendered images (intrinsics are scaled from ``calib_image_size``);
    ``azimuth_step_deg`` of the LiDAR; ``lidar_beams`` between ``lidar_fov_deg`` (top, bottom);
    ``lidar_max_range_m``; ``lidar_height_m`` above the ground; ``range_noise_m`` (Gaussian sigma, 0 = off);
    ``calib_file`` a real calib.txt to use instead of the default seq-08 numbers; ``trajectory_file`` a real
    poses.txt to drive (``trajectory_start`` = its first frame used); ``write_images``/``write_right_image``.
    Labels: ``grid_dims``/``voxel_size`` of the voxel grid (origin at (0, -Y*size/2, -2)); ``label_stride``
    (every n-th frame gets voxel files); ``label_scans`` following scans aggregated; ``label_min_range_m``/
    ``label_max_range_m``; ``simulate_beyond_end`` simulates the scans after the last frame that labels need;
    ``invalid_origin_stride`` uses every n-th aggregated sensor position for ``.invalid``;
    ``visibility_res_deg`` the angular resolution of that visibility test.
    World: ``speed_mps`` of the ego car (None = drawn from the seed), ``object_density`` scale,
    ``junctions`` and ``curvature`` on/off.
    """

    image_size: tuple[int, int] = SEQ08_IMAGE_SIZE
    calib_image_size: tuple[int, int] = SEQ08_IMAGE_SIZE
    azimuth_step_deg: float = 0.16
    lidar_beams: int = 64
    lidar_fov_deg: tuple[float, float] = (2.0, -24.8)
    lidar_max_range_m: float = 80.0
    lidar_height_m: float = 1.73
    range_noise_m: float = 0.0
    calib_file: str | None = None
    trajectory_file: str | None = None
    trajectory_start: int = 0
    write_images: bool = True
    write_right_image: bool = True
    grid_dims: tuple[int, int, int] = (256, 256, 32)
    voxel_size: float = 0.2
    label_stride: int = 5
    label_scans: int = 70
    label_min_range_m: float = 2.5
    label_max_range_m: float = 70.0
    simulate_beyond_end: bool = True
    invalid_origin_stride: int = 5
    visibility_res_deg: float = 0.2
    speed_mps: float | None = None
    object_density: float = 1.0
    junctions: bool = True
    curvature: bool = True

    def __post_init__(self) -> None:
        w, h = (int(v) for v in self.image_size)
        if w < 16 or h < 16:
            raise ConfigError(f"image_size must be at least 16x16, got {self.image_size}")
        self.image_size = (w, h)
        self.calib_image_size = tuple(int(v) for v in self.calib_image_size)
        if len(self.calib_image_size) != 2 or min(self.calib_image_size) < 1:
            raise ConfigError(f"calib_image_size must be two positive integers (W, H), got {self.calib_image_size}")
        self.grid_dims = tuple(int(v) for v in self.grid_dims)
        if len(self.grid_dims) != 3 or min(self.grid_dims) < 2:
            raise ConfigError(f"grid_dims must be three integers >= 2, got {self.grid_dims}")
        if not 0.01 <= self.azimuth_step_deg <= 10:
            raise ConfigError(f"azimuth_step_deg must be in [0.01, 10], got {self.azimuth_step_deg}")
        if self.lidar_beams < 1:
            raise ConfigError(f"lidar_beams must be >= 1, got {self.lidar_beams}")
        for name in ("label_stride", "invalid_origin_stride"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.label_scans < 0:
            raise ConfigError(f"label_scans must be >= 0, got {self.label_scans}")
        if self.range_noise_m < 0:
            raise ConfigError(f"range_noise_m must be >= 0, got {self.range_noise_m}")
        if self.object_density < 0:
            raise ConfigError(f"object_density must be >= 0, got {self.object_density}")

    @classmethod
    def small(cls, **overrides) -> SyntheticOptions:
        """Test-size options: 320x96 images, 0.8 deg azimuth step, 128x128x16 grid of 0.4 m (same volume),
        20 aggregated scans. Keyword overrides are applied on top."""
        base = dict(
            image_size=(320, 96), azimuth_step_deg=0.8, grid_dims=(128, 128, 16), voxel_size=0.4, label_scans=20,
            invalid_origin_stride=5, visibility_res_deg=0.5,
        )
        base.update(overrides)
        return cls(**base)

    @property
    def grid(self) -> GridSpec:
        """The voxel grid of the labels: ``grid_dims`` at ``voxel_size``, origin (0, -Y*size/2, -2)."""
        half_y = self.grid_dims[1] * self.voxel_size / 2.0
        return GridSpec(dims=self.grid_dims, voxel_size=self.voxel_size, origin=(0.0, -half_y, -2.0))


def default_calib() -> Calib:
    """The real KITTI seq-08 calibration (P0, P2, Tr) with P1/P3 the 0.54 m stereo partners of P0/P2."""
    p1, p3 = SEQ08_P0.copy(), SEQ08_P2.copy()
    p1[0, 3] -= SEQ08_P0[0, 0] * STEREO_BASELINE_M
    p3[0, 3] -= SEQ08_P2[0, 0] * STEREO_BASELINE_M
    return Calib(P2=SEQ08_P2.copy(), T_cam0_velo=SEQ08_TR.copy(), P3=p3, P0=SEQ08_P0.copy(), P1=p1)


def scale_calib(calib: Calib, from_size: tuple[int, int], to_size: tuple[int, int]) -> Calib:
    """Rescale the projection matrices of ``calib`` from images of ``from_size`` (W, H) to ``to_size``:
    row 0 by W ratio, row 1 by H ratio (Tr unchanged). A missing P3 becomes P2 shifted by the 0.54 m baseline."""
    sx, sy = to_size[0] / from_size[0], to_size[1] / from_size[1]
    scale = np.diag([sx, sy, 1.0])

    def rescale(p: np.ndarray | None) -> np.ndarray | None:
        return None if p is None else scale @ p

    p3 = calib.P3
    if p3 is None:
        p3 = calib.P2.copy()
        p3[0, 3] -= calib.P2[0, 0] * STEREO_BASELINE_M
    return Calib(
        P2=rescale(calib.P2), T_cam0_velo=calib.T_cam0_velo.copy(), P3=rescale(p3), P0=rescale(calib.P0),
        P1=rescale(calib.P1),
    )


def resolve_calib(options: SyntheticOptions, base: Calib | None = None) -> Calib:
    """The calibration a sequence is written with: ``base`` if given, else ``options.calib_file``, else the
    default; scaled from ``options.calib_image_size`` to ``options.image_size``."""
    if base is not None:
        calib = base
    elif options.calib_file:
        from ssc_core.data.semantic_kitti import read_calib

        calib = read_calib(Path(options.calib_file))
    else:
        calib = default_calib()
    return scale_calib(calib, options.calib_image_size, options.image_size)


def seed_stream(seed: int, name: str) -> np.random.Generator:
    """An independent generator for one named part of the world (``default_rng([seed, crc32(name)])``), so
    that each part draws the same values whatever the sequence length or the other parts draw."""
    return np.random.default_rng([int(seed), zlib.crc32(name.encode())])
