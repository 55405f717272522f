"""Class sets: names, colours, raw<->train id maps and the class weights used by the field.

A ``ClassSet`` describes one benchmark's classes. SemanticKITTI's is defined here from the official
``semantic-kitti.yaml`` facts; KITTI-360 and NYU define theirs in their own modules.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ssc_core.types import IGNORE_LABEL


@dataclass(frozen=True)
class ClassSet:
    """A benchmark's class set.

    names: train-id -> name (index 0 = empty); colors_rgb: (C, 3) uint8 RGB per train id;
    learning_map: raw id -> train id (may be empty when raw == train); frequencies: per-class voxel counts
    used for the class weights (None if unknown); learning_map_inverse: the benchmark's explicit
    train id -> raw id map (derived from learning_map when None).
    """

    name: str
    names: tuple[str, ...]
    colors_rgb: np.ndarray
    learning_map: dict[int, int] = field(default_factory=dict)
    frequencies: tuple[float, ...] | None = None
    learning_map_inverse: dict[int, int] | None = None

    @property
    def num_classes(self) -> int:
        """Number of train classes including empty (0)."""
        return len(self.names)

    def learning_map_inv(self) -> dict[int, int]:
        """train id -> raw id: the benchmark's explicit map, else the smallest raw id mapping to it."""
        if self.learning_map_inverse is not None:
            return dict(self.learning_map_inverse)
        inv: dict[int, int] = {}
        for raw in sorted(self.learning_map):
            inv.setdefault(self.learning_map[raw], raw)
        inv[0] = 0
        return inv

    def remap_lut(self) -> np.ndarray:
        """The evaluation LUT raw -> train id, int32 of length max(raw)+100: every raw id that maps to 0
        or is unknown becomes 255 (ignore), except raw 0 which stays 0 (official semantic-kitti-api rule)."""
        if not self.learning_map:
            lut = np.full(256, IGNORE_LABEL, dtype=np.int32)
            lut[: self.num_classes] = np.arange(self.num_classes)
            return lut
        lut = np.zeros(max(self.learning_map) + 100, dtype=np.int32)
        for raw, train in self.learning_map.items():
            lut[raw] = train
        lut[lut == 0] = IGNORE_LABEL
        lut[0] = 0
        return lut

    def inverse_lut(self) -> np.ndarray:
        """(C,) uint16 array train id -> raw id, for writing predictions in raw ids."""
        inv = self.learning_map_inv() if self.learning_map else {i: i for i in range(self.num_classes)}
        return np.array([inv[i] for i in range(self.num_classes)], dtype=np.uint16)

    def class_weights(self, scale: float = 1.0) -> np.ndarray:
        """(C,) float32 weights 1 / ln(f_c + 0.001) from the class frequencies, times ``scale``
        (SGN/VoxFormer hard-code scale=10 rounded to 3 decimals)."""
        if self.frequencies is None:
            return np.ones(self.num_classes, dtype=np.float32)
        f = np.asarray(self.frequencies, dtype=np.float64)
        return (scale / np.log(f + 0.001)).astype(np.float32)


def _bgr_to_rgb(color_map_bgr: dict[int, list[int]], inv: dict[int, int], n: int) -> np.ndarray:
    return np.array([color_map_bgr[inv[i]][::-1] for i in range(n)], dtype=np.uint8)


SEMANTIC_KITTI_RAW_NAMES: dict[int, str] = {
    0: "unlabeled", 1: "outlier", 10: "car", 11: "bicycle", 13: "bus", 15: "motorcycle", 16: "on-rails",
    18: "truck", 20: "other-vehicle", 30: "person", 31: "bicyclist", 32: "motorcyclist", 40: "road",
    44: "parking", 48: "sidewalk", 49: "other-ground", 50: "building", 51: "fence", 52: "other-structure",
    60: "lane-marking", 70: "vegetation", 71: "trunk", 72: "terrain", 80: "pole", 81: "traffic-sign",
    99: "other-object", 252: "moving-car", 253: "moving-bicyclist", 254: "moving-person",
    255: "moving-motorcyclist", 256: "moving-on-rails", 257: "moving-bus", 258: "moving-truck",
    259: "moving-other-vehicle",
}

SEMANTIC_KITTI_LEARNING_MAP: dict[int, int] = {
    0: 0, 1: 0, 10: 1, 11: 2, 13: 5, 15: 3, 16: 5, 18: 4, 20: 5, 30: 6, 31: 7, 32: 8, 40: 9, 44: 10,
    48: 11, 49: 12, 50: 13, 51: 14, 52: 0, 60: 9, 70: 15, 71: 16, 72: 17, 80: 18, 81: 19, 99: 0,
    252: 1, 253: 7, 254: 6, 255: 8, 256: 5, 257: 5, 258: 4, 259: 5,
}

# The official color_map of semantic-kitti.yaml, in BGR as the file stores it.
SEMANTIC_KITTI_COLOR_MAP_BGR: dict[int, list[int]] = {
    0: [0, 0, 0], 1: [0, 0, 255], 10: [245, 150, 100], 11: [245, 230, 100], 13: [250, 80, 100],
    15: [150, 60, 30], 16: [255, 0, 0], 18: [180, 30, 80], 20: [255, 0, 0], 30: [30, 30, 255],
    31: [200, 40, 255], 32: [90, 30, 150], 40: [255, 0, 255], 44: [255, 150, 255], 48: [75, 0, 75],
    49: [75, 0, 175], 50: [0, 200, 255], 51: [50, 120, 255], 52: [0, 150, 255], 60: [170, 255, 150],
    70: [0, 175, 0], 71: [0, 60, 135], 72: [80, 240, 150], 80: [150, 240, 255], 81: [0, 0, 255],
    99: [255, 255, 50], 252: [245, 150, 100], 253: [200, 40, 255], 254: [30, 30, 255],
    255: [90, 30, 150], 256: [255, 0, 0], 257: [250, 80, 100], 258: [180, 30, 80], 259: [255, 0, 0],
}

SEMANTIC_KITTI_NAMES: tuple[str, ...] = (
    "empty", "car", "bicycle", "motorcycle", "truck", "other-vehicle", "person", "bicyclist",
    "motorcyclist", "road", "parking", "sidewalk", "other-ground", "building", "fence", "vegetation",
    "trunk", "terrain", "pole", "traffic-sign",
)

# Voxel counts per train class over SemanticKITTI train (MonoScene / VoxFormer / HTCL semkitti.py).
SEMANTIC_KITTI_FREQUENCIES: tuple[float, ...] = (
    5.41773033e09, 1.57835390e07, 1.25136000e05, 1.18809000e05, 6.46799000e05, 8.21951000e05,
    2.62978000e05, 2.83696000e05, 2.04750000e05, 6.16887030e07, 4.50296100e06, 4.48836500e07,
    2.26992300e06, 5.68402180e07, 1.57196520e07, 1.58442623e08, 2.06162300e06, 3.69705220e07,
    1.15198800e06, 3.34146000e05,
)

# 10 * 1/ln(f + 0.001), rounded to 3 decimals, exactly as SGN and VoxFormer hard-code them.
SGN_SEMANTIC_KITTI_CLASS_WEIGHTS: tuple[float, ...] = (
    0.446, 0.603, 0.852, 0.856, 0.747, 0.734, 0.801, 0.796, 0.818, 0.557, 0.653, 0.568, 0.683, 0.560,
    0.603, 0.530, 0.688, 0.574, 0.716, 0.786,
)

SEMANTIC_KITTI_LEARNING_MAP_INV: dict[int, int] = {
    0: 0, 1: 10, 2: 11, 3: 15, 4: 18, 5: 20, 6: 30, 7: 31, 8: 32, 9: 40, 10: 44, 11: 48, 12: 49, 13: 50,
    14: 51, 15: 70, 16: 71, 17: 72, 18: 80, 19: 81,
}

SEMANTIC_KITTI = ClassSet(
    name="semantic_kitti",
    names=SEMANTIC_KITTI_NAMES,
    colors_rgb=_bgr_to_rgb(SEMANTIC_KITTI_COLOR_MAP_BGR, SEMANTIC_KITTI_LEARNING_MAP_INV, 20),
    learning_map=SEMANTIC_KITTI_LEARNING_MAP,
    frequencies=SEMANTIC_KITTI_FREQUENCIES,
    learning_map_inverse=SEMANTIC_KITTI_LEARNING_MAP_INV,
)

_REGISTRY: dict[str, ClassSet] = {"semantic_kitti": SEMANTIC_KITTI}


def register_class_set(class_set: ClassSet) -> None:
    """Make a ClassSet available to ``get_class_set`` by its name."""
    _REGISTRY[class_set.name] = class_set


def get_class_set(name: str) -> ClassSet:
    """Look up a class set by name ('semantic_kitti', 'kitti360', 'nyu')."""
    if name not in _REGISTRY:
        # The other datasets register themselves on import.
        import ssc_core.data.kitti360  # noqa: F401
        import ssc_core.data.nyu  # noqa: F401
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown class set {name!r}; known: {sorted(_REGISTRY)}") from None
