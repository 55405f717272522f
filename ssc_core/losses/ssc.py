"""SSC losses shared by the camera models (SGN, HTCL, HASSC, ...).

Logits are (B, C, *spatial) float (or (N, C)); targets are int64 train ids with the same spatial shape,
255 = ignore. Every function returns a scalar tensor; an all-ignore target gives 0 connected to the graph.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ssc_core.errors import DataFormatError
from ssc_core.types import IGNORE_LABEL


def scene_target(batch: dict, logits: torch.Tensor, model: str) -> torch.Tensor:
    """``batch['target']`` (B, X, Y, Z) as int64 for ``logits`` (B, C, X, Y, Z). DataFormatError naming ``model``
    when the batch has no target or its grid is not the logits' grid."""
    if "target" not in batch:
        raise DataFormatError(f"{model} losses need batch['target'] (keys: {sorted(batch)})")
    target = batch["target"].long()
    if tuple(target.shape[1:]) != tuple(logits.shape[2:]):
        raise DataFormatError(f"{model}: target shape {tuple(target.shape)} does not fit the logits "
                              f"{tuple(logits.shape)}")
    return target


def _zero(logits: torch.Tensor) -> torch.Tensor:
    return logits.sum() * 0.0


def weighted_ce_loss(logits: torch.Tensor, target: torch.Tensor, class_weights: torch.Tensor | None = None,
                     ignore_index: int = IGNORE_LABEL, normalize: bool = False) -> torch.Tensor:
    """Class-weighted cross entropy over non-ignored voxels: as SGN/VoxFormer compute it, the plain mean of
    w[y_i] * CE_i; with ``normalize``, PyTorch's weighted mean sum(w[y_i] * CE_i) / sum(w[y_i]) (HTCL / L2COcc's
    ``nn.CrossEntropyLoss(weight, reduction='mean')``)."""
    valid = target != ignore_index
    if not bool(valid.any()):
        return _zero(logits)
    weight = None if class_weights is None else class_weights.to(device=logits.device, dtype=torch.float32)
    per_voxel = F.cross_entropy(logits.float(), target, weight=weight, ignore_index=ignore_index, reduction="none")
    if normalize and weight is not None:
        return per_voxel[valid].sum() / weight[target[valid]].sum()
    return per_voxel[valid].mean()


def _bce_to_one(x: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy(x.clamp(0.0, 1.0), torch.ones_like(x))


def sem_scal_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_LABEL) -> torch.Tensor:
    """MonoScene's semantic scene-class affinity loss: for each class present in the (batch) target,
    BCE(precision, 1) + BCE(recall, 1) + BCE(specificity, 1) of its softmax probability; mean over those
    classes. Computed over all non-ignored voxels of the batch together."""
    probs = torch.softmax(logits.float(), dim=1)
    valid = target != ignore_index
    if not bool(valid.any()):
        return _zero(logits)
    probs = probs.movedim(1, -1)[valid]
    tgt = target[valid]
    total, count = _zero(logits), 0
    for c in range(probs.shape[1]):
        is_c = (tgt == c).float()
        n_pos = is_c.sum()
        if n_pos == 0:
            continue
        p = probs[:, c]
        hit = (p * is_c).sum()
        term = _bce_to_one(hit / n_pos)
        if p.sum() > 0:
            term = term + _bce_to_one(hit / p.sum())
        n_neg = (1 - is_c).sum()
        if n_neg > 0:
            term = term + _bce_to_one(((1 - p) * (1 - is_c)).sum() / n_neg)
        total, count = total + term, count + 1
    return total / max(count, 1)


def geo_scal_loss(logits: torch.Tensor, target: torch.Tensor, empty_index: int = 0,
                  ignore_index: int = IGNORE_LABEL) -> torch.Tensor:
    """MonoScene's geometry scene-class affinity loss on occupied (1 - p(empty)) vs empty:
    BCE(precision, 1) + BCE(recall, 1) + BCE(specificity, 1) over non-ignored voxels."""
    valid = target != ignore_index
    if not bool(valid.any()):
        return _zero(logits)
    empty_p = torch.softmax(logits.float(), dim=1).select(1, empty_index)[valid]
    occ_p = 1 - empty_p
    occ_t = (target[valid] != empty_index).float()
    hit = (occ_p * occ_t).sum()
    loss = _zero(logits)
    if occ_p.sum() > 0:
        loss = loss + _bce_to_one(hit / occ_p.sum())
    if occ_t.sum() > 0:
        loss = loss + _bce_to_one(hit / occ_t.sum())
    if (1 - occ_t).sum() > 0:
        loss = loss + _bce_to_one(((1 - occ_t) * empty_p).sum() / (1 - occ_t).sum())
    return loss


def binary_occupancy_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_LABEL,
                          empty_index: int = 0) -> torch.Tensor:
    """BCE of occupancy logits (B, 1, *spatial) or (B, *spatial) against targets binarised as label != empty,
    mean over non-ignored voxels (SGN's loss_occ / loss_pts)."""
    logits = logits.reshape(target.shape) if logits.dim() == target.dim() + 1 else logits
    valid = target != ignore_index
    if not bool(valid.any()):
        return _zero(logits)
    occupied = (target[valid] != empty_index).float()
    return F.binary_cross_entropy_with_logits(logits[valid].float(), occupied)
