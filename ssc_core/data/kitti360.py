"""SSCBench-KITTI-360: folder layout, voxel file formats, class set and calibration.

Layout (SSCBench ``dataset/KITTI-360``)::

    <root>/data_2d_raw/2013_05_28_drive_00XX_sync/
        image_00/data_rect/NNNNNN.png    left rectified camera (376 x 1408)
        image_01/data_rect/NNNNNN.png    right rectified camera
        voxels/NNNNNN.bin                input occupancy (MSB-first packed bits, as SemanticKITTI)
        voxels/NNNNNN.label              uint16 per voxel, SemanticKITTI-style RAW ids, [x][y][z] C order
        voxels/NNNNNN.invalid            ONE uint8 BYTE per voxel (not bit-packed), 1 = never observed
        cam0_to_world.txt  pose.txt      poses: "frame v1 ... v16" (4x4) or "frame v1 ... v12" (3x4)
    <root>/data_2d_raw/<drive>/predictions/NNNNNN.label   predictions (our convention, raw ids, uint16)
    <root>/calibration/perspective.txt         "KEY: values" lines; P_rect_00/01 (3x4), R_rect_00/01, S_rect_00/01
    <root>/calibration/calib_cam_to_velo.txt   12 numbers: cam0 -> velodyne (3x4, row-major)

The calibration folder is optional (SSCBench ships none): without it the SSCBench loaders' hard-coded values
are used. There is no ``.occluded`` file. The grid is SemanticKITTI's (256 x 256 x 32 at 0.2 m, origin (0, -25.6, -2)).
Importing this module registers the 'kitti360' ClassSet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ssc_core.data.files import ensure_parent, read_file_bytes
from ssc_core.data.label_maps import SEMANTIC_KITTI_COLOR_MAP_BGR, ClassSet, register_class_set
from ssc_core.data.semantic_kitti import (
    VOXEL_DIMS,
    read_packed_bits,
    read_voxel_labels,
    remap_voxel_labels,
    write_packed_bits,
    write_voxel_labels,
)
from ssc_core.errors import DataFormatError
from ssc_core.types import Calib

PathLike = str | Path

KITTI360_NAMES: tuple[str, ...] = (
    "empty", "car", "bicycle", "motorcycle", "truck", "other-vehicle", "person", "road", "parking",
    "sidewalk", "other-ground", "building", "fence", "vegetation", "terrain", "pole", "traffic-sign",
    "other-structure", "other-object",
)

# SSCBench kitti360.yaml: raw (SemanticKITTI-style) id -> KITTI-360 train id. 0 entries become 255 in the LUT.
KITTI360_LEARNING_MAP: dict[int, int] = {
    0: 0, 1: 0, 10: 1, 11: 2, 13: 5, 15: 3, 16: 5, 18: 4, 20: 5, 30: 6, 31: 0, 32: 0, 40: 7, 44: 8,
    48: 9, 49: 10, 50: 11, 51: 12, 52: 17, 60: 7, 70: 13, 71: 0, 72: 14, 80: 15, 81: 16, 99: 18,
    252: 1, 253: 0, 254: 6, 255: 0, 256: 5, 257: 5, 258: 4, 259: 5,
}

KITTI360_LEARNING_MAP_INV: dict[int, int] = {
    0: 0, 1: 10, 2: 11, 3: 15, 4: 18, 5: 20, 6: 30, 7: 40, 8: 44, 9: 48, 10: 49, 11: 50, 12: 51,
    13: 70, 14: 72, 15: 80, 16: 81, 17: 52, 18: 99,
}

# Voxel counts per train id (SSCBench kitti_360/params.py).
KITTI360_FREQUENCIES: tuple[float, ...] = (
    2264087502, 20098728, 104972, 96297, 1149426, 4051087, 125103, 105540713, 16292249, 45297267,
    14454132, 110397082, 6766219, 295883213, 50037503, 1561069, 406330, 30516166, 1950115,
)

# round(10 / ln(f + 0.001), 3), as SGN hard-codes them for KITTI-360.
SGN_KITTI360_CLASS_WEIGHTS: tuple[float, ...] = (
    0.464, 0.595, 0.865, 0.871, 0.717, 0.657, 0.852, 0.541, 0.602, 0.567, 0.607, 0.540, 0.636, 0.513,
    0.564, 0.701, 0.774, 0.580, 0.690,
)

KITTI360 = ClassSet(
    name="kitti360",
    names=KITTI360_NAMES,
    colors_rgb=np.array(
        [SEMANTIC_KITTI_COLOR_MAP_BGR[KITTI360_LEARNING_MAP_INV[i]][::-1] for i in range(len(KITTI360_NAMES))],
        dtype=np.uint8,
    ),
    learning_map=KITTI360_LEARNING_MAP,
    frequencies=KITTI360_FREQUENCIES,
    learning_map_inverse=KITTI360_LEARNING_MAP_INV,
)
register_class_set(KITTI360)

KITTI360_SPLITS: dict[str, tuple[str, ...]] = {
    "train": tuple(f"2013_05_28_drive_{d:04d}_sync" for d in (0, 2, 3, 4, 5, 7, 10)),
    "valid": ("2013_05_28_drive_0006_sync",),
    "test": ("2013_05_28_drive_0009_sync",),
}

KITTI360_IMAGE_HW: tuple[int, int] = (376, 1408)

# Rectified left camera projection and cam0 -> velodyne (3x4), hard-coded by the SSCBench / SGN loaders.
KITTI360_P_RECT_00 = np.array(
    [[552.554261, 0.0, 682.049453, 0.0], [0.0, 552.554261, 238.769549, 0.0], [0.0, 0.0, 1.0, 0.0]]
)
KITTI360_T_VELO_CAM0_3X4 = np.array(
    [
        [0.04307104361, -0.08829286498, 0.995162929, 0.8043914418],
        [-0.999004371, 0.007784614041, 0.04392796942, 0.2993489574],
        [-0.01162548558, -0.9960641394, -0.08786966659, -0.1770225824],
    ]
)


def kitti360_calib() -> Calib:
    """The SSCBench-KITTI-360 calibration as a Calib: P2 = the left rectified P, T_cam0_velo = inv(cam0->velo)."""
    t_velo_cam0 = np.vstack([KITTI360_T_VELO_CAM0_3X4, [0.0, 0.0, 0.0, 1.0]])
    return Calib(P2=KITTI360_P_RECT_00.copy(), T_cam0_velo=np.linalg.inv(t_velo_cam0))


# ------------------------------------------------------------------------------------------- calibration
def _parse_numbers(where: str, text: str, count: int, what: str) -> np.ndarray:
    try:
        values = np.array([float(v) for v in text.split()], dtype=np.float64)
    except ValueError:
        raise DataFormatError(f"{where}: {what}: expected numbers, got {text.strip()[:60]!r}") from None
    if values.size != count:
        raise DataFormatError(f"{where}: {what}: {values.size} values, expected {count}")
    if not np.all(np.isfinite(values)):
        raise DataFormatError(f"{where}: {what}: non-finite value")
    return values


# Keys of perspective.txt this reader checks, with their value counts (others, e.g. calib_time, are skipped).
_PERSPECTIVE_KEYS: dict[str, int] = {
    "P_rect_00": 12, "P_rect_01": 12, "R_rect_00": 9, "R_rect_01": 9, "S_rect_00": 2, "S_rect_01": 2,
}


def read_kitti360_perspective(path: PathLike) -> dict[str, np.ndarray]:
    """Read KITTI-360's ``calibration/perspective.txt`` ("KEY: values" lines, as the devkit's
    loadPerspectiveIntrinsic). Returns the keys present among P_rect_00/01 (3, 4), R_rect_00/01 (3, 3) and
    S_rect_00/01 (2,) = image (W, H); other keys (calib_time, K_00, D_00, ...) are skipped. P_rect_00 is
    required; DataFormatError naming the file for a missing file, a missing P_rect_00 or a malformed value."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found")
    out: dict[str, np.ndarray] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        key, sep, rest = line.partition(":")
        key = key.strip()
        if not sep:
            raise DataFormatError(f"{path}:{lineno}: expected 'KEY: values', got {line.strip()[:60]!r}")
        if key not in _PERSPECTIVE_KEYS:
            continue
        values = _parse_numbers(f"{path}:{lineno}", rest, _PERSPECTIVE_KEYS[key], key)
        out[key] = values.reshape(3, -1) if key[0] in "PR" else values
    if "P_rect_00" not in out:
        raise DataFormatError(f"{path}: no P_rect_00 line (the left rectified camera's projection)")
    return out


def write_kitti360_perspective(path: PathLike, P_rect_00: np.ndarray, P_rect_01: np.ndarray | None = None,
                               image_size: tuple[int, int] | None = None) -> None:
    """Write ``perspective.txt`` with P_rect_00 (and P_rect_01), identity R_rect_00/01 and, when given,
    S_rect_00/01 = image_size (W, H), in the real file's "KEY: values" %e layout."""
    def fmt(values) -> str:
        return " ".join(f"{float(v):.9e}" for v in np.asarray(values, dtype=np.float64).ravel())

    lines = []
    for cam, p in (("00", P_rect_00), ("01", P_rect_01)):
        if p is None:
            continue
        p = np.asarray(p, dtype=np.float64)
        if p.shape != (3, 4):
            raise DataFormatError(f"{path}: P_rect_{cam} must be 3x4, got {p.shape}")
        if image_size is not None:
            lines.append(f"S_rect_{cam}: {fmt(image_size)}")
        lines.append(f"R_rect_{cam}: {fmt(np.eye(3))}")
        lines.append(f"P_rect_{cam}: {fmt(p)}")
    ensure_parent(path).write_text("\n".join(lines) + "\n")


def read_kitti360_cam_to_velo(path: PathLike) -> np.ndarray:
    """Read KITTI-360's ``calibration/calib_cam_to_velo.txt``: 12 numbers (cam0 -> velodyne, 3x4 row-major,
    whitespace/newline separated, no key). Returns (4, 4) float64; DataFormatError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found")
    values = _parse_numbers(str(path), path.read_text(), 12, "cam0->velo 3x4")
    t = np.eye(4)
    t[:3] = values.reshape(3, 4)
    if not np.allclose(t[:3, :3] @ t[:3, :3].T, np.eye(3), atol=1e-4):
        raise DataFormatError(f"{path}: the 3x3 rotation part is not orthonormal")
    return t


def write_kitti360_cam_to_velo(path: PathLike, T_velo_cam0: np.ndarray) -> None:
    """Write ``calib_cam_to_velo.txt``: the top 3x4 of the cam0 -> velodyne transform on one line."""
    t = np.asarray(T_velo_cam0, dtype=np.float64)
    if t.shape not in ((3, 4), (4, 4)):
        raise DataFormatError(f"{path}: cam0->velo must be 3x4 or 4x4, got {t.shape}")
    ensure_parent(path).write_text(" ".join(f"{v:.12e}" for v in t[:3].ravel()) + "\n")


def kitti360_calibration_dir(root: PathLike) -> Path:
    """``<root>/calibration``, where KITTI-360 keeps perspective.txt and calib_cam_to_velo.txt."""
    return Path(root) / "calibration"


def read_kitti360_calib(root: PathLike) -> Calib:
    """The calibration of a KITTI-360 root (the folder holding ``data_2d_raw/``): P2/P3 = P_rect_00/P_rect_01
    of ``calibration/perspective.txt`` and T_cam0_velo = inv(``calibration/calib_cam_to_velo.txt``), each file
    falling back to the SSCBench hard-coded values when absent (so a bare SSCBench root gives
    ``kitti360_calib()``). R_rect_00 is ignored, as the SSCBench / SGN loaders do (the devkit applies it;
    on the real data it is a ~0.4 deg rotation)."""
    calib = kitti360_calib()
    folder = kitti360_calibration_dir(root)
    perspective, cam_to_velo = folder / "perspective.txt", folder / "calib_cam_to_velo.txt"
    if perspective.is_file():
        values = read_kitti360_perspective(perspective)
        calib = Calib(P2=values["P_rect_00"], T_cam0_velo=calib.T_cam0_velo, P3=values.get("P_rect_01"))
    if cam_to_velo.is_file():
        calib = Calib(P2=calib.P2, T_cam0_velo=np.linalg.inv(read_kitti360_cam_to_velo(cam_to_velo)), P3=calib.P3)
    return calib


def write_kitti360_calib(root: PathLike, calib: Calib, image_size: tuple[int, int] | None = None) -> Path:
    """Write ``<root>/calibration/{perspective.txt, calib_cam_to_velo.txt}`` from a Calib (P_rect_00 = P2,
    P_rect_01 = P3, cam0->velo = inv(T_cam0_velo)); image_size (W, H) goes to S_rect_*. Returns the folder."""
    folder = kitti360_calibration_dir(root)
    write_kitti360_perspective(folder / "perspective.txt", calib.P2, calib.P3, image_size)
    write_kitti360_cam_to_velo(folder / "calib_cam_to_velo.txt", np.linalg.inv(calib.T_cam0_velo))
    return folder


# ------------------------------------------------------------------------------------------------ voxels
def read_kitti360_labels(path: PathLike, dims: tuple[int, int, int] = VOXEL_DIMS) -> np.ndarray:
    """Read a KITTI-360 voxel ``.label`` (the SemanticKITTI format: flat little-endian uint16, C order):
    returns (X, Y, Z) uint16 raw (SemanticKITTI-style) ids."""
    return read_voxel_labels(path, dims)


def write_kitti360_labels(path: PathLike, labels_raw: np.ndarray) -> None:
    """Write (X, Y, Z) raw ids as a KITTI-360 voxel ``.label`` (the SemanticKITTI format)."""
    write_voxel_labels(path, labels_raw)


def read_kitti360_invalid(path: PathLike, dims: tuple[int, int, int] = VOXEL_DIMS) -> np.ndarray:
    """Read a KITTI-360 ``.invalid`` (one byte per voxel, NOT bit-packed): returns (X, Y, Z) uint8 0/1."""
    data = read_file_bytes(path)
    expected = int(np.prod(dims))
    if len(data) != expected:
        hint = " (that is a bit-packed size: SemanticKITTI layout?)" if len(data) == (expected + 7) // 8 else ""
        raise DataFormatError(f"{path}: {len(data)} bytes, expected {expected} (one byte per voxel){hint}")
    values = np.frombuffer(data, dtype=np.uint8)
    if values.max(initial=0) > 1:
        raise DataFormatError(f"{path}: invalid flags must be 0 or 1, found {int(values.max())}")
    return values.reshape(dims).copy()


def write_kitti360_invalid(path: PathLike, invalid: np.ndarray) -> None:
    """Write a (X, Y, Z) 0/1 array as a KITTI-360 ``.invalid`` (one uint8 per voxel, C order)."""
    invalid = np.asarray(invalid)
    if invalid.ndim != 3:
        raise DataFormatError(f"{path}: invalid mask must be 3-D, got shape {invalid.shape}")
    np.ascontiguousarray(invalid).astype(bool).astype(np.uint8).tofile(ensure_parent(path))


def read_kitti360_occupancy(path: PathLike, dims: tuple[int, int, int] = VOXEL_DIMS) -> np.ndarray:
    """Read a KITTI-360 input ``.bin``: returns (X, Y, Z) uint8 0/1. Accepts MSB-first packed bits
    (262,144 bytes for 256x256x32) or one byte per voxel; the released format is unverified, so both are read."""
    path = Path(path)
    n = int(np.prod(dims))
    size = path.stat().st_size if path.is_file() else -1
    if size == n:
        return np.frombuffer(read_file_bytes(path), dtype=np.uint8).reshape(dims).astype(bool).astype(np.uint8)
    return read_packed_bits(path, dims)


def write_kitti360_occupancy(path: PathLike, occupancy: np.ndarray) -> None:
    """Write a (X, Y, Z) 0/1 input occupancy ``.bin`` as MSB-first packed bits (SemanticKITTI's format)."""
    write_packed_bits(ensure_parent(path), occupancy)


def kitti360_eval_target(labels_raw: np.ndarray, invalid: np.ndarray, class_set: ClassSet | None = None) -> np.ndarray:
    """SSCBench's training/eval target: raw ids -> KITTI-360 train ids through the LUT, and voxels that are
    invalid AND have raw label 0 -> 255 (the preprocess forces invalid = 0 wherever raw label != 0).
    Takes (X, Y, Z) raw ids and 0/1 invalid; returns (X, Y, Z) uint8 train ids with 255 = ignore."""
    labels_raw = np.asarray(labels_raw)
    invalid_eff = np.asarray(invalid).astype(bool) & (labels_raw == 0)
    return remap_voxel_labels(labels_raw, class_set or KITTI360, invalid=invalid_eff)


# ------------------------------------------------------------------------------------------------- poses
def read_kitti360_poses(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read ``pose.txt`` / ``cam0_to_world.txt``: lines ``frame`` + 12 (3x4) or 16 (4x4) row-major values.
    Returns (frames (N,) int64, poses (N, 4, 4) float64)."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found")
    frames, poses = [], []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            frame = int(parts[0])
            values = [float(v) for v in parts[1:]]
        except ValueError:
            raise DataFormatError(f"{path}:{lineno}: expected 'frame v1 v2 ...' numbers, got {line[:60]!r}") from None
        if len(values) not in (12, 16):
            raise DataFormatError(f"{path}:{lineno}: {len(values)} pose values, expected 12 (3x4) or 16 (4x4)")
        pose = np.eye(4)
        pose[: len(values) // 4] = np.asarray(values).reshape(-1, 4)
        frames.append(frame)
        poses.append(pose)
    return np.asarray(frames, dtype=np.int64), np.asarray(poses, dtype=np.float64).reshape(-1, 4, 4)


def write_kitti360_poses(path: PathLike, frames: np.ndarray, poses: np.ndarray, rows: int = 4) -> None:
    """Write poses as ``frame`` + row-major values: rows=4 (cam0_to_world.txt) or rows=3 (pose.txt)."""
    if rows not in (3, 4):
        raise DataFormatError(f"{path}: rows must be 3 or 4, got {rows}")
    poses = np.asarray(poses, dtype=np.float64)
    frames = np.asarray(frames, dtype=np.int64)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4) or len(frames) != len(poses):
        raise DataFormatError(f"{path}: need (N, 4, 4) poses and N frames, got {poses.shape} and {frames.shape}")
    lines = [f"{f} " + " ".join(f"{v:.12e}" for v in p[:rows].ravel()) for f, p in zip(frames, poses)]
    ensure_parent(path).write_text("\n".join(lines) + ("\n" if lines else ""))


# ------------------------------------------------------------------------------------------------ layout
def drive_name(drive: str | int) -> str:
    """Normalise a drive id: 9, '9', '0009' or the full name -> '2013_05_28_drive_0009_sync'."""
    text = str(drive)
    if re.fullmatch(r"\d+", text):
        return f"2013_05_28_drive_{int(text):04d}_sync"
    return text


@dataclass(frozen=True)
class Kitti360Paths:
    """Paths of one SSCBench-KITTI-360 drive folder ``<root>/data_2d_raw/<drive>``."""

    root: Path
    drive: str

    @classmethod
    def of(cls, root: PathLike, drive: str | int) -> Kitti360Paths:
        """Paths for ``root`` (the folder holding ``data_2d_raw/``) and a drive (9 -> 2013_05_28_drive_0009_sync)."""
        return cls(Path(root), drive_name(drive))

    @property
    def dir(self) -> Path:
        """The drive folder."""
        return self.root / "data_2d_raw" / self.drive

    def image(self, frame: int, camera: int = 0) -> Path:
        """Path of a rectified image (camera 0 = left, 1 = right)."""
        return self.dir / f"image_{camera:02d}" / "data_rect" / f"{frame:06d}.png"

    def voxel(self, frame: int, kind: str) -> Path:
        """Path of a voxel file; kind in {'bin', 'label', 'invalid'}."""
        if kind not in ("bin", "label", "invalid"):
            raise ValueError(f"unknown KITTI-360 voxel file kind {kind!r} (there is no .occluded)")
        return self.dir / "voxels" / f"{frame:06d}.{kind}"

    def prediction(self, frame: int) -> Path:
        """Path of a prediction (``predictions/NNNNNN.label`` beside ``voxels/``)."""
        return self.dir / "predictions" / f"{frame:06d}.label"

    @property
    def calibration(self) -> Path:
        """``<root>/calibration`` (perspective.txt, calib_cam_to_velo.txt; optional, shared by all drives)."""
        return kitti360_calibration_dir(self.root)

    @property
    def cam0_to_world(self) -> Path:
        """Path of cam0_to_world.txt."""
        return self.dir / "cam0_to_world.txt"

    @property
    def poses(self) -> Path:
        """Path of pose.txt."""
        return self.dir / "pose.txt"

    def labelled_frames(self) -> list[int]:
        """Frame numbers that have a voxel ``.label``, sorted."""
        return sorted(int(p.stem) for p in (self.dir / "voxels").glob("*.label") if p.stem.isdigit())

    def image_frames(self, camera: int = 0) -> list[int]:
        """Frame numbers with a rectified image of the given camera, sorted."""
        folder = self.dir / f"image_{camera:02d}" / "data_rect"
        return sorted(int(p.stem) for p in folder.glob("*.png") if p.stem.isdigit())
