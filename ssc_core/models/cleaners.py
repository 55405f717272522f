"""CleanerS: "Semantic Scene Completion with Cleaner Self" (Wang et al., CVPR 2023) — the ``VoxelSSC`` network.

Teacher and student are this same network: the teacher reads TSDF-CAD (the TSDF of the perfect depth), the student
the TSDF of the noisy depth; the distillation (``ssc_core.training.distill``) runs the frozen teacher beside the
student and adds KD-T and KD-S (``ssc_core.losses.distill``). Parts, with shapes for the NYU grid (C = model.feature):

  2D encoder     timm backbone (MiT-B2 = pvt_v2_b2 with mlp_ratios 4, or ResNet-50), frozen: 4 levels, strides 4-32
  SegFormerHead  -> feature2d (B, C, h/4, w/4) and 2D logits, upsampled (bilinear, align_corners) to the mapping size
  projection     feature2d upsampled to the mapping2d size (480 x 640), each mapped pixel written into its voxel of
                 a zero (B, C, 60, 36, 60) volume; "3D init" adds the 3x3x3 average where a feature is 0
  TSDF net       (B, 1, 60, 36, 60) -> Conv3d 1 -> 3 -> 64 -> C (BN, ReLU) -> DDRUNet3D (dropout 0.3) = tsdf_feat
  fusion         projected + tsdf_feat; in training, random flips of x (dim 2) and z (dim 4), p = 0.5 each,
                 undone on the logits (tsdf_feat is taken before the flip)
  completion     DDRUNet3D -> Dropout3d(0.1) -> Conv3d 1x1x1 -> ssc_logits (B, 12, 60, 36, 60)

Losses (``losses``): CE with label smoothing (0.2) over voxels with label_weight > 0 and label != 255, and 0.25 x
the same CE on the 2D logits at pixels with a voxel (target: that voxel's label). Batch keys: ``img``,
``mapping2d``, ``tsdf`` (``ssc_core.data.rgbd``); ``target``, ``label_weight`` for the losses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.losses import scene_target
from ssc_core.models.blocks.ddr import DDRUNet3D
from ssc_core.models.blocks.image_backbone import build_image_backbone
from ssc_core.models.blocks.pixel_to_voxel import fill_empty_voxels, pixels_to_voxels
from ssc_core.models.blocks.segformer_head import SegFormerHead
from ssc_core.models.registry import model_sections, register_model
from ssc_core.types import IGNORE_LABEL, GridSpec

MODEL_KEYS = {
    "name", "num_classes", "backbone", "feature", "head_dropout", "tsdf_stem", "bn_momentum", "flip_augment",
    "three_d_init", "label_smoothing", "loss_weights",
}
LOSS_NAMES = ("ssc", "ssc_2d")


class TSDFNet(nn.Module):
    """(B, 1, X, Y, Z) TSDF -> (B, C, X, Y, Z) features: a 3-conv stem (1 -> stem[0] -> stem[1] -> C, 3x3x3, BN,
    ReLU) and a DDRUNet3D with dropout 0.3 after its first up-sampling."""

    def __init__(self, channels: int, stem: tuple[int, int] = (3, 64), bn_momentum: float = 0.1) -> None:
        super().__init__()
        widths = [1, *stem, channels]
        layers: list[nn.Module] = []
        for cin, cout in zip(widths[:-1], widths[1:]):
            layers += [nn.Conv3d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm3d(cout, momentum=bn_momentum),
                       nn.ReLU()]
        self.stem = nn.Sequential(*layers)
        self.body = DDRUNet3D(channels, bn_momentum, up_dropout=0.3)

    def forward(self, tsdf: torch.Tensor) -> torch.Tensor:
        return self.body(self.stem(tsdf))


@register_model("cleaners")
class VoxelSSC(nn.Module):
    """CleanerS's network (module docstring). Built from the whole config: ``model:`` (keys in MODEL_KEYS,
    documented in docs/models.md) and ``data.grid``."""

    def __init__(self, cfg: dict) -> None:
        super().__init__()
        m, data = model_sections(cfg, MODEL_KEYS, "CleanerS")
        self.grid = GridSpec.from_dict(data.get("grid") or GridSpec.nyu().to_dict())
        if any(d % 4 for d in self.grid.dims):
            raise ConfigError(f"CleanerS needs data.grid.dims divisible by 4, got {self.grid.dims}")
        self.num_classes = int(m.get("num_classes", 12))
        channels = int(m.get("feature", 256))
        if channels % 4:
            raise ConfigError(f"model.feature must be divisible by 4, got {channels}")
        momentum = float(m.get("bn_momentum", 0.1))
        self.flip_augment = bool(m.get("flip_augment", True))
        self.three_d_init = bool(m.get("three_d_init", True))
        self.label_smoothing = float(m.get("label_smoothing", 0.2))
        weights = {"ssc": 1.0, "ssc_2d": 0.25}
        extra = set(m.get("loss_weights") or {}) - set(LOSS_NAMES)
        if extra:
            raise ConfigError(f"unknown model.loss_weights keys {sorted(extra)}; CleanerS's losses are {LOSS_NAMES}")
        weights.update({k: float(v) for k, v in (m.get("loss_weights") or {}).items()})
        self.loss_weights = weights

        self.encoder = build_image_backbone(dict(m.get("backbone") or {"name": "pvt_v2_b2"}))
        self.head = SegFormerHead(self.encoder.out_channels, channels, self.num_classes,
                                  dropout=float(m.get("head_dropout", 0.5)), bn_momentum=momentum)
        stem = tuple(int(v) for v in m.get("tsdf_stem", (3, 64)))
        if len(stem) != 2:
            raise ConfigError(f"model.tsdf_stem must be two widths, got {stem}")
        self.tsdf_net = TSDFNet(channels, stem, momentum)
        self.completion = DDRUNet3D(channels, momentum)
        self.classifier = nn.Sequential(nn.Dropout3d(0.1), nn.Conv3d(channels, self.num_classes, 1))

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        """batch: img (B, 3, h, w), mapping2d (B, H, W) int64, tsdf (B, 1, X, Y, Z). Returns ssc_logits
        (B, K, X, Y, Z), logits_2d (B, K, H, W) and tsdf_feat (B, C, X, Y, Z)."""
        for key in ("img", "mapping2d", "tsdf"):
            if key not in batch:
                raise DataFormatError(f"CleanerS batch has no {key!r} (keys: {sorted(batch)})")
        tsdf = batch["tsdf"]
        if tuple(tsdf.shape[1:]) != (1, *self.grid.dims):
            raise DataFormatError(f"tsdf must be (B, 1, {', '.join(map(str, self.grid.dims))}), got "
                                  f"{tuple(tsdf.shape)}")
        mapping2d = batch["mapping2d"]
        feature2d, logits_small = self.head(self.encoder(batch["img"]))
        logits_2d = F.interpolate(logits_small, size=mapping2d.shape[-2:], mode="bilinear", align_corners=True)
        volume = pixels_to_voxels(feature2d, mapping2d, self.grid.dims)
        if self.three_d_init:
            volume = fill_empty_voxels(volume)
        tsdf_feat = self.tsdf_net(tsdf.float())
        fused = volume + tsdf_feat
        flips = []
        if self.training and self.flip_augment:
            flips = [dim for dim in (2, 4) if bool(torch.rand(()) < 0.5)]
        if flips:
            fused = fused.flip(flips)
        logits = self.classifier(self.completion(fused))
        if flips:
            logits = logits.flip(flips)
        return {"ssc_logits": logits, "logits_2d": logits_2d, "tsdf_feat": tsdf_feat}

    def _ce(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if target.numel() == 0:
            return logits.sum() * 0.0
        return F.cross_entropy(logits.float(), target, ignore_index=IGNORE_LABEL, label_smoothing=self.label_smoothing)

    def losses(self, outputs: dict, batch: dict) -> dict[str, torch.Tensor]:
        """loss_ssc (CE over label_weight > 0 and label != 255) and loss_ssc_2d (0.25 x CE at mapped pixels)."""
        logits = outputs["ssc_logits"]
        target = scene_target(batch, logits, "CleanerS")
        for key in ("label_weight", "mapping2d"):
            if key not in batch:
                raise DataFormatError(f"CleanerS losses need batch[{key!r}] (keys: {sorted(batch)})")
        used = (batch["label_weight"] > 0) & (target != IGNORE_LABEL)
        terms = {"ssc": self._ce(logits.movedim(1, -1)[used], target[used])}
        mapping2d = batch["mapping2d"]
        pixels = mapping2d >= 0
        pixel_target = torch.gather(target.flatten(1), 1, mapping2d.clamp(min=0).flatten(1)).view_as(mapping2d)
        terms["ssc_2d"] = self._ce(outputs["logits_2d"].movedim(1, -1)[pixels], pixel_target[pixels])
        return {f"loss_{k}": self.loss_weights[k] * v for k, v in terms.items() if self.loss_weights[k] != 0}
