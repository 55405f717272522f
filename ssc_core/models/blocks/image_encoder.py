"""The image encoder of the ResNet-layer3 camera models (SGN, VoxFormer, HASSC): a timm backbone (its last
returned level) and a single-level FPN, applied to every frame of a window."""

from __future__ import annotations

import torch
from torch import nn

from ssc_core.models.blocks.fpn import SingleLevelFPN
from ssc_core.models.blocks.image_backbone import build_image_backbone


class ImageEncoder(nn.Module):
    """``backbone`` (a ``build_image_backbone`` config; its last returned level is used) + SingleLevelFPN to
    ``channels``, applied to every frame. (B, F, 3, H, W) normalised RGB -> (B, F, channels, h, w)."""

    def __init__(self, backbone_cfg: dict, channels: int) -> None:
        super().__init__()
        self.backbone = build_image_backbone(backbone_cfg)
        self.neck = SingleLevelFPN(self.backbone.out_channels[-1], channels)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        b, f = img.shape[:2]
        feats = self.neck(self.backbone(img.flatten(0, 1))[-1])
        return feats.view(b, f, *feats.shape[1:])
