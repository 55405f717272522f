"""SSCMetrics / NYUMetrics on hand-computed examples: the official formulas, epsilons and masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssc_core.data.kitti360 import KITTI360, kitti360_eval_target
from ssc_core.errors import DataFormatError
from ssc_core.evaluation.metrics import (
    FLOAT32_EPS,
    NYUMetrics,
    SSCMetrics,
    confusion_matrix,
    scores_from_confusion,
)


def _three_class_example() -> tuple[np.ndarray, np.ndarray]:
    # kept (pred, gt) pairs: (0,0) (1,1) (1,2) (2,2) (0,1); the 255 voxel is ignored
    pred = np.array([0, 1, 1, 2, 2, 0])
    target = np.array([0, 1, 2, 2, 255, 1])
    return pred, target


def test_confusion_rows_are_predictions_and_columns_ground_truth():
    conf = confusion_matrix(np.array([1, 1, 2]), np.array([0, 1, 1]), 3)
    expected = np.zeros((3, 3), dtype=np.int64)
    expected[1, 0] = 1
    expected[1, 1] = 1
    expected[2, 1] = 1
    np.testing.assert_array_equal(conf, expected)
    assert conf.dtype == np.int64


def test_hand_computed_scores_of_three_class_example():
    metrics = SSCMetrics(3)
    metrics.add(*_three_class_example())
    out = metrics.compute()
    # tp = [1, 1, 1], fp = [1, 1, 0], fn = [0, 1, 1]
    assert out["iou_per_class"] == pytest.approx([1 / 2, 1 / 3, 1 / 2], abs=1e-14)
    assert out["miou"] == pytest.approx((1 / 3 + 1 / 2) / 2, abs=1e-14)
    # completion: occupied TP = C11 + C12 + C22 = 3; sum(C) - C00 = 4; predicted occupied 3; GT occupied 4
    assert out["iou"] == pytest.approx(3 / 4, abs=1e-15)
    assert out["precision"] == pytest.approx(3 / (3 + float(FLOAT32_EPS)), abs=1e-15)
    assert out["recall"] == pytest.approx(3 / (4 + float(FLOAT32_EPS)), abs=1e-15)
    assert out["precision"] < 1.0  # the float32 epsilon is in the denominator


def test_iou_epsilon_is_the_official_1e_minus_15():
    out = scores_from_confusion(np.array([[5, 0], [0, 7]]))
    assert out["iou_per_class"][1] == 7 / (7 + 1e-15)
    assert out["iou_per_class"][1] < 1.0


def test_zero_union_classes_score_zero_and_still_count_in_the_mean():
    metrics = SSCMetrics(4)  # class 3 never appears in prediction or ground truth
    metrics.add(np.array([1, 2, 0]), np.array([1, 2, 0]))
    out = metrics.compute()
    assert out["iou_per_class"][3] == 0.0
    assert out["miou"] == pytest.approx(2 / 3, abs=1e-14)  # (1 + 1 + 0) / 3, class 0 excluded


def test_mask_false_voxels_are_not_counted():
    metrics = SSCMetrics(2)
    metrics.add(np.array([1, 1, 0, 1]), np.array([1, 0, 0, 1]), mask=np.array([True, False, True, True]))
    np.testing.assert_array_equal(metrics.confusion, [[1, 0], [0, 2]])


def test_frames_are_pooled_in_one_confusion_not_averaged():
    metrics = SSCMetrics(2)
    metrics.add(np.array([1, 0]), np.array([1, 1]))  # frame IoU(class 1) = 1/2
    metrics.add(np.array([1, 1, 1, 1]), np.array([1, 1, 1, 1]))  # frame IoU(class 1) = 1
    # pooled: tp = 5, fn = 1 -> 5/6 (a per-frame mean would be 3/4)
    assert metrics.compute()["iou_per_class"][1] == pytest.approx(5 / 6, abs=1e-14)


def test_completion_iou_is_zero_without_any_occupied_voxel():
    metrics = SSCMetrics(3)
    metrics.add(np.zeros(5, dtype=np.int64), np.zeros(5, dtype=np.int64))
    assert metrics.compute()["iou"] == 0.0


def test_prediction_out_of_range_raises_only_at_evaluated_voxels():
    metrics = SSCMetrics(3)
    metrics.add(np.array([7, 1]), np.array([255, 1]))  # the bad id sits on an ignored voxel
    with pytest.raises(DataFormatError, match="prediction id 7"):
        metrics.add(np.array([7, 1]), np.array([0, 1]))


def test_shape_mismatch_raises():
    with pytest.raises(DataFormatError, match="shape"):
        SSCMetrics(3).add(np.zeros((2, 2)), np.zeros(4))


def test_torch_tensors_are_accepted():
    metrics = SSCMetrics(3)
    pred, target = _three_class_example()
    metrics.add(torch.from_numpy(pred), torch.from_numpy(target))
    reference = SSCMetrics(3)
    reference.add(pred, target)
    np.testing.assert_array_equal(metrics.confusion, reference.confusion)


def test_reset_and_add_confusion():
    metrics = SSCMetrics(3)
    metrics.add(*_three_class_example())
    conf = metrics.confusion.copy()
    metrics.reset()
    assert metrics.confusion.sum() == 0
    metrics.add_confusion(conf)
    metrics.add_confusion(conf)
    np.testing.assert_array_equal(metrics.confusion, 2 * conf)


def test_kitti360_variant_keeps_labelled_invalid_voxels_and_scores_18_classes():
    raw = np.array([10, 0, 0, 31, 52, 99]).reshape(1, 2, 3)
    invalid = np.array([1, 1, 0, 0, 0, 0]).reshape(1, 2, 3)
    target = kitti360_eval_target(raw, invalid)
    # car stays car despite invalid; empty+invalid -> ignore; bicyclist -> ignore; 52/99 are scored in KITTI-360
    np.testing.assert_array_equal(target.ravel(), [1, 255, 0, 255, 17, 18])
    metrics = SSCMetrics(KITTI360.num_classes)
    metrics.add(target, target)
    out = metrics.compute()
    assert len(out["iou_per_class"]) == 19
    # classes 1, 17, 18 are perfect, the other 15 have empty unions: mean over 18 classes
    assert out["miou"] == pytest.approx(3 / 18, abs=1e-14)


def test_nyu_protocol_on_hand_computed_scene():
    nv = 480 * 640  # mapping value of a voxel that no pixel sees
    target = np.array([0, 1, 2, 1, 0, 255, 2, 0])
    pred = np.array([1, 1, 2, 2, 0, 1, 0, 1])
    weight = np.array([1, 1, 1, 1, 1, 1, 1, 0])
    mapping = np.array([nv, nv, 5, nv, 9, nv, nv, nv])
    metrics = NYUMetrics(3)
    metrics.add(pred, target, weight, mapping)
    out = metrics.compute()
    # SSC over weight > 0 & target != 255 -> voxels 0,1,2,3,4,6: (p,g) = (1,0) (1,1) (2,2) (2,1) (0,0) (0,2)
    # class 1: tp 1, fp 1, fn 1 -> 1/3; class 2: tp 1, fp 1, fn 1 -> 1/3
    assert out["iou_per_class"][1:] == pytest.approx([1 / 3, 1 / 3], abs=1e-14)
    assert out["miou"] == pytest.approx(1 / 3, abs=1e-14)
    # SC over occluded (mapping == 307200) & weight > 0 & target != 255 -> voxels 0, 1, 3, 6
    # binary (p>0, g>0): (1,0) (1,1) (1,1) (0,1): TP 2, FP 1, FN 1
    assert out["iou"] == pytest.approx(2 / 4, abs=1e-15)
    assert out["precision"] == pytest.approx(2 / 3, abs=1e-6)
    assert out["recall"] == pytest.approx(2 / 3, abs=1e-6)


def test_nyu_metrics_reject_mismatched_mapping():
    with pytest.raises(DataFormatError, match="label_weight/mapping"):
        NYUMetrics().add(np.zeros(4), np.zeros(4), np.ones(3), np.zeros(4))
