"""SSC metrics with the official semantic-kitti-api arithmetic, and the NYU (SSCNet / CleanerS) protocol.

One int64 confusion matrix is accumulated over everything added (rows = prediction, columns = ground truth,
as ``evaluate_completion.py``), with ``np.bincount``. From it:

- IoU_c = TP_c / (TP_c + FP_c + FN_c + 1e-15); classes with an empty union give 0 and still count;
- mIoU = plain mean of IoU_c over classes 1..C-1 (class 0 = empty is excluded);
- completion (class-agnostic occupied vs empty): IoU = sum(C[1:, 1:]) / (sum(C) - C[0, 0]) (no epsilon),
  precision = sum(C[1:, 1:]) / (sum(C[1:, :]) + eps32), recall = sum(C[1:, 1:]) / (sum(C[:, 1:]) + eps32)
  with eps32 = float32 machine epsilon.

The same class serves SemanticKITTI (20 classes, mIoU over 1..19) and SSCBench-KITTI-360 (19 classes, mIoU over
1..18): the variant is only the class count; KITTI-360's own mask rule lives in ``kitti360_eval_target``.
"""

from __future__ import annotations

import numpy as np

from ssc_core.data.nyu import NYU_NOT_VISIBLE
from ssc_core.errors import DataFormatError
from ssc_core.types import IGNORE_LABEL

IOU_EPS = 1e-15
FLOAT32_EPS = np.finfo(np.float32).eps


def confusion_matrix(pred: np.ndarray, target: np.ndarray, num_classes: int) -> np.ndarray:
    """(C, C) int64 confusion of equally sized integer arrays already restricted to evaluated voxels,
    rows = prediction, columns = ground truth. Raises DataFormatError for ids outside [0, C)."""
    pred = np.asarray(pred).ravel()
    target = np.asarray(target).ravel()
    if pred.shape != target.shape:
        raise DataFormatError(f"prediction has {pred.size} values but the target has {target.size}")
    if pred.size == 0:
        return np.zeros((num_classes, num_classes), dtype=np.int64)
    for name, arr in (("prediction", pred), ("target", target)):
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= num_classes:
            bad = lo if lo < 0 else hi
            raise DataFormatError(f"{name} id {bad} at an evaluated voxel is outside 0..{num_classes - 1}")
    codes = pred.astype(np.intp) * num_classes + target.astype(np.intp)
    return np.bincount(codes, minlength=num_classes * num_classes).reshape(num_classes, num_classes).astype(np.int64)


def scores_from_confusion(conf: np.ndarray) -> dict:
    """Official scores of a (C, C) confusion (rows = prediction): returns a dict with ``iou`` (completion),
    ``precision``, ``recall`` (floats), ``iou_per_class`` (list of C floats) and ``miou`` (mean over 1..C-1).
    Completion IoU is 0.0 when nothing is occupied in prediction or ground truth (the official script gives nan)."""
    conf = np.asarray(conf, dtype=np.int64)
    tp = np.diag(conf)
    fp = conf.sum(axis=1) - tp
    fn = conf.sum(axis=0) - tp
    iou_per_class = tp / (tp + fp + fn + IOU_EPS)
    occupied_tp = np.sum(conf[1:, 1:])
    completion_union = np.sum(conf) - conf[0, 0]
    return {
        "iou": float(occupied_tp / completion_union) if completion_union > 0 else 0.0,
        "precision": float(occupied_tp / (np.sum(conf[1:, :]) + FLOAT32_EPS)),
        "recall": float(occupied_tp / (np.sum(conf[:, 1:]) + FLOAT32_EPS)),
        "iou_per_class": [float(v) for v in iou_per_class],
        "miou": float(iou_per_class[1:].mean()),
    }


class SSCMetrics:
    """Accumulates one confusion matrix over many frames and scores it the official way.

    ``add(pred, target, mask)`` takes train ids of any equal shape (numpy or CPU tensors); voxels where
    target == ``ignore_index`` or ``mask`` is False are skipped. ``compute()`` returns ``iou``, ``precision``,
    ``recall``, ``iou_per_class`` (list), ``miou`` (see ``scores_from_confusion``).
    """

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_LABEL) -> None:
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2 (empty + at least one class), got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.reset()

    def reset(self) -> None:
        """Forget everything added."""
        self.confusion = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def add(self, pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Add one frame (or a batch): pred/target integer train ids of equal shape; mask optional bool of
        that shape (True = evaluate). Raises DataFormatError on shape mismatch or ids outside 0..C-1."""
        pred = np.asarray(pred)
        target = np.asarray(target)
        if pred.shape != target.shape:
            raise DataFormatError(f"prediction shape {pred.shape} != target shape {target.shape}")
        keep = target != self.ignore_index
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != target.shape:
                raise DataFormatError(f"mask shape {mask.shape} != target shape {target.shape}")
            keep &= mask.astype(bool)
        self.confusion += confusion_matrix(pred[keep], target[keep], self.num_classes)

    def add_confusion(self, conf: np.ndarray) -> None:
        """Add a (C, C) confusion matrix computed elsewhere (e.g. by another worker)."""
        conf = np.asarray(conf)
        if conf.shape != self.confusion.shape:
            raise DataFormatError(f"confusion shape {conf.shape} != {self.confusion.shape}")
        self.confusion += conf.astype(np.int64)

    def compute(self) -> dict:
        """Scores of everything added so far (see ``scores_from_confusion``)."""
        return scores_from_confusion(self.confusion)


class NYUMetrics:
    """The SSCNet / 3D-Sketch / CleanerS NYUv2 protocol.

    - SSC: confusion over voxels with label_weight > 0 and label != 255; mIoU over classes 1..11.
    - SC (completion): binary occupied (> 0) vs empty over OCCLUDED voxels only:
      mapping == 307200 (no pixel lands there) and label_weight > 0 and label != 255.

    ``compute()`` returns ``iou``/``precision``/``recall`` (SC, official arithmetic on the 2x2 confusion),
    ``iou_per_class`` and ``miou`` (SSC). For the MonoScene NYU protocol (every voxel with label != 255)
    use ``SSCMetrics(12)`` instead.
    """

    def __init__(self, num_classes: int = 12, ignore_index: int = IGNORE_LABEL) -> None:
        self.ssc = SSCMetrics(num_classes, ignore_index)
        self.sc = SSCMetrics(2, ignore_index)

    def reset(self) -> None:
        """Forget everything added."""
        self.ssc.reset()
        self.sc.reset()

    def add(self, pred: np.ndarray, target: np.ndarray, label_weight: np.ndarray, mapping: np.ndarray,
            not_visible: int = NYU_NOT_VISIBLE) -> None:
        """Add one scene: pred/target (60, 36, 60) (or flat) train ids, label_weight and mapping of that size;
        ``not_visible``: the mapping's "no pixel" value (H * W of the image: 307200 for NYU's 640 x 480)."""
        pred = np.asarray(pred).ravel()
        target = np.asarray(target).ravel()
        weighted = np.asarray(label_weight).ravel() > 0
        visible_to = np.asarray(mapping).ravel()
        if weighted.shape != target.shape or visible_to.shape != target.shape:
            raise DataFormatError(f"label_weight/mapping must have {target.size} values like the target")
        occluded = weighted & (visible_to == not_visible)
        self.ssc.add(pred, target, weighted)
        keep = occluded & (target != self.ssc.ignore_index)
        if keep.any() and (pred[keep].min() < 0 or pred[keep].max() >= self.ssc.num_classes):
            raise DataFormatError(f"prediction id outside 0..{self.ssc.num_classes - 1} at an evaluated voxel")
        self.sc.add((pred[keep] > 0).astype(np.int64), (target[keep] > 0).astype(np.int64))

    def compute(self) -> dict:
        """SC completion scores plus SSC per-class IoU and mIoU."""
        sc = self.sc.compute()
        ssc = self.ssc.compute()
        return {
            "iou": sc["iou"],
            "precision": sc["precision"],
            "recall": sc["recall"],
            "iou_per_class": ssc["iou_per_class"],
            "miou": ssc["miou"],
        }
