"""NYUv2 semantic scene completion: both file flavours, the 12-class set and the 60 x 36 x 60 grid.

MonoScene flavour (SSCNet "depthbin" release)::

    <root>/NYUtrain|NYUtest/<name>.bin        voxel origin (3 float32), camera pose camera->world (16 float32),
                                              then uint32 run-length pairs (value, count) over 240 x 144 x 240
    <root>/NYUtrain|NYUtest/<name>_color.jpg  RGB, 640 x 480

RLE values are the 37 NYU classes (255 = unknown); they map to the 12 SSC classes with ``NYU_SEG_CLASS_MAP`` and
the target is the 240 x 144 x 240 grid downsampled x4 to 60 x 36 x 60 (0.08 m) by the SSC rule.

3D-Sketch / CleanerS flavour (all arrays flat, 129,600 = 60 * 36 * 60 in C order)::

    <root>/Label/<id>.npz     arr_0: labels 0..11, 255 = ignore
    <root>/TSDF/<id>.npz      arr_0: TSDF, arr_1: label_weight (evaluation/training mask)
    <root>/Mapping/<id>.npz   arr_0: voxel -> pixel index row * 640 + col; 307200 = no pixel (not visible)
    <root>/<split>/RGB/NYU<id>_rgb.png, <root>/<split>/depth/NYU<id>_0000.png (uint16, metres * 8000)

``<id>`` is the 4-digit number of ``NYU0001``. Importing this module registers the 'nyu' ClassSet.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ssc_core.data.downsample import downsample_labels
from ssc_core.data.files import ensure_parent
from ssc_core.data.label_maps import ClassSet, register_class_set
from ssc_core.errors import DataFormatError
from ssc_core.types import IGNORE_LABEL

PathLike = str | Path

NYU_DIMS: tuple[int, int, int] = (60, 36, 60)
NYU_FULL_DIMS: tuple[int, int, int] = (240, 144, 240)
NYU_NUM_VOXELS = 60 * 36 * 60
NYU_IMAGE_HW: tuple[int, int] = (480, 640)
NYU_NOT_VISIBLE = 480 * 640  # Mapping value of a voxel no pixel lands on
NYU_DEPTH_SCALE = 8000.0
NYU_CAM_K = np.array([[518.8579, 0.0, 320.0], [0.0, 518.8579, 240.0], [0.0, 0.0, 1.0]])

NYU_NAMES: tuple[str, ...] = (
    "empty", "ceiling", "floor", "wall", "window", "chair", "bed", "sofa", "table", "tvs", "furniture", "objects",
)

# The colours of the 3D-Sketch / CleanerS renderings (RGB).
NYU_COLORS_RGB = np.array(
    [
        [22, 191, 206], [214, 38, 40], [43, 160, 4], [158, 216, 229], [114, 158, 206], [204, 204, 91],
        [255, 186, 119], [147, 102, 188], [30, 119, 181], [188, 188, 33], [255, 127, 12], [196, 175, 214],
    ],
    dtype=np.uint8,
)

# 37 NYU classes -> 12 SSC classes (index = NYU class), as SSCNet / MonoScene preprocess.
NYU_SEG_CLASS_MAP: tuple[int, ...] = (
    0, 1, 2, 3, 4, 11, 5, 6, 7, 8, 8, 10, 10, 10, 11, 11, 9, 8, 11, 11, 11, 11, 11, 11, 11, 11, 11, 10, 10,
    11, 8, 10, 11, 9, 11, 11, 11,
)

# One 37-class NYU id per SSC class (the smallest id NYU_SEG_CLASS_MAP sends to it), for writing .bin files.
NYU_CLASS_TO_NYU37: tuple[int, ...] = tuple(NYU_SEG_CLASS_MAP.index(c) for c in range(12))

# MonoScene's fixed cross-entropy weights for NYU (not frequency based) and its 1:4 class voxel counts.
MONOSCENE_NYU_CLASS_WEIGHTS: tuple[float, ...] = (0.05, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)
NYU_CLASS_FREQ_1_4: tuple[float, ...] = (
    43744234, 80205, 1070052, 905632, 116952, 180994, 436852, 279714, 254611, 28247, 1805949, 850724,
)

# frequencies stay None: the field weights NYU classes with MONOSCENE_NYU_CLASS_WEIGHTS, not 1 / ln(f).
NYU = ClassSet(name="nyu", names=NYU_NAMES, colors_rgb=NYU_COLORS_RGB)
register_class_set(NYU)


# ------------------------------------------------------------------------------------ MonoScene flavour
def decode_rle(rle: np.ndarray, dims: tuple[int, int, int] = NYU_FULL_DIMS, source: str = "rle") -> np.ndarray:
    """Expand (value, count) uint32 pairs into (X, Y, Z) uint8 12-class labels (37 -> 12 map; 255 stays 255)."""
    rle = np.asarray(rle, dtype=np.int64)
    if rle.size % 2:
        raise DataFormatError(f"{source}: run-length data has an odd number ({rle.size}) of uint32 values")
    values, counts = rle[0::2], rle[1::2]
    total = int(counts.sum())
    if total != int(np.prod(dims)):
        raise DataFormatError(f"{source}: run lengths cover {total} voxels, expected {int(np.prod(dims))} ({dims})")
    bad = values[(values >= len(NYU_SEG_CLASS_MAP)) & (values != IGNORE_LABEL)]
    if bad.size:
        raise DataFormatError(f"{source}: label value {int(bad[0])} is not a NYU class (0..36 or 255)")
    lut = np.full(256, IGNORE_LABEL, dtype=np.uint8)
    lut[: len(NYU_SEG_CLASS_MAP)] = NYU_SEG_CLASS_MAP
    return np.repeat(lut[values], counts).reshape(dims)


def encode_rle(values: np.ndarray) -> np.ndarray:
    """Run-length encode a flat (C-order) label array into (value, count) pairs, (2R,) uint32."""
    flat = np.asarray(values).ravel().astype(np.int64)
    if flat.size == 0:
        return np.zeros(0, dtype=np.uint32)
    starts = np.flatnonzero(np.r_[True, flat[1:] != flat[:-1]])
    counts = np.diff(np.r_[starts, flat.size])
    return np.stack([flat[starts], counts], axis=1).ravel().astype(np.uint32)


def read_nyu_bin(
    path: PathLike, dims: tuple[int, int, int] = NYU_FULL_DIMS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read a MonoScene/SSCNet NYU ``.bin``: returns (voxel origin (3,) float32 world metres,
    T_world_cam (4, 4) float32 camera pose, labels (240, 144, 240) uint8 12-class ids with 255 = unknown)."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found")
    data = path.read_bytes()
    header = 19 * 4
    if len(data) < header or (len(data) - header) % 4:
        raise DataFormatError(f"{path}: {len(data)} bytes; expected 76 header bytes + uint32 run-length pairs")
    origin = np.frombuffer(data, dtype="<f4", count=3).copy()
    pose = np.frombuffer(data, dtype="<f4", count=16, offset=12).reshape(4, 4).copy()
    rle = np.frombuffer(data, dtype="<u4", offset=header)
    return origin, pose, decode_rle(rle, dims, str(path))


def write_nyu_bin(path: PathLike, vox_origin: np.ndarray, T_world_cam: np.ndarray, labels_nyu37: np.ndarray) -> None:
    """Write a MonoScene/SSCNet NYU ``.bin`` from an origin (3,), a camera pose (4, 4) and full-resolution
    labels in the 37-class NYU ids (255 = unknown), any shape, flattened in C order."""
    vox_origin = np.asarray(vox_origin, dtype="<f4").reshape(-1)
    T_world_cam = np.asarray(T_world_cam, dtype="<f4")
    if vox_origin.size != 3 or T_world_cam.shape != (4, 4):
        raise DataFormatError(
            f"{path}: need a (3,) origin and a (4, 4) pose, got {vox_origin.shape} and {T_world_cam.shape}"
        )
    rle = encode_rle(labels_nyu37).astype("<u4")
    ensure_parent(path).write_bytes(vox_origin.tobytes() + T_world_cam.tobytes() + rle.tobytes())


def nyu_target(labels_full: np.ndarray) -> np.ndarray:
    """The 60 x 36 x 60 (0.08 m) target from 240 x 144 x 240 labels, by the x4 SSC downsampling rule (uint8)."""
    return downsample_labels(labels_full, 4)


@dataclass(frozen=True)
class NYUMonoScenePaths:
    """Paths of the MonoScene-flavour NYU folder (``<root>/NYUtrain``, ``<root>/NYUtest``)."""

    root: Path

    def split_dir(self, split: str) -> Path:
        """Folder of a split ('train' or 'test')."""
        if split not in ("train", "test"):
            raise DataFormatError(f"NYU split must be 'train' or 'test', got {split!r}")
        return Path(self.root) / f"NYU{split}"

    def names(self, split: str) -> list[str]:
        """Scene names (e.g. 'NYU0001_0000') of a split, sorted."""
        return sorted(p.stem for p in self.split_dir(split).glob("*.bin"))

    def scene(self, split: str, name: str) -> Path:
        """Path of a scene's ``.bin``."""
        return self.split_dir(split) / f"{name}.bin"

    def color(self, split: str, name: str) -> Path:
        """Path of a scene's colour image."""
        return self.split_dir(split) / f"{name}_color.jpg"


# ----------------------------------------------------------------------------- 3D-Sketch/CleanerS flavour
def _load_npz_array(path: PathLike, key: str) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found")
    try:
        with np.load(path) as npz:
            if key not in npz.files:
                raise DataFormatError(f"{path}: no array {key!r} (found {npz.files})")
            return np.asarray(npz[key])
    except (OSError, ValueError) as exc:
        raise DataFormatError(f"{path}: not a readable .npz ({exc})") from None


def _as_grid(values: np.ndarray, path: PathLike, what: str) -> np.ndarray:
    if values.size != NYU_NUM_VOXELS:
        raise DataFormatError(f"{path}: {what} has {values.size} values, expected {NYU_NUM_VOXELS} (60x36x60)")
    return values.reshape(NYU_DIMS)


def read_nyu_label(path: PathLike) -> np.ndarray:
    """Read ``Label/<id>.npz``: returns (60, 36, 60) uint8 ids 0..11, 255 = ignore."""
    labels = _as_grid(_load_npz_array(path, "arr_0"), path, "arr_0 (labels)")
    bad = labels[(labels < 0) | ((labels >= len(NYU_NAMES)) & (labels != IGNORE_LABEL))]
    if bad.size:
        raise DataFormatError(f"{path}: label {int(bad[0])} is not a NYU SSC class (0..11 or 255)")
    return labels.astype(np.uint8)


def read_nyu_tsdf(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read ``TSDF/<id>.npz``: returns (TSDF (60, 36, 60) float32, label_weight (60, 36, 60) float32)."""
    tsdf = _as_grid(_load_npz_array(path, "arr_0"), path, "arr_0 (TSDF)").astype(np.float32)
    weight = _as_grid(_load_npz_array(path, "arr_1"), path, "arr_1 (label_weight)").astype(np.float32)
    return tsdf, weight


def read_nyu_mapping(path: PathLike) -> np.ndarray:
    """Read ``Mapping/<id>.npz``: returns (60, 36, 60) int64 pixel index row * 640 + col, 307200 = not visible."""
    mapping = _as_grid(_load_npz_array(path, "arr_0"), path, "arr_0 (mapping)").astype(np.int64)
    if mapping.size and (mapping.min() < 0 or mapping.max() > NYU_NOT_VISIBLE):
        raise DataFormatError(f"{path}: mapping values must lie in [0, {NYU_NOT_VISIBLE}]")
    return mapping


def save_npz(path: PathLike, *arrays: np.ndarray) -> None:
    """Write ``arrays`` as arr_0, arr_1, ... of a compressed .npz, byte for byte the same for the same arrays
    (``np.savez_compressed`` stamps the current time into the zip; this stamps 1980-01-01)."""
    import io
    import zipfile

    with zipfile.ZipFile(ensure_parent(path), "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for i, array in enumerate(arrays):
            buffer = io.BytesIO()
            np.lib.format.write_array(buffer, np.asanyarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"arr_{i}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, buffer.getvalue())


def write_nyu_label(path: PathLike, labels: np.ndarray) -> None:
    """Write (60, 36, 60) labels as ``Label/<id>.npz`` (flat arr_0)."""
    save_npz(path, np.asarray(labels).astype(np.uint8).ravel())


def write_nyu_tsdf(path: PathLike, tsdf: np.ndarray, label_weight: np.ndarray) -> None:
    """Write ``TSDF/<id>.npz`` with arr_0 = TSDF and arr_1 = label_weight (both flat float32)."""
    save_npz(path, np.asarray(tsdf, np.float32).ravel(), np.asarray(label_weight, np.float32).ravel())


def write_nyu_mapping(path: PathLike, mapping: np.ndarray) -> None:
    """Write ``Mapping/<id>.npz`` (flat int64 arr_0, 307200 = not visible)."""
    save_npz(path, np.asarray(mapping, np.int64).ravel())


def mapping_to_pixel_map(mapping: np.ndarray, image_hw: tuple[int, int] = NYU_IMAGE_HW) -> np.ndarray:
    """Invert a voxel -> pixel mapping: returns (H, W) int64 flat voxel index per pixel, -1 where none."""
    flat = np.asarray(mapping, dtype=np.int64).ravel()
    out = np.full(image_hw[0] * image_hw[1], -1, dtype=np.int64)
    visible = np.flatnonzero(flat != image_hw[0] * image_hw[1])
    out[flat[visible]] = visible
    return out.reshape(image_hw)


def encode_nyu_depth(depth_m: np.ndarray) -> np.ndarray:
    """(H, W) metres -> the uint16 values of a NYU depth PNG: round(metres * 8000), clipped to 0..65535 (8.19 m)."""
    return np.clip(np.round(np.asarray(depth_m, np.float64) * NYU_DEPTH_SCALE), 0, 65535).astype(np.uint16)


def decode_nyu_depth(values: np.ndarray) -> np.ndarray:
    """The uint16 values of a NYU depth PNG -> (H, W) float32 metres (value / 8000, 0 = no depth)."""
    return (np.asarray(values).astype(np.float32) / NYU_DEPTH_SCALE).astype(np.float32)


def read_nyu_depth(path: PathLike) -> np.ndarray:
    """Read a NYU depth PNG (uint16, metres * 8000): returns (H, W) float32 metres, 0 = no depth."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found")
    try:
        with Image.open(path) as img:
            raw = np.asarray(img)
    except (UnidentifiedImageError, OSError) as exc:
        raise DataFormatError(f"{path}: cannot decode depth image ({exc})") from None
    if raw.ndim != 2:
        raise DataFormatError(f"{path}: depth must be a single-channel image, got shape {raw.shape}")
    return decode_nyu_depth(raw)


def write_nyu_depth(path: PathLike, depth_m: np.ndarray) -> None:
    """Write (H, W) metres as a uint16 PNG of metres * 8000 (values beyond 8.19 m are clipped)."""
    from PIL import Image

    Image.fromarray(encode_nyu_depth(depth_m)).save(ensure_parent(path))


def nyu_id(name: str) -> str:
    """The 4-digit id of a NYU frame name ('NYU0001', 'NYU0001_0000', '0001' -> '0001')."""
    match = re.search(r"(\d{4})", name)
    if match is None:
        raise DataFormatError(f"cannot find a 4-digit NYU frame id in {name!r}")
    return match.group(1)


def find_nyu_root(path: PathLike) -> Path:
    """The 3D-Sketch / CleanerS NYU folder (holding ``Label/``): ``path`` itself or ``path/NYU`` (the layout
    ``ssc-make-synthetic --layout nyu`` writes, with ``NYUCAD/`` beside it). DataFormatError when neither."""
    path = Path(path)
    for cand in (path, path / "NYU"):
        if (cand / "Label").is_dir():
            return cand
    raise DataFormatError(f"{path}: no NYU SSC folder (expected {path}/Label/ or {path}/NYU/Label/)")


@dataclass(frozen=True)
class NYUTsdfPaths:
    """Paths of the 3D-Sketch / CleanerS NYU folder; ``cad_root`` holds NYUCAD/TSDF (sibling 'NYUCAD' default)."""

    root: Path
    cad_root: Path | None = None

    def label(self, frame_id: str) -> Path:
        """Path of ``Label/<id>.npz``."""
        return Path(self.root) / "Label" / f"{frame_id}.npz"

    def tsdf(self, frame_id: str, cad: bool = False) -> Path:
        """Path of ``TSDF/<id>.npz`` (``cad`` = the NYUCAD clean TSDF)."""
        base = (self.cad_root or Path(self.root).parent / "NYUCAD") if cad else Path(self.root)
        return base / "TSDF" / f"{frame_id}.npz"

    def mapping(self, frame_id: str) -> Path:
        """Path of ``Mapping/<id>.npz``."""
        return Path(self.root) / "Mapping" / f"{frame_id}.npz"

    def rgb(self, frame_id: str, split: str) -> Path:
        """Path of the RGB image: CleanerS ``<split>/RGB/NYU<id>_rgb.png`` or 3D-Sketch ``RGB/NYU<id>_colors.png``."""
        sketch = Path(self.root) / "RGB" / f"NYU{frame_id}_colors.png"
        return sketch if sketch.is_file() else Path(self.root) / split / "RGB" / f"NYU{frame_id}_rgb.png"

    def depth(self, frame_id: str, split: str) -> Path:
        """Path of the CleanerS depth PNG ``<split>/depth/NYU<id>_0000.png``."""
        return Path(self.root) / split / "depth" / f"NYU{frame_id}_0000.png"

    def frame_ids(self, split: str) -> list[str]:
        """4-digit ids of a split, from ``<split>.txt`` (3D-Sketch) or ``<split>/RGB/*.png`` (CleanerS), sorted.
        Raises DataFormatError when neither exists."""
        listing = Path(self.root) / f"{split}.txt"
        if listing.is_file():
            return sorted({nyu_id(line) for line in listing.read_text().split()})
        rgb_dir = Path(self.root) / split / "RGB"
        if rgb_dir.is_dir():
            return sorted({nyu_id(p.name) for p in rgb_dir.glob("*.png")})
        raise DataFormatError(f"{self.root}: no split list for {split!r} (looked for {listing} and {rgb_dir})")
