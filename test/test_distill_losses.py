"""L2COcc's distillation terms: zero when student equals teacher, positive otherwise, the official reductions, and
no gradient into the teacher's tensors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ssc_core.errors import DataFormatError
from ssc_core.losses.distill import (
    aggregator_kl_loss,
    feature_cosine_loss,
    masked_cosine_loss,
    prediction_kl_loss,
    relation_loss,
    self_similarity,
    tpv_plane_masks,
)

GEN = torch.Generator().manual_seed(0)


def _labels(shape: tuple[int, ...], classes: int = 5) -> torch.Tensor:
    target = torch.randint(0, classes, shape, generator=GEN)
    target[..., 0] = 255
    return target


def _planes(b: int, x: int, y: int, z: int) -> list[list[torch.Tensor]]:
    sizes = ((x, y), (y, z), (x, z))
    return [[torch.randn(b, 6, h // 2, w // 2, generator=GEN), torch.randn(b, 4, h, w, generator=GEN)]
            for h, w in sizes]


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")
def test_prediction_kl_matches_kldivloss_mean_per_sample_on_occupied_voxels():
    student, teacher = torch.randn(2, 4, 3, 3, 2, generator=GEN), torch.randn(2, 4, 3, 3, 2, generator=GEN)
    target = _labels((2, 3, 3, 2), 4)
    expected = 0.0
    for b in range(2):
        mask = (target[b] != 255) & (target[b] != 0)
        s = torch.log_softmax(student[b], 0).permute(1, 2, 3, 0)[mask]
        t = torch.softmax(teacher[b], 0).permute(1, 2, 3, 0)[mask]
        expected += nn.KLDivLoss(reduction="mean")(s.unsqueeze(0), t.unsqueeze(0)).item()
    assert prediction_kl_loss(student, teacher, target).item() == pytest.approx(expected / 2, rel=1e-5)


def test_prediction_kl_with_empty_voxels_included_counts_them():
    student, teacher = torch.randn(1, 3, 4, 4, 2, generator=GEN), torch.randn(1, 3, 4, 4, 2, generator=GEN)
    target = torch.zeros(1, 4, 4, 2, dtype=torch.long)
    target[0, 0, 0, 0] = 1
    only_occupied = prediction_kl_loss(student, teacher, target)
    everything = prediction_kl_loss(student, teacher, target, include_empty=True)
    assert only_occupied.item() != pytest.approx(everything.item())


def test_every_term_is_zero_for_an_identical_student_and_positive_otherwise():
    b, x, y, z = 2, 8, 8, 4
    target = _labels((b, x, y, z))
    logits = torch.randn(b, 5, x, y, z, generator=GEN)
    weights = torch.randn(b, 4, x, y, z, generator=GEN)
    planes = _planes(b, x, y, z)
    volumes = [torch.randn(b, 6, x, y, z, generator=GEN) for _ in range(2)]
    other_planes = _planes(b, x, y, z)
    other_volumes = [torch.randn(b, 6, x, y, z, generator=GEN) for _ in range(2)]
    necks = [p[1] for p in planes]

    assert prediction_kl_loss(logits, logits.clone(), target).item() == 0.0
    assert aggregator_kl_loss(weights, weights.clone(), target).item() == 0.0
    assert relation_loss(necks, [n.clone() for n in necks]).item() == 0.0
    assert feature_cosine_loss(planes, planes, volumes, volumes, target).item() == pytest.approx(0.0, abs=1e-6)

    assert prediction_kl_loss(logits, torch.randn_like(logits), target).item() > 1e-3
    assert aggregator_kl_loss(weights, torch.randn_like(weights), target).item() > 1e-3
    assert relation_loss(necks, [p[1] for p in other_planes]).item() > 1e-3
    assert feature_cosine_loss(planes, other_planes, volumes, other_volumes, target).item() > 1e-2


def test_feature_cosine_is_the_mean_of_its_seventeen_terms():
    b, x, y, z = 1, 8, 8, 4
    target = _labels((b, x, y, z))
    sizes = ((x, y), (y, z), (x, z))
    planes = [[torch.randn(b, 8 * 2**i, max(h >> (i + 1), 1), max(w >> (i + 1), 1), generator=GEN) for i in range(3)]
              + [torch.randn(b, 4, h >> i, w >> i, generator=GEN) for i in (1, 2)] for h, w in sizes]  # 3 + 2
    teacher = [[torch.randn_like(f) for f in p] for p in planes]
    volumes = [torch.randn(b, 6, x, y, z, generator=GEN) for _ in range(2)]
    teacher_volumes = [torch.randn_like(v) for v in volumes]
    masks = tpv_plane_masks(target)
    terms = []
    for plane_s, plane_t, mask in zip(planes, teacher, masks):
        for s, t in zip(plane_s, plane_t):
            size = tuple(mask.shape[1:])
            s = torch.nn.functional.interpolate(s, size=size, mode="bilinear", align_corners=False)
            t = torch.nn.functional.interpolate(t, size=size, mode="bilinear", align_corners=False)
            terms.append(masked_cosine_loss(s, t, mask))
    occupied = (target != 0) & (target != 255)
    terms += [masked_cosine_loss(s, t, occupied) for s, t in zip(volumes, teacher_volumes)]
    assert len(terms) == 17
    got = feature_cosine_loss(planes, teacher, volumes, teacher_volumes, target)
    assert got.item() == pytest.approx(torch.stack(terms).mean().item(), rel=1e-6)


def test_plane_masks_mark_cells_with_an_occupied_voxel_along_the_collapsed_axis():
    target = torch.zeros(1, 4, 3, 2, dtype=torch.long)
    target[0, 1, 2, 1] = 7
    target[0, 3, 0, 0] = 255  # ignore counts as empty
    xy, yz, zx = tpv_plane_masks(target)
    assert xy.shape == (1, 4, 3) and yz.shape == (1, 3, 2) and zx.shape == (1, 4, 2)
    assert torch.nonzero(xy).tolist() == [[0, 1, 2]]
    assert torch.nonzero(yz).tolist() == [[0, 2, 1]]
    assert torch.nonzero(zx).tolist() == [[0, 1, 1]]


def test_cosine_loss_reads_only_masked_locations_and_is_zero_on_an_empty_mask():
    s, t = torch.randn(1, 3, 4, 4, generator=GEN), torch.randn(1, 3, 4, 4, generator=GEN)
    mask = torch.zeros(1, 4, 4, dtype=torch.bool)
    assert masked_cosine_loss(s, t, mask).item() == 0.0
    mask[0, 1, 1] = True
    t2 = t.clone()
    t2[0, :, 2, 2] = 100.0
    assert masked_cosine_loss(s, t, mask).item() == masked_cosine_loss(s, t2, mask).item()
    expected = 1 - torch.nn.functional.cosine_similarity(s[0, :, 1, 1], t[0, :, 1, 1], dim=0)
    assert masked_cosine_loss(s, t, mask).item() == pytest.approx(expected.item(), rel=1e-6)


def test_self_similarity_is_the_cosine_of_every_pair_of_locations():
    feat = torch.randn(1, 5, 2, 3, generator=GEN)
    sim = self_similarity(feat)
    flat = feat[0].flatten(1)
    assert sim.shape == (1, 6, 6)
    assert sim[0, 1, 4].item() == pytest.approx(
        torch.nn.functional.cosine_similarity(flat[:, 1], flat[:, 4], dim=0).item(), rel=1e-5)


def test_teacher_tensors_get_no_gradient_from_any_term():
    b, x, y, z = 1, 4, 4, 2
    target = _labels((b, x, y, z))
    s_logits = torch.randn(b, 5, x, y, z, requires_grad=True)
    t_logits = torch.randn(b, 5, x, y, z, requires_grad=True)
    s_planes = [[f.requires_grad_() for f in p] for p in _planes(b, x, y, z)]
    t_planes = [[f.requires_grad_() for f in p] for p in _planes(b, x, y, z)]
    total = (prediction_kl_loss(s_logits, t_logits, target) + aggregator_kl_loss(s_logits, t_logits, target)
             + relation_loss([p[1] for p in s_planes], [p[1] for p in t_planes])
             + feature_cosine_loss(s_planes, t_planes, [s_logits], [t_logits], target))
    total.backward()
    assert s_logits.grad is not None and s_logits.grad.abs().sum() > 0
    assert t_logits.grad is None
    assert all(f.grad is None for p in t_planes for f in p)


def test_mismatched_shapes_are_named():
    with pytest.raises(DataFormatError, match="differ"):
        prediction_kl_loss(torch.zeros(1, 3, 2, 2, 2), torch.zeros(1, 4, 2, 2, 2), torch.zeros(1, 2, 2, 2).long())
    with pytest.raises(DataFormatError, match="three planes"):
        feature_cosine_loss([[]], [[]], [], [], torch.zeros(1, 2, 2, 2).long())
