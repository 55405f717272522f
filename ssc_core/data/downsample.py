"""The SSC label downsampling rule of SSCNet/LMSCNet (used for the 1:2, 1:4, 1:8 targets)."""

from __future__ import annotations

import numpy as np

from ssc_core.errors import DataFormatError
from ssc_core.types import IGNORE_LABEL


def downsample_labels(labels: np.ndarray, factor: int) -> np.ndarray:
    """Downsample (X, Y, Z) train-id labels (0 = empty, 255 = ignore) by ``factor`` per axis.

    In each factor^3 block: if count(0) + count(255) > 0.95 * factor^3 the block is 0 when zeros outnumber
    255s, else 255; otherwise it is the most frequent label among 1..254 (ties -> smallest id).
    Returns (X/f, Y/f, Z/f) uint8.
    """
    labels = np.asarray(labels)
    if labels.ndim != 3 or any(d % factor for d in labels.shape):
        raise DataFormatError(f"labels of shape {labels.shape} cannot be downsampled by {factor}")
    if factor == 1:
        return labels.astype(np.uint8)
    x, y, z = (d // factor for d in labels.shape)
    blocks = labels.reshape(x, factor, y, factor, z, factor).transpose(0, 2, 4, 1, 3, 5).reshape(-1, factor**3)
    blocks = blocks.astype(np.int64)
    n_semantic = int(blocks[blocks != IGNORE_LABEL].max(initial=0)) + 1
    ignore_slot = n_semantic
    blocks = np.where(blocks == IGNORE_LABEL, ignore_slot, blocks)
    offsets = np.arange(blocks.shape[0], dtype=np.int64)[:, None] * (n_semantic + 1)
    counts = np.bincount((blocks + offsets).ravel(), minlength=blocks.shape[0] * (n_semantic + 1))
    counts = counts.reshape(blocks.shape[0], n_semantic + 1)
    zeros, ignores = counts[:, 0], counts[:, ignore_slot]
    mostly_empty = (zeros + ignores) > 0.95 * factor**3
    semantic_counts = counts[:, 1:n_semantic]
    majority = (np.argmax(semantic_counts, axis=1) + 1) if n_semantic > 1 else np.zeros(len(counts), np.int64)
    out = np.where(mostly_empty, np.where(zeros > ignores, 0, IGNORE_LABEL), majority)
    return out.reshape(x, y, z).astype(np.uint8)
