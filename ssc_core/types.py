"""Core data types shared by datasets, models, inference and the ROS pipeline.

Conventions (see docs/architecture.md):
- Voxel arrays are indexed [x][y][z] (C order, z fastest), in the LiDAR ("velo") frame: x forward, y left, z up.
- Transforms are 4x4 float64 matrices named ``T_<to>_<from>``; points are (N, 3|4) float32 named with their frame.
- Time is integer nanoseconds.
- Labels are train ids 0..C-1 (0 = empty), 255 = ignore.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ssc_core.errors import ConfigError, DataFormatError

IGNORE_LABEL = 255


@dataclass(frozen=True)
class GridSpec:
    """A regular voxel grid in the LiDAR frame.

    dims: voxels along (x, y, z); voxel_size: metres; origin: metric position (x, y, z) of the
    corner of voxel (0, 0, 0). Voxel (i, j, k) spans origin + voxel_size * [i, i+1) etc.
    """

    dims: tuple[int, int, int] = (256, 256, 32)
    voxel_size: float = 0.2
    origin: tuple[float, float, float] = (0.0, -25.6, -2.0)

    def __post_init__(self) -> None:
        if len(self.dims) != 3 or any(int(d) <= 0 for d in self.dims):
            raise ConfigError(f"GridSpec.dims must be three positive integers, got {self.dims}")
        if not self.voxel_size > 0:
            raise ConfigError(f"GridSpec.voxel_size must be > 0, got {self.voxel_size}")
        if len(self.origin) != 3:
            raise ConfigError(f"GridSpec.origin must have three values, got {self.origin}")
        object.__setattr__(self, "dims", tuple(int(d) for d in self.dims))
        object.__setattr__(self, "origin", tuple(float(o) for o in self.origin))
        object.__setattr__(self, "voxel_size", float(self.voxel_size))

    @classmethod
    def semantic_kitti(cls) -> GridSpec:
        """The SemanticKITTI / SSCBench-KITTI-360 grid: 256x256x32 at 0.2 m, origin (0, -25.6, -2)."""
        return cls()

    @classmethod
    def nyu(cls) -> GridSpec:
        """The NYUv2 SSC grid: 60x36x60 at 0.08 m (origin is per-scene in NYU; zeros here)."""
        return cls(dims=(60, 36, 60), voxel_size=0.08, origin=(0.0, 0.0, 0.0))

    @classmethod
    def from_dict(cls, cfg: dict) -> GridSpec:
        """Build from a config mapping with keys dims, voxel_size, origin (all optional)."""
        unknown = set(cfg) - {"dims", "voxel_size", "origin"}
        if unknown:
            raise ConfigError(f"unknown grid keys {sorted(unknown)}; expected dims, voxel_size, origin")
        base = cls()
        return cls(
            dims=tuple(cfg.get("dims", base.dims)),
            voxel_size=cfg.get("voxel_size", base.voxel_size),
            origin=tuple(cfg.get("origin", base.origin)),
        )

    def to_dict(self) -> dict:
        """Plain-data form (for configs and checkpoints)."""
        return {"dims": list(self.dims), "voxel_size": self.voxel_size, "origin": list(self.origin)}

    @property
    def num_voxels(self) -> int:
        """Total number of voxels."""
        return int(np.prod(self.dims))

    @property
    def extent(self) -> np.ndarray:
        """Metric size (3,) of the volume."""
        return np.asarray(self.dims, dtype=np.float64) * self.voxel_size

    @property
    def max_bound(self) -> np.ndarray:
        """Metric far corner (3,) of the volume."""
        return np.asarray(self.origin) + self.extent

    def downsample(self, factor: int) -> GridSpec:
        """The grid at 1:factor resolution (same origin and extent)."""
        if factor < 1 or any(d % factor for d in self.dims):
            raise ConfigError(f"grid {self.dims} cannot be downsampled by {factor}")
        return replace(self, dims=tuple(d // factor for d in self.dims), voxel_size=self.voxel_size * factor)

    def voxel_centers(self) -> np.ndarray:
        """Centres of all voxels, (X*Y*Z, 3) float32 in the grid's frame, flat [x][y][z] order."""
        idx = np.indices(self.dims).reshape(3, -1).T.astype(np.float64)
        return (np.asarray(self.origin) + (idx + 0.5) * self.voxel_size).astype(np.float32)

    def points_to_indices(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Voxel indices of points. Takes (N, >=3) points in the grid frame; returns ((N, 3) int64
        indices, (N,) bool mask of points inside the volume). Indices of outside points are meaningless."""
        pts = np.asarray(points)[:, :3].astype(np.float64)
        finite = np.all(np.isfinite(pts), axis=1)
        pts = np.where(finite[:, None], pts, np.asarray(self.origin))  # no NaN -> int cast (undefined value)
        idx = np.floor((pts - np.asarray(self.origin)) / self.voxel_size).astype(np.int64)
        inside = np.all((idx >= 0) & (idx < np.asarray(self.dims)), axis=1) & finite
        return idx, inside


@dataclass
class Calib:
    """Camera/LiDAR calibration of one sequence, KITTI convention.

    P2, P3: (3, 4) float64 rectified projection matrices of the left/right colour cameras.
    T_cam0_velo: (4, 4) float64, the ``Tr`` of calib.txt (velodyne -> rectified camera 0).
    The field's convention (MonoScene/VoxFormer/SGN) projects with K = P2[:3, :3] and T_cam0_velo,
    ignoring P2's 4th column; ``T_cam2_velo`` includes that offset for users who want it exact.
    """

    P2: np.ndarray
    T_cam0_velo: np.ndarray
    P3: np.ndarray | None = None
    P0: np.ndarray | None = None
    P1: np.ndarray | None = None

    def __post_init__(self) -> None:
        for name in ("P0", "P1", "P2", "P3"):
            value = getattr(self, name)
            if value is None:
                continue
            value = np.asarray(value, dtype=np.float64)
            if value.shape != (3, 4):
                raise DataFormatError(f"Calib.{name} must be 3x4, got {value.shape}")
            setattr(self, name, value)
        tr = np.asarray(self.T_cam0_velo, dtype=np.float64)
        if tr.shape == (3, 4):
            tr = np.vstack([tr, [0.0, 0.0, 0.0, 1.0]])
        if tr.shape != (4, 4):
            raise DataFormatError(f"Calib.T_cam0_velo must be 3x4 or 4x4, got {tr.shape}")
        self.T_cam0_velo = tr

    @property
    def K(self) -> np.ndarray:
        """(3, 3) intrinsics of the left colour camera, P2[:3, :3]."""
        return self.P2[:, :3].copy()

    @property
    def T_cam2_velo(self) -> np.ndarray:
        """(4, 4) velodyne -> left colour camera including P2's baseline offset (exact KITTI geometry)."""
        t = np.eye(4)
        t[0, 3] = self.P2[0, 3] / self.P2[0, 0]
        t[1, 3] = self.P2[1, 3] / self.P2[1, 1]
        t[2, 3] = self.P2[2, 3]
        return t @ self.T_cam0_velo

    @property
    def stereo_baseline(self) -> float | None:
        """Baseline in metres between the left and right colour cameras, from P2 and P3 (None without P3)."""
        if self.P3 is None:
            return None
        return float((self.P2[0, 3] - self.P3[0, 3]) / self.P2[0, 0])

    def lidar2img(self) -> np.ndarray:
        """(4, 4) velodyne -> image projection in the field's convention: pad4x4(K) @ Tr."""
        k4 = np.eye(4)
        k4[:3, :3] = self.K
        return k4 @ self.T_cam0_velo


@dataclass
class Frame:
    """One time step of sensor data.

    stamp_ns: acquisition time; image_left: (H, W, 3) uint8 RGB; calib: the camera/LiDAR calibration (both None
    only for a LiDAR-only frame, which models reading the scan alone run on); T_odom_velo: (4, 4) float64 pose of
    the LiDAR in a fixed frame (None if unknown); image_right: optional (H, W, 3) uint8 RGB; points_velo: optional
    (N, 4) float32 x, y, z, intensity; depth: optional (H, W) float32 metric depth of the left camera (0 or NaN =
    unknown); index: frame number.
    """

    stamp_ns: int
    image_left: np.ndarray | None
    calib: Calib | None
    T_odom_velo: np.ndarray | None = None
    image_right: np.ndarray | None = None
    points_velo: np.ndarray | None = None
    depth: np.ndarray | None = None
    index: int = -1


@dataclass
class FrameWindow:
    """The current frame plus its history (oldest first), each history frame with T_cur_hist:
    the (4, 4) float64 transform from that frame's LiDAR frame into the current LiDAR frame."""

    current: Frame
    history: list[Frame] = field(default_factory=list)
    T_cur_hist: list[np.ndarray] = field(default_factory=list)

    @classmethod
    def from_frames(cls, current: Frame, history: list[Frame]) -> FrameWindow:
        """Build a window, computing T_cur_hist from the frames' T_odom_velo poses (identity if missing)."""
        transforms = []
        for hist in history:
            if current.T_odom_velo is None or hist.T_odom_velo is None:
                transforms.append(np.eye(4))
            else:
                transforms.append(np.linalg.inv(current.T_odom_velo) @ hist.T_odom_velo)
        return cls(current=current, history=list(history), T_cur_hist=transforms)

    @property
    def frames(self) -> list[Frame]:
        """History (oldest first) then the current frame."""
        return [*self.history, self.current]


@dataclass
class Prediction:
    """A model's output for one window.

    labels: (X, Y, Z) uint8 train ids (0 = empty); confidence: (X, Y, Z) float32 softmax probability of the
    predicted class; grid: the GridSpec the arrays live on; stamp_ns: the input stamp; frame_id: the frame
    the grid is expressed in (the LiDAR frame of the current scan).
    """

    labels: np.ndarray
    confidence: np.ndarray
    grid: GridSpec
    stamp_ns: int = 0
    frame_id: str = "velo_link"

    def __post_init__(self) -> None:
        if self.labels.shape != tuple(self.grid.dims):
            raise DataFormatError(f"Prediction.labels shape {self.labels.shape} != grid dims {self.grid.dims}")
        if self.confidence.shape != self.labels.shape:
            raise DataFormatError(
                f"Prediction.confidence shape {self.confidence.shape} != labels shape {self.labels.shape}"
            )
