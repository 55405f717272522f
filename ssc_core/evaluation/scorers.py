"""Batch scorers: the evaluation protocol a dataset is scored with during training, by name.

A scorer accumulates confusion matrices from predicted labels and the batch they came from, and says which
protocol it applies (``protocol``, printed with every table of its numbers):

- ``official`` (SemanticKITTI, SSCBench-KITTI-360): every voxel with target != 255 (``.invalid`` already 255);
- ``monoscene`` (NYUv2, RGB methods): every voxel with target != 255;
- ``sscnet`` (NYUv2, depth/TSDF methods: SSCNet, 3D-Sketch, CleanerS): SSC on label_weight > 0, SC (completion IoU,
  precision, recall) on occluded voxels only (label_weight > 0 and mapping == no pixel, i.e. H * W of the batch's
  ``mapping2d``, 307200 for NYU); needs ``label_weight`` and ``mapping`` in the batch.

``build_scorer(name, num_classes)`` makes one; ``scorer_for(dataset, num_classes)`` the one a dataset asks for
(its ``eval_protocol`` attribute, ``official`` when it has none).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ssc_core.data.nyu import NYU_NOT_VISIBLE
from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.evaluation.metrics import NYUMetrics, SSCMetrics

PROTOCOLS = {
    "official": "official: every voxel with GT != 255",
    "monoscene": "MonoScene: every voxel with GT != 255",
    "sscnet": "SSCNet: SC on occluded voxels, SSC on label_weight > 0",
}


def _numpy(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)


class TargetScorer:
    """Every voxel with target != 255 (protocols ``official`` and ``monoscene``); with ``mask`` ((X, Y, Z) bool,
    e.g. ``eval_range_mask``) only the voxels where it is True, ``mask_name`` saying which in ``protocol``."""

    def __init__(self, num_classes: int, protocol: str = "official", mask: np.ndarray | None = None,
                 mask_name: str = "") -> None:
        self.name = protocol
        self.protocol = PROTOCOLS[protocol] + (f", {mask_name}" if mask_name else "")
        self.mask = mask
        self.metrics = SSCMetrics(num_classes)

    def add_batch(self, pred: np.ndarray, batch: dict) -> None:
        """Add (B, X, Y, Z) predicted train ids against ``batch['target']``."""
        target = _numpy(batch["target"])
        for b in range(pred.shape[0]):
            self.metrics.add(pred[b], target[b], self.mask)

    def confusions(self) -> list[np.ndarray]:
        """The accumulated confusion matrices (to sum across processes)."""
        return [self.metrics.confusion]

    def set_confusions(self, confusions: list[np.ndarray]) -> None:
        """Replace the accumulated matrices (e.g. by their sum over processes)."""
        self.metrics.reset()
        self.metrics.add_confusion(confusions[0])

    def compute(self) -> dict:
        """Scores (``SSCMetrics.compute``) plus ``protocol``."""
        return {**self.metrics.compute(), "protocol": self.protocol}


class SSCNetScorer:
    """The SSCNet / CleanerS NYU protocol (``NYUMetrics``): needs ``label_weight`` and ``mapping`` in the batch."""

    name = "sscnet"
    protocol = PROTOCOLS["sscnet"]

    def __init__(self, num_classes: int) -> None:
        self.metrics = NYUMetrics(num_classes)

    def add_batch(self, pred: np.ndarray, batch: dict) -> None:
        """Add (B, X, Y, Z) predicted train ids against the batch's target, label_weight and mapping."""
        missing = [k for k in ("target", "label_weight", "mapping") if k not in batch]
        if missing:
            raise DataFormatError(f"the sscnet protocol needs {missing} in the batch (an NYU dataset provides them)")
        target, weight, mapping = (_numpy(batch[k]) for k in ("target", "label_weight", "mapping"))
        not_visible = int(np.prod(batch["mapping2d"].shape[-2:])) if "mapping2d" in batch else NYU_NOT_VISIBLE
        for b in range(pred.shape[0]):
            self.metrics.add(pred[b], target[b], weight[b], mapping[b], not_visible)

    def confusions(self) -> list[np.ndarray]:
        """The SSC and SC confusion matrices."""
        return [self.metrics.ssc.confusion, self.metrics.sc.confusion]

    def set_confusions(self, confusions: list[np.ndarray]) -> None:
        """Replace the accumulated matrices."""
        self.metrics.reset()
        self.metrics.ssc.add_confusion(confusions[0])
        self.metrics.sc.add_confusion(confusions[1])

    def compute(self) -> dict:
        """SC iou/precision/recall, SSC iou_per_class/miou, plus ``protocol``."""
        return {**self.metrics.compute(), "protocol": self.protocol}


def build_scorer(name: str, num_classes: int) -> TargetScorer | SSCNetScorer:
    """The scorer of protocol ``name`` (one of PROTOCOLS)."""
    if name not in PROTOCOLS:
        raise ConfigError(f"unknown evaluation protocol {name!r}; known: {sorted(PROTOCOLS)}")
    return SSCNetScorer(num_classes) if name == "sscnet" else TargetScorer(num_classes, name)


def scorer_for(dataset: Any, num_classes: int) -> TargetScorer | SSCNetScorer:
    """The scorer ``dataset`` asks for by its ``eval_protocol`` attribute (``official`` without one)."""
    return build_scorer(getattr(dataset, "eval_protocol", "official"), num_classes)
