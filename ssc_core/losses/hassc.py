"""HASSC's loss terms (Wang et al., "Not All Voxels Are Equal: Hardness-Aware Semantic Scene Completion with
Self-Distillation", CVPR 2024), for any model; ``ssc_core.training.hassc`` combines them.

Labels are int64 train ids with 255 = ignore; logits are float (B, K, ...). Per-sample terms are averaged over
the batch: the release runs one sample per GPU and DDP averages over GPUs, which this reproduces for any batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ssc_core.types import IGNORE_LABEL

LGA_MAX = 6


def local_geometric_anisotropy(labels: torch.Tensor, ignore_index: int = IGNORE_LABEL) -> torch.Tensor:
    """Local geometric anisotropy: for each voxel, how many of its 6 face neighbours (+-x, +-y, +-z) carry a
    different label (0..6).

    labels: (..., X, Y, Z) integer. Neighbours outside the grid or labelled ``ignore_index`` do not count (their
    label is unknown); voxels labelled ``ignore_index`` get 0. Returns uint8 of the labels' shape."""
    labels = labels.long()
    known = labels != ignore_index
    count = torch.zeros(labels.shape, dtype=torch.uint8, device=labels.device)
    for dim in (-3, -2, -1):
        n = labels.shape[dim]
        for lo, hi in ((slice(0, n - 1), slice(1, n)), (slice(1, n), slice(0, n - 1))):
            here = [slice(None)] * labels.dim()
            there = [slice(None)] * labels.dim()
            here[dim], there[dim] = lo, hi
            differs = (labels[tuple(here)] != labels[tuple(there)]) & known[tuple(there)] & known[tuple(here)]
            count[tuple(here)] += differs.to(torch.uint8)
    return count


def lga_ce_loss(logits: torch.Tensor, target: torch.Tensor, lga: torch.Tensor, class_weights: torch.Tensor,
                ignore_index: int = IGNORE_LABEL) -> torch.Tensor:
    """mean over non-ignored voxels of w[y] * CE * LGA: the part HASSC adds to the main CE, whose per-voxel weight
    is (1 + LGA). With a model whose ``loss_ssc`` is the plain mean of w[y] * CE (SGN, VoxFormer),
    ``loss_ssc + lga_ce_loss`` is exactly HASSC's LGA-weighted L_ssc. logits (B, K, X, Y, Z); target and lga
    (B, X, Y, Z)."""
    valid = target != ignore_index
    if not bool(valid.any()):
        return logits.sum() * 0.0
    per_voxel = F.cross_entropy(logits.float(), target, weight=class_weights.to(logits.device, torch.float32),
                                ignore_index=ignore_index, reduction="none")
    return (per_voxel * lga.to(per_voxel.dtype))[valid].mean()


def hard_voxel_loss(logits: torch.Tensor, labels: torch.Tensor, lga: torch.Tensor, class_weights: torch.Tensor,
                    alpha: float = 0.2, beta: float = 1.0, ignore_index: int = IGNORE_LABEL) -> torch.Tensor:
    """HASSC's hard-voxel mining loss on sampled points, per sample
    sum_valid (alpha + beta * LGA_i) * CE_i / sum_valid w[y_i] (unweighted CE; the class weights only normalise),
    averaged over the batch (a sample without valid points contributes 0).

    logits (B, K, N); labels, lga (B, N) at the same points. The normaliser is indexed by the labels (the
    release indexes it by the LGA values in its teacher branch; this is the corrected form)."""
    valid = labels != ignore_index
    ce = F.cross_entropy(logits.float(), labels.clamp_max(logits.shape[1] - 1).masked_fill(~valid, 0),
                         reduction="none")
    hardness = alpha + beta * lga.to(ce.dtype)
    numer = (ce * hardness * valid).sum(1)
    weights = class_weights.to(logits.device, torch.float32)[labels.masked_fill(~valid, 0)]
    denom = (weights * valid).sum(1)
    return torch.where(denom > 0, numer / denom.clamp(min=1e-12), numer * 0.0).mean()


def distill_kl_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, target: torch.Tensor,
                    temperature: float = 1.0, ignore_index: int = IGNORE_LABEL) -> torch.Tensor:
    """Per-sample KL(teacher || student) of the class distributions, mean over the non-ignored voxels, times
    T^2. logits (B, K, X, Y, Z) (the teacher's detached), target (B, X, Y, Z). Returns (B,) float32 (0 for a
    sample without valid voxels)."""
    log_s = F.log_softmax(student_logits.float() / temperature, dim=1)
    log_t = F.log_softmax(teacher_logits.float().detach() / temperature, dim=1)
    kl = (log_t.exp() * (log_t - log_s)).sum(1) * temperature**2
    valid = (target != ignore_index).to(kl.dtype)
    flat_kl, flat_valid = kl.flatten(1), valid.flatten(1)
    return (flat_kl * flat_valid).sum(1) / flat_valid.sum(1).clamp(min=1)


def batch_miou(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
               ignore_index: int = IGNORE_LABEL) -> torch.Tensor:
    """Per-sample semantic mIoU as HASSC weights its distillation: over classes 1..K-1 on non-ignored voxels,
    IoU = tp / (tp + fp + fn + 1e-5), a class absent from both counting 0. pred, target (B, ...) int.
    Returns (B,) float32."""
    b = pred.shape[0]
    valid = (target != ignore_index).flatten(1)
    gt = target.flatten(1).long().clamp(0, num_classes - 1)
    pr = pred.flatten(1).long().clamp(0, num_classes - 1)
    index = (gt * num_classes + pr) + torch.arange(b, device=pred.device)[:, None] * num_classes**2
    confusion = torch.bincount(index[valid], minlength=b * num_classes**2).view(b, num_classes, num_classes)
    tp = confusion.diagonal(dim1=1, dim2=2).float()
    fp = confusion.sum(1).float() - tp
    fn = confusion.sum(2).float() - tp
    iou = tp / (tp + fp + fn + 1e-5)
    return iou[:, 1:].mean(1)
