"""Image encoders: a timm backbone and a neck.

- ``ImageEncoder`` (SGN, VoxFormer, HASSC): the backbone's last returned level (ResNet layer3) and a single-level
  FPN, applied to every frame of a window.
- ``MultiLevelImageEncoder`` (HTCL, L2COcc-C/-D): every returned level (EfficientNet strides 4..32 and its head
  map) merged by SECONDFPN into one map at stride 8."""

from __future__ import annotations

import torch
from torch import nn

from ssc_core.errors import ConfigError
from ssc_core.models.blocks.fpn import SingleLevelFPN
from ssc_core.models.blocks.image_backbone import build_image_backbone
from ssc_core.models.blocks.second_fpn import SECONDFPN

# SECONDFPN's upsampling factors for EfficientNet's five levels (strides 4, 8, 16, 32, 32 -> 8)
DEFAULT_LEVEL_STRIDES = (0.5, 1, 2, 4, 4)


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


class MultiLevelImageEncoder(nn.Module):
    """``backbone`` (a ``build_image_backbone`` config; every returned level is used) + SECONDFPN with
    ``out_channels`` per level (an int: the same for every level) and ``strides`` (upsampling factor per level;
    None: ``DEFAULT_LEVEL_STRIDES`` for as many levels). (N, 3, H, W) normalised RGB -> (N, sum(out_channels),
    H/8, W/8) for EfficientNet's levels; ``out_channels`` is that sum. ConfigError when the lists do not have one
    entry per backbone level."""

    def __init__(self, backbone_cfg: dict, out_channels: int | list[int],
                 strides: list[float] | None = None) -> None:
        super().__init__()
        self.backbone = build_image_backbone(backbone_cfg)
        levels = self.backbone.out_channels
        strides = list(DEFAULT_LEVEL_STRIDES[:len(levels)] if strides is None else strides)
        widths = [int(out_channels)] * len(levels) if isinstance(out_channels, int) else list(out_channels)
        if len(strides) != len(levels) or len(widths) != len(levels):
            raise ConfigError(f"model.neck has {len(strides)} strides and {len(widths)} out_channels for the "
                              f"backbone's {len(levels)} levels {levels}")
        self.neck = SECONDFPN(levels, widths, strides)
        self.out_channels = self.neck.out_channels

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.neck(self.backbone(img))
