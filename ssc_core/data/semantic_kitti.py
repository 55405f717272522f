"""Every SemanticKITTI file format, read and written, plus the sequence layout.

Layout: ``<root>/sequences/XX/{velodyne/NNNNNN.bin, labels/NNNNNN.label, image_2|image_3/NNNNNN.png,
voxels/NNNNNN.{bin,label,invalid,occluded}, calib.txt, poses.txt, times.txt}``.
Formats (see docs/datasets.md): points float32 x,y,z,remission; point labels uint32 (semantic = low 16 bits,
instance = high 16 bits); voxel labels uint16 raw ids in [x][y][z] C order; .bin/.invalid/.occluded bit-packed
MSB first (``np.packbits`` default). Every reader validates sizes and raises ``DataFormatError`` naming the file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ssc_core.data.files import ensure_parent, read_file_bytes
from ssc_core.data.label_maps import SEMANTIC_KITTI, ClassSet
from ssc_core.errors import DataFormatError
from ssc_core.types import IGNORE_LABEL, Calib

VOXEL_DIMS: tuple[int, int, int] = (256, 256, 32)
PathLike = str | Path


# ----------------------------------------------------------------------------------------------- points
def read_points(path: PathLike) -> np.ndarray:
    """Read a velodyne scan: returns (N, 4) float32 x, y, z, remission in the velodyne frame."""
    data = read_file_bytes(path)
    if len(data) % 16:
        raise DataFormatError(f"{path}: size {len(data)} bytes is not a multiple of 16 (4 float32 per point)")
    points = np.frombuffer(data, dtype="<f4").reshape(-1, 4).copy()
    finite = np.isfinite(points).all(axis=1)
    if not finite.all():
        raise DataFormatError(f"{path}: {int((~finite).sum())} of {len(points)} points hold NaN/inf values "
                              f"(first at point {int(np.argmin(finite))})")
    return points


def write_points(path: PathLike, points_velo: np.ndarray) -> None:
    """Write (N, 4) x, y, z, remission points as little-endian float32."""
    points_velo = np.asarray(points_velo)
    if points_velo.ndim != 2 or points_velo.shape[1] != 4:
        raise DataFormatError(f"{path}: points must be (N, 4), got {points_velo.shape}")
    points_velo.astype("<f4").tofile(ensure_parent(path))


def read_point_labels(path: PathLike, num_points: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read per-point labels: returns (semantic (N,) uint16 raw ids, instance (N,) uint16).
    ``num_points`` (the scan's point count) is checked when given."""
    data = read_file_bytes(path)
    if len(data) % 4:
        raise DataFormatError(f"{path}: size {len(data)} bytes is not a multiple of 4 (uint32 per point)")
    raw = np.frombuffer(data, dtype="<u4")
    if num_points is not None and raw.size != num_points:
        raise DataFormatError(f"{path}: {raw.size} labels for a scan of {num_points} points")
    return (raw & 0xFFFF).astype(np.uint16), (raw >> 16).astype(np.uint16)


def write_point_labels(path: PathLike, semantic: np.ndarray, instance: np.ndarray | None = None) -> None:
    """Write per-point labels as uint32 (instance << 16 | semantic)."""
    semantic = np.asarray(semantic).astype(np.uint32)
    instance = np.zeros_like(semantic) if instance is None else np.asarray(instance).astype(np.uint32)
    if semantic.shape != instance.shape or semantic.ndim != 1:
        raise DataFormatError(f"{path}: semantic {semantic.shape} and instance {instance.shape} must be equal (N,)")
    ((instance << 16) | (semantic & 0xFFFF)).astype("<u4").tofile(ensure_parent(path))


# ----------------------------------------------------------------------------------------------- voxels
def read_voxel_labels(path: PathLike, dims: tuple[int, int, int] = VOXEL_DIMS) -> np.ndarray:
    """Read a voxel ``.label`` file: returns (X, Y, Z) uint16 raw ids, [x][y][z] order."""
    data = read_file_bytes(path)
    expected = int(np.prod(dims)) * 2
    if len(data) != expected:
        raise DataFormatError(f"{path}: {len(data)} bytes, expected {expected} (uint16 x {dims})")
    return np.frombuffer(data, dtype="<u2").reshape(dims).copy()


def write_voxel_labels(path: PathLike, labels: np.ndarray) -> None:
    """Write (X, Y, Z) raw ids as a flat little-endian uint16 ``.label`` file."""
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise DataFormatError(f"{path}: voxel labels must be 3-D, got shape {labels.shape}")
    if labels.min(initial=0) < 0 or labels.max(initial=0) > 0xFFFF:
        raise DataFormatError(f"{path}: voxel labels out of uint16 range")
    np.ascontiguousarray(labels).astype("<u2").tofile(ensure_parent(path))


def unpack_bits(packed: np.ndarray, dims: tuple[int, int, int] = VOXEL_DIMS) -> np.ndarray:
    """MSB-first bit unpacking (voxel 8k+0 is bit 0x80 of byte k): (ceil(n/8),) uint8 -> (X, Y, Z) uint8 0/1."""
    n = int(np.prod(dims))
    return np.unpackbits(np.asarray(packed, dtype=np.uint8))[:n].reshape(dims)


def pack_bits(mask: np.ndarray) -> np.ndarray:
    """MSB-first bit packing of a 0/1 array in C order: (X, Y, Z) -> (ceil(n/8),) uint8."""
    return np.packbits(np.asarray(mask).astype(bool).ravel())


def read_packed_bits(path: PathLike, dims: tuple[int, int, int] = VOXEL_DIMS) -> np.ndarray:
    """Read a bit-packed voxel file (``.bin`` / ``.invalid`` / ``.occluded``): returns (X, Y, Z) uint8 0/1."""
    data = read_file_bytes(path)
    expected = (int(np.prod(dims)) + 7) // 8
    if len(data) != expected:
        raise DataFormatError(f"{path}: {len(data)} bytes, expected {expected} (packed bits of {dims})")
    return unpack_bits(np.frombuffer(data, dtype=np.uint8), dims)


def write_packed_bits(path: PathLike, mask: np.ndarray) -> None:
    """Write a (X, Y, Z) 0/1 array as an MSB-first bit-packed file."""
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise DataFormatError(f"{path}: voxel mask must be 3-D, got shape {mask.shape}")
    pack_bits(mask).tofile(ensure_parent(path))


def remap_voxel_labels(
    raw: np.ndarray, class_set: ClassSet = SEMANTIC_KITTI, invalid: np.ndarray | None = None,
    source: PathLike | None = None,
) -> np.ndarray:
    """Raw ids -> train ids through the official LUT (1, 52, 99 and unknown ids -> 255; 0 -> 0); voxels with
    ``invalid`` set become 255. Returns uint8 of raw's shape. Raises DataFormatError for ids beyond the LUT
    (naming ``source``, the file the ids came from, when given)."""
    lut = class_set.remap_lut()
    raw = np.asarray(raw)  # indexes the LUT as it is (uint16 from the files): no int64 copy of 2M voxels
    if raw.size and (raw.max() >= lut.size or raw.min() < 0):
        where = f"{source}: " if source is not None else ""
        raise DataFormatError(f"{where}label id {int(raw.max())} is outside the {class_set.name} label map "
                              f"(< {lut.size})")
    out = lut[raw].astype(np.uint8)
    if invalid is not None:
        out[np.asarray(invalid).astype(bool)] = IGNORE_LABEL
    return out


# ------------------------------------------------------------------------------------ calib, poses, times
def parse_calib_text(text: str, source: str = "calib.txt") -> dict[str, np.ndarray]:
    """Parse KITTI ``KEY: v1 v2 ...`` lines into {key: (3, 4) float64} (12-value entries) or flat arrays."""
    entries: dict[str, np.ndarray] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if ":" not in line:
            raise DataFormatError(f"{source}:{lineno}: expected 'KEY: values', got {line[:60]!r}")
        key, values = line.split(":", 1)
        try:
            arr = np.array([float(v) for v in values.split()], dtype=np.float64)
        except ValueError as exc:
            raise DataFormatError(f"{source}:{lineno}: non-numeric value in {key.strip()}: {exc}") from None
        if not np.all(np.isfinite(arr)):
            raise DataFormatError(f"{source}:{lineno}: non-finite value (nan/inf) in {key.strip()}")
        entries[key.strip()] = arr.reshape(3, 4) if arr.size == 12 else arr
    return entries


def read_calib(path: PathLike) -> Calib:
    """Read a KITTI odometry ``calib.txt`` (P0..P3 and Tr, 3x4 each). P2 and Tr are required."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found")
    entries = parse_calib_text(path.read_text(), str(path))
    for key in ("P2", "Tr"):
        if key not in entries:
            raise DataFormatError(f"{path}: no '{key}:' entry (found {sorted(entries)})")
        if entries[key].shape != (3, 4):
            raise DataFormatError(f"{path}: '{key}' has {entries[key].size} values, expected 12")
    if np.linalg.matrix_rank(entries["Tr"][:, :3]) < 3:  # poses and projections invert it
        raise DataFormatError(f"{path}: 'Tr' is singular (its 3x3 part cannot be inverted), not a rigid transform")
    return Calib(
        P2=entries["P2"], T_cam0_velo=entries["Tr"], P3=entries.get("P3"), P0=entries.get("P0"),
        P1=entries.get("P1"),
    )


def write_calib(path: PathLike, calib: Calib) -> None:
    """Write a KITTI odometry ``calib.txt`` (P0..P3 and Tr; missing P0/P1/P3 fall back to P2)."""
    def fmt(m: np.ndarray) -> str:
        return " ".join(f"{v:.12e}" for v in np.asarray(m, dtype=np.float64)[:3, :4].ravel())

    p2 = calib.P2
    lines = [
        f"P0: {fmt(calib.P0 if calib.P0 is not None else p2)}",
        f"P1: {fmt(calib.P1 if calib.P1 is not None else p2)}",
        f"P2: {fmt(p2)}",
        f"P3: {fmt(calib.P3 if calib.P3 is not None else p2)}",
        f"Tr: {fmt(calib.T_cam0_velo)}",
    ]
    ensure_parent(path).write_text("\n".join(lines) + "\n")


def read_poses(path: PathLike) -> np.ndarray:
    """Read ``poses.txt``: returns (N, 4, 4) float64 camera-0 poses (T_cam0start_cam0)."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found")
    rows = []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            values = [float(v) for v in line.split()]
        except ValueError:
            raise DataFormatError(f"{path}:{lineno}: non-numeric pose values") from None
        if len(values) != 12:
            raise DataFormatError(f"{path}:{lineno}: {len(values)} values, expected 12 (3x4 row-major)")
        if not np.all(np.isfinite(values)):
            raise DataFormatError(f"{path}:{lineno}: non-finite pose value (nan/inf)")
        rows.append(values)
    poses = np.tile(np.eye(4), (len(rows), 1, 1))
    if rows:
        poses[:, :3, :4] = np.asarray(rows).reshape(-1, 3, 4)
    return poses


def write_poses(path: PathLike, poses_cam0: np.ndarray) -> None:
    """Write (N, 4, 4) camera-0 poses as ``poses.txt`` (top 3 rows, row-major, one line per scan)."""
    poses_cam0 = np.asarray(poses_cam0, dtype=np.float64)
    lines = [" ".join(f"{v:.12e}" for v in p[:3, :4].ravel()) for p in poses_cam0]
    ensure_parent(path).write_text("\n".join(lines) + ("\n" if lines else ""))


def poses_cam0_to_velo(poses_cam0: np.ndarray, T_cam0_velo: np.ndarray) -> np.ndarray:
    """Camera-0 poses -> LiDAR poses: T_i = Tr^-1 @ P_i @ Tr. Takes (N, 4, 4) and (4, 4); returns (N, 4, 4),
    the pose of scan i's velodyne frame in the velodyne frame of scan 0."""
    tr = np.asarray(T_cam0_velo, dtype=np.float64)
    return np.linalg.inv(tr)[None] @ np.asarray(poses_cam0, dtype=np.float64) @ tr[None]


def poses_velo_to_cam0(poses_velo: np.ndarray, T_cam0_velo: np.ndarray) -> np.ndarray:
    """Inverse of ``poses_cam0_to_velo``: P_i = Tr @ T_i @ Tr^-1."""
    tr = np.asarray(T_cam0_velo, dtype=np.float64)
    return tr[None] @ np.asarray(poses_velo, dtype=np.float64) @ np.linalg.inv(tr)[None]


def read_times(path: PathLike) -> np.ndarray:
    """Read ``times.txt``: returns (N,) float64 seconds."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found")
    try:
        times = np.array([float(v) for v in path.read_text().split()], dtype=np.float64)
    except ValueError:
        raise DataFormatError(f"{path}: non-numeric time value") from None
    if not np.all(np.isfinite(times)):
        line = int(np.argmin(np.isfinite(times))) + 1
        raise DataFormatError(f"{path}: non-finite time value (nan/inf) at line {line}")
    return times


def write_times(path: PathLike, times_s: np.ndarray) -> None:
    """Write (N,) seconds as ``times.txt`` (``%e`` per line, as KITTI)."""
    lines = [f"{t:e}" for t in np.asarray(times_s, dtype=np.float64)]
    ensure_parent(path).write_text("\n".join(lines) + ("\n" if lines else ""))


# ----------------------------------------------------------------------------------------------- images
def read_image(path: PathLike) -> np.ndarray:
    """Read a PNG/JPEG image: returns (H, W, 3) uint8 RGB."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found")
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB")).copy()
    except (UnidentifiedImageError, OSError) as exc:
        raise DataFormatError(f"{path}: cannot decode image ({exc})") from None


def write_image(path: PathLike, image_rgb: np.ndarray) -> None:
    """Write an (H, W, 3) uint8 RGB image (format from the suffix, PNG for KITTI)."""
    from PIL import Image

    image_rgb = np.asarray(image_rgb)
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
        raise DataFormatError(f"{path}: image must be (H, W, 3) uint8, got {image_rgb.shape} {image_rgb.dtype}")
    Image.fromarray(image_rgb).save(ensure_parent(path))


# ----------------------------------------------------------------------------------------------- layout
@dataclass(frozen=True)
class SequencePaths:
    """Paths of one SemanticKITTI sequence folder ``<root>/sequences/<sequence>``."""

    root: Path
    sequence: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))
        object.__setattr__(self, "sequence", str(self.sequence))

    @classmethod
    def of(cls, root: PathLike, sequence: str | int) -> SequencePaths:
        """Paths for ``root`` (the folder holding ``sequences/``) and a sequence id (8 -> '08')."""
        seq = f"{int(sequence):02d}" if str(sequence).isdigit() else str(sequence)
        return cls(Path(root), seq)

    @classmethod
    def from_sequence_dir(cls, sequence_dir: PathLike) -> SequencePaths:
        """Paths from the sequence folder itself (``.../sequences/08``)."""
        sequence_dir = Path(sequence_dir)
        return cls(sequence_dir.parent.parent, sequence_dir.name)

    @classmethod
    def existing(cls, sequence_dir: PathLike) -> SequencePaths:
        """``from_sequence_dir`` for a folder that must exist: DataFormatError when it is missing, not a folder,
        or not inside a ``sequences/`` folder (the layout the paths are built from)."""
        sequence_dir = Path(sequence_dir)
        if not sequence_dir.is_dir():
            raise DataFormatError(f"{sequence_dir}: sequence folder not found")
        absolute = Path(os.path.abspath(sequence_dir))  # normalises '.' and '..' without resolving links
        if absolute.parent.name != "sequences":
            raise DataFormatError(f"{sequence_dir}: not a sequence folder (expected <root>/sequences/XX)")
        return cls.from_sequence_dir(sequence_dir if sequence_dir.parent.name == "sequences" else absolute)

    @property
    def dir(self) -> Path:
        """The sequence folder."""
        return self.root / "sequences" / self.sequence

    def velodyne(self, frame: int) -> Path:
        """Path of a scan's points."""
        return self.dir / "velodyne" / f"{frame:06d}.bin"

    def point_labels(self, frame: int) -> Path:
        """Path of a scan's per-point labels."""
        return self.dir / "labels" / f"{frame:06d}.label"

    def image(self, frame: int, camera: int = 2) -> Path:
        """Path of a camera image (2 = left colour, 3 = right colour)."""
        return self.dir / f"image_{camera}" / f"{frame:06d}.png"

    def voxel(self, frame: int, kind: str) -> Path:
        """Path of a voxel file; kind in {'bin', 'label', 'invalid', 'occluded'}."""
        if kind not in ("bin", "label", "invalid", "occluded"):
            raise ValueError(f"unknown voxel file kind {kind!r}")
        return self.dir / "voxels" / f"{frame:06d}.{kind}"

    def prediction(self, frame: int) -> Path:
        """Path of a prediction in the official submission layout."""
        return self.dir / "predictions" / f"{frame:06d}.label"

    @property
    def calib(self) -> Path:
        """Path of calib.txt."""
        return self.dir / "calib.txt"

    @property
    def poses(self) -> Path:
        """Path of poses.txt."""
        return self.dir / "poses.txt"

    @property
    def times(self) -> Path:
        """Path of times.txt."""
        return self.dir / "times.txt"

    def scan_frames(self) -> list[int]:
        """Frame numbers of all scans present in velodyne/ (sorted)."""
        return sorted(int(p.stem) for p in (self.dir / "velodyne").glob("*.bin") if p.stem.isdigit())

    def labelled_frames(self) -> list[int]:
        """Frame numbers that have a voxel ``.label`` (the evaluated/trained frames), sorted."""
        return sorted(int(p.stem) for p in (self.dir / "voxels").glob("*.label") if p.stem.isdigit())

    def image_frames(self, camera: int = 2) -> list[int]:
        """Frame numbers with an image of the given camera, sorted."""
        return sorted(int(p.stem) for p in (self.dir / f"image_{camera}").glob("*.png") if p.stem.isdigit())


def read_velo_poses(paths: SequencePaths, calib: Calib | None = None, check_count: bool = True) -> np.ndarray:
    """LiDAR poses (N, 4, 4) of a sequence (from poses.txt and Tr). With ``check_count`` the pose count must
    equal the number of scans in velodyne/ (when there are any)."""
    calib = calib or read_calib(paths.calib)
    poses_cam0 = read_poses(paths.poses)
    if check_count:
        scans = paths.scan_frames()
        if scans and len(poses_cam0) != len(scans):
            raise DataFormatError(
                f"{paths.poses}: {len(poses_cam0)} poses for {len(scans)} scans in {paths.dir / 'velodyne'}"
            )
    return poses_cam0_to_velo(poses_cam0, calib.T_cam0_velo)
