"""Lovász-softmax loss (Berman et al., CVPR 2018): a convex surrogate of per-class IoU, written from the
paper's definition."""

from __future__ import annotations

import torch

from ssc_core.types import IGNORE_LABEL


def _lovasz_grad(sorted_fg: torch.Tensor) -> torch.Tensor:
    """Gradient of the Lovász extension of the Jaccard loss w.r.t. errors sorted in decreasing order."""
    total = sorted_fg.sum()
    intersection = total - sorted_fg.cumsum(0)
    union = total + (1 - sorted_fg).cumsum(0)
    jaccard = 1.0 - intersection / union
    if len(jaccard) > 1:
        jaccard[1:] = jaccard[1:] - jaccard[:-1].clone()
    return jaccard


def lovasz_softmax_loss(logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_LABEL) -> torch.Tensor:
    """Lovász-softmax over the classes present in ``target``. logits: (N, C) or (B, C, *spatial); target:
    matching int64 labels (ignore_index skipped). Returns the mean over present classes (0 if none)."""
    if logits.dim() > 2:
        logits = logits.movedim(1, -1).reshape(-1, logits.shape[1])
        target = target.reshape(-1)
    valid = target != ignore_index
    probs = torch.softmax(logits.float(), dim=1)[valid]
    tgt = target[valid]
    losses = []
    for c in torch.unique(tgt).tolist():
        fg = (tgt == c).float()
        errors = (fg - probs[:, c]).abs()
        errors_sorted, order = torch.sort(errors, descending=True)
        losses.append(torch.dot(errors_sorted, _lovasz_grad(fg[order])))
    if not losses:
        return logits.sum() * 0.0
    return torch.stack(losses).mean()
