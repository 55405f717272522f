"""SSC losses: values against hand-computed references, ignore handling, and perfect predictions."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ssc_core.data.label_maps import SGN_SEMANTIC_KITTI_CLASS_WEIGHTS
from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.losses import (
    binary_occupancy_loss,
    geo_scal_loss,
    lovasz_softmax_loss,
    resolve_class_weights,
    scene_target,
    sem_scal_loss,
    weighted_ce_loss,
)


def _perfect_logits(target: torch.Tensor, num_classes: int, margin: float = 30.0) -> torch.Tensor:
    safe = target.clone()
    safe[safe == 255] = 0
    return F.one_hot(safe, num_classes).movedim(-1, 1).float() * margin


def test_weighted_ce_is_plain_mean_of_weighted_terms_over_valid_voxels():
    logits = torch.tensor([[[2.0, 0.0, -1.0]], [[0.0, 1.0, 0.5]]]).permute(1, 0, 2)  # (B=1, C=2, 3)
    target = torch.tensor([[0, 1, 255]])
    weights = torch.tensor([0.5, 2.0])
    p = torch.softmax(logits, dim=1)
    expected = (-0.5 * math.log(p[0, 0, 0]) - 2.0 * math.log(p[0, 1, 1])) / 2
    assert weighted_ce_loss(logits, target, weights).item() == pytest.approx(expected, rel=1e-6)


def test_normalized_weighted_ce_is_pytorchs_weighted_mean():
    logits = torch.randn(2, 4, 5, 3, generator=torch.Generator().manual_seed(2))
    target = torch.randint(0, 4, (2, 5, 3), generator=torch.Generator().manual_seed(3))
    target[0, 0] = 255
    weights = torch.tensor([0.5, 2.0, 1.0, 3.0])
    expected = F.cross_entropy(logits, target, weight=weights, ignore_index=255, reduction="mean")
    assert weighted_ce_loss(logits, target, weights, normalize=True).item() == pytest.approx(expected.item(), rel=1e-6)


def test_losses_ignore_voxels_labelled_255():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 5, 5, 2)
    target = torch.randint(0, 4, (2, 5, 5, 2))
    marked = target.clone()
    marked[:, 0] = 255
    changed = logits.clone()
    changed[:, :, 0] = 100 * torch.randn_like(changed[:, :, 0])
    for loss in (weighted_ce_loss, sem_scal_loss, geo_scal_loss, lovasz_softmax_loss, binary_occupancy_loss):
        a = loss(logits[:, :1] if loss is binary_occupancy_loss else logits, marked)
        b = loss(changed[:, :1] if loss is binary_occupancy_loss else changed, marked)
        assert a.item() == pytest.approx(b.item(), rel=1e-5), loss.__name__


def test_scal_losses_vanish_for_perfect_predictions_and_grow_for_wrong_ones():
    target = torch.randint(0, 5, (1, 6, 6, 3), generator=torch.Generator().manual_seed(1))
    perfect = _perfect_logits(target, 5)
    wrong = _perfect_logits((target + 1) % 5, 5)
    assert sem_scal_loss(perfect, target).item() < 1e-4
    assert geo_scal_loss(perfect, target).item() < 1e-4
    assert sem_scal_loss(wrong, target).item() > 1.0
    assert geo_scal_loss(wrong, target).item() > 0.1


def test_geo_scal_matches_its_precision_recall_specificity_definition():
    logits = torch.tensor([[[0.0, 1.0, -1.0, 2.0]], [[1.0, 0.0, 0.5, -2.0]]]).permute(1, 0, 2)  # (1, 2, 4)
    target = torch.tensor([[1, 0, 1, 0]])
    p_occ = 1 - torch.softmax(logits, dim=1)[0, 0]
    occ = (target[0] != 0).float()
    precision = (p_occ * occ).sum() / p_occ.sum()
    recall = (p_occ * occ).sum() / occ.sum()
    specificity = ((1 - p_occ) * (1 - occ)).sum() / (1 - occ).sum()
    expected = -(precision.log() + recall.log() + specificity.log())
    assert geo_scal_loss(logits, target).item() == pytest.approx(expected.item(), rel=1e-5)


def test_lovasz_softmax_of_hard_predictions_is_mean_jaccard_loss():
    target = torch.tensor([0, 0, 1, 1, 2, 2, 2])
    pred = torch.tensor([0, 1, 1, 1, 2, 0, 2])
    logits = F.one_hot(pred, 3).float() * 50
    ious = []
    for c in range(3):
        inter = ((pred == c) & (target == c)).sum().item()
        union = ((pred == c) | (target == c)).sum().item()
        ious.append(inter / union)
    expected = sum(1 - iou for iou in ious) / 3
    assert lovasz_softmax_loss(logits, target).item() == pytest.approx(expected, abs=1e-6)
    assert lovasz_softmax_loss(F.one_hot(target, 3).float() * 50, target).item() == pytest.approx(0.0, abs=1e-6)


def test_binary_occupancy_loss_is_bce_against_nonempty_target():
    logits = torch.tensor([[[[1.0, -2.0, 0.3]]]])  # (B=1, 1, 1, 3)
    target = torch.tensor([[[3, 0, 255]]])
    expected = F.binary_cross_entropy_with_logits(torch.tensor([1.0, -2.0]), torch.tensor([1.0, 0.0]))
    assert binary_occupancy_loss(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)


def test_all_ignored_target_gives_zero_losses_with_gradient_path():
    logits = torch.randn(1, 3, 2, 2, 2, requires_grad=True)
    target = torch.full((1, 2, 2, 2), 255)
    total = weighted_ce_loss(logits, target) + sem_scal_loss(logits, target) + geo_scal_loss(logits, target)
    total = total + lovasz_softmax_loss(logits, target) + binary_occupancy_loss(logits[:, :1], target)
    assert total.item() == 0.0
    total.backward()
    assert torch.isfinite(logits.grad).all()


def test_class_weights_resolve_by_name_and_reject_wrong_lengths():
    sgn = resolve_class_weights("sgn", "semantic_kitti", 20)
    assert sgn.tolist() == pytest.approx(list(SGN_SEMANTIC_KITTI_CLASS_WEIGHTS))
    freq = resolve_class_weights("frequency", "semantic_kitti", 20)
    torch.testing.assert_close(freq * 10, sgn, atol=1e-3, rtol=0)
    assert resolve_class_weights(None, "semantic_kitti", 3).tolist() == [1.0, 1.0, 1.0]
    assert len(resolve_class_weights("sgn", "kitti360", 19)) == 19
    with pytest.raises(ConfigError, match="3 values"):
        resolve_class_weights([1.0, 2.0, 3.0], "semantic_kitti", 20)
    with pytest.raises(ConfigError, match="class_weights"):
        resolve_class_weights("inverse-sqrt", "semantic_kitti", 20)


def test_scene_target_is_the_int64_target_and_names_the_model_when_it_is_missing_or_off_grid():
    logits = torch.zeros(2, 20, 4, 4, 2)
    target = torch.zeros(2, 4, 4, 2, dtype=torch.uint8)
    assert scene_target({"target": target}, logits, "M").dtype == torch.int64
    with pytest.raises(DataFormatError, match=r"M losses need batch\['target'\]"):
        scene_target({}, logits, "M")
    with pytest.raises(DataFormatError, match="M: target shape .* does not fit the logits"):
        scene_target({"target": torch.zeros(2, 4, 4, 4)}, logits, "M")
