"""The SegFormer all-MLP decode head (Xie et al., NeurIPS 2021), as CleanerS uses it on a MiT encoder.

Every level's features go through a per-pixel linear layer to ``embed_dim`` channels and are bilinearly resized to
the first (finest, 1/4) level; the levels are concatenated (coarsest first), dropped out, fused by a 1x1 convolution
+ BatchNorm + ReLU into the head's feature map, and a 1x1 convolution gives the class logits at that size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class SegFormerHead(nn.Module):
    """list of (B, in_channels[i], h_i, w_i) (finest first) -> (features (B, embed_dim, h_0, w_0),
    logits (B, num_classes, h_0, w_0))."""

    def __init__(self, in_channels: Sequence[int], embed_dim: int, num_classes: int, dropout: float = 0.5,
                 bn_momentum: float = 0.1) -> None:
        super().__init__()
        self.linear = nn.ModuleList(nn.Conv2d(c, embed_dim, 1) for c in in_channels)
        self.dropout = nn.Dropout(dropout)
        self.fuse = nn.Sequential(nn.Conv2d(embed_dim * len(in_channels), embed_dim, 1, bias=False),
                                  nn.BatchNorm2d(embed_dim, momentum=bn_momentum), nn.ReLU())
        self.classifier = nn.Conv2d(embed_dim, num_classes, 1)

    def forward(self, feats: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        if len(feats) != len(self.linear):
            raise ValueError(f"SegFormerHead expects {len(self.linear)} levels, got {len(feats)}")
        size = feats[0].shape[-2:]
        levels = [F.interpolate(lin(f), size=size, mode="bilinear", align_corners=False) if f.shape[-2:] != size
                  else lin(f) for lin, f in zip(self.linear, feats)]
        features = self.fuse(self.dropout(torch.cat(levels[::-1], dim=1)))
        return features, self.classifier(features)
