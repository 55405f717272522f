"""Class colours for renders: train-id label arrays -> RGB, checked against a ClassSet."""

from __future__ import annotations

import numpy as np

from ssc_core.data.label_maps import ClassSet
from ssc_core.errors import DataFormatError
from ssc_core.types import IGNORE_LABEL

RGB = tuple[int, int, int]


def check_labels(labels: np.ndarray, class_set: ClassSet, name: str = "labels") -> np.ndarray:
    """Validate an (X, Y, Z) integer array of train ids (0..C-1 or 255); returns it as a numpy array.
    Raises DataFormatError naming ``name`` when the shape, dtype or ids are wrong."""
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise DataFormatError(f"{name}: expected an (X, Y, Z) voxel array, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataFormatError(f"{name}: expected integer train ids, got dtype {labels.dtype}")
    bad = (labels >= class_set.num_classes) & (labels != IGNORE_LABEL) | (labels < 0)
    if bad.any():
        raise DataFormatError(
            f"{name}: id {int(labels[bad].flat[0])} is not a {class_set.name} train id "
            f"(0..{class_set.num_classes - 1} or {IGNORE_LABEL})"
        )
    return labels


def occupied_mask(labels: np.ndarray) -> np.ndarray:
    """(X, Y, Z) bool: voxels holding a semantic class (neither empty 0 nor ignore 255)."""
    labels = np.asarray(labels)
    return (labels != 0) & (labels != IGNORE_LABEL)


def palette(class_set: ClassSet) -> np.ndarray:
    """(256, 3) uint8 lookup table train id -> RGB (ids beyond the class set, incl. 255, are grey)."""
    lut = np.full((256, 3), 128, dtype=np.uint8)
    lut[: class_set.num_classes] = np.asarray(class_set.colors_rgb, dtype=np.uint8)
    return lut


def classes_present(*label_arrays: np.ndarray) -> list[int]:
    """Sorted semantic train ids (not 0, not 255) that occur in any of the given arrays."""
    present: set[int] = set()
    for labels in label_arrays:
        ids = np.unique(np.asarray(labels))
        present.update(int(i) for i in ids if i not in (0, IGNORE_LABEL))
    return sorted(present)
