"""L2COcc: lightweight camera-centric SSC by distilling a LiDAR model (Wang et al., IROS 2025; fact sheet §2).

Three registered models share the TPV occupancy network (``blocks/tpv.py``) and the OccHead:

  l2cocc_l  LiDAR teacher: scan -> six point features -> point MLP -> scatter-max into the 1:2 work grid
            (``blocks/lidar_encoder.py``) -> ResNet3D (2 blocks per stage) + GeneralizedLSSFPN 3D -> F3D
  l2cocc_c  camera model: EfficientNet + SECONDFPN -> mono DepthNet and stereo-depth branch, fused by
            DepthAggregation -> lift-splat of the context features -> EVT (depth-aware deformable cross-attention
            on the voxels the stereo depth proposes, mlp_prior elsewhere) -> ResNet3D (1 block per stage) +
            GeneralizedLSSFPN 3D -> F3D
  l2cocc_d  the camera model trained against a frozen l2cocc_l: the same network as l2cocc_c (its checkpoint
            loads as one), with the -D loss weights; the distillation terms come from the training hook
            (``train.distill``), not from this file

  F3D -> TPV network (pooler, shared Swin, 2D FPN, aggregator) -> OccHead at the work grid -> trilinear to the
  scene grid: ``ssc_logits``.

Every model returns, besides ``ssc_logits`` (B, K, X, Y, Z), what distillation compares: ``voxel_features`` (F3D)
and ``fused_features`` (the aggregator's output), both (B, C, X/2, Y/2, Z/2), ``aggregator_logits``
(B, 4, X/2, Y/2, Z/2), and per plane (xy, yz, zx) the Swin outputs ``plane_backbone`` and the FPN outputs
``plane_neck``.
"""

from __future__ import annotations

import torch
from torch import nn

from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.losses import geo_scal_loss, resolve_class_weights, sem_scal_loss, weighted_ce_loss
from ssc_core.models.blocks.lidar_encoder import LidarVoxelEncoder
from ssc_core.models.blocks.lss_fpn import GeneralizedLSSFPN
from ssc_core.models.blocks.occ_head import OccHead
from ssc_core.models.blocks.resnet3d import ResNet3D
from ssc_core.models.blocks.tpv import TPVNetwork
from ssc_core.models.registry import register_model
from ssc_core.types import GridSpec

COMMON_KEYS = {"name", "num_classes", "class_weights", "dim", "voxel_blocks", "swin", "loss_weights", "norm_groups"}
OCCUPANCY_LOSSES = ("ce", "sem_scal", "geo_scal")


class VoxelEncoder(nn.Module):
    """ResNet3D (three stages of ``blocks`` BasicBlock3D's at C channels, strides 1/2/2, BatchNorm, CGFormer's 3x3x3
    shortcuts, no input projection) + GeneralizedLSSFPN 3D (GroupNorm of ``groups``, ReLU, trilinear) -> its first
    output. (B, C, X, Y, Z) -> (B, C, X, Y, Z)."""

    def __init__(self, channels: int, blocks: list[int], groups: int = 32) -> None:
        super().__init__()
        if len(blocks) != 3:
            raise ConfigError(f"model.voxel_blocks must give the blocks of the three stages, got {blocks}")
        self.backbone = ResNet3D(channels, [channels] * 3, blocks, [1, 2, 2], norm="BN", input_proj=False,
                                 shortcut="conv3")
        self.neck = GeneralizedLSSFPN([channels] * 3, channels, dims=3, norm={"type": "GN", "num_groups": groups})

    def forward(self, volume: torch.Tensor) -> torch.Tensor:
        return self.neck(self.backbone(volume))[0]


class L2COccBase(nn.Module):
    """What the three models share: the config checks, F3D -> TPV network -> OccHead, and the supervised losses.

    Subclasses set ``DEFAULT_LOSS_WEIGHTS``, ``DEFAULT_VOXEL_BLOCKS`` and ``EXTRA_KEYS``, implement
    ``voxel_features(batch) -> ((B, C, X/2, Y/2, Z/2), extras)`` and may add terms in ``extra_losses``."""

    DEFAULT_LOSS_WEIGHTS: dict[str, float] = {"ce": 3.0, "sem_scal": 1.0, "geo_scal": 1.0}
    DEFAULT_VOXEL_BLOCKS: list[int] = [2, 2, 2]
    EXTRA_KEYS: set[str] = set()

    def __init__(self, cfg: dict) -> None:
        super().__init__()
        m = dict(cfg.get("model") or {})
        data = cfg.get("data") or {}
        unknown = set(m) - COMMON_KEYS - self.EXTRA_KEYS
        if unknown:
            raise ConfigError(f"unknown model keys {sorted(unknown)}; {m.get('name')} knows "
                              f"{sorted(COMMON_KEYS | self.EXTRA_KEYS)}")
        self.grid = GridSpec.from_dict(data.get("grid") or {})
        if any(d % 8 for d in self.grid.dims):
            raise ConfigError(f"L2COcc needs data.grid.dims divisible by 8 (1:2 work grid, two stride-2 stages), "
                              f"got {self.grid.dims}")
        self.work_grid = self.grid.downsample(2)
        self.num_classes = int(m.get("num_classes", 20))
        self.channels = int(m.get("dim", 128))
        weights = dict(self.DEFAULT_LOSS_WEIGHTS)
        extra = set(m.get("loss_weights") or {}) - set(weights)
        if extra:
            raise ConfigError(f"unknown model.loss_weights keys {sorted(extra)}; known: {sorted(weights)}")
        weights.update({k: float(v) for k, v in (m.get("loss_weights") or {}).items()})
        self.loss_weights = weights
        class_weights = resolve_class_weights(m.get("class_weights", "frequency"),
                                              data.get("class_set", "semantic_kitti"), self.num_classes)
        self.register_buffer("class_weights", class_weights, persistent=False)
        groups = int(m.get("norm_groups", 32))
        self.voxel_encoder = VoxelEncoder(self.channels, list(m.get("voxel_blocks", self.DEFAULT_VOXEL_BLOCKS)),
                                          groups)
        self.tpv = TPVNetwork(self.channels, m.get("swin"))
        self.head = OccHead(self.channels, self.num_classes, {"type": "GN", "num_groups": groups})

    def voxel_features(self, batch: dict) -> tuple[torch.Tensor, dict]:
        """((B, C, X/2, Y/2, Z/2) features before the voxel encoder, extra outputs)."""
        raise NotImplementedError

    def forward(self, batch: dict) -> dict:
        volume, extras = self.voxel_features(batch)
        f3d = self.voxel_encoder(volume)
        tpv = self.tpv(f3d)
        return {
            "ssc_logits": self.head(tpv["fused"], self.grid.dims),
            "voxel_features": f3d,
            "fused_features": tpv["fused"],
            "aggregator_logits": tpv["aggregator_logits"],
            "plane_backbone": tpv["plane_backbone"],
            "plane_neck": tpv["plane_neck"],
            **extras,
        }

    def extra_losses(self, outputs: dict, batch: dict) -> dict[str, torch.Tensor]:
        """Method-specific unweighted terms (the camera model's depth loss)."""
        return {}

    def losses(self, outputs: dict, batch: dict) -> dict[str, torch.Tensor]:
        """``loss_ce`` (class-weighted CE, PyTorch's weighted mean), ``loss_sem_scal``, ``loss_geo_scal`` on the
        scene grid, plus ``extra_losses``; each times ``model.loss_weights[name]``, terms of weight 0 dropped."""
        if "target" not in batch:
            raise DataFormatError(f"L2COcc losses need batch['target'] (keys: {sorted(batch)})")
        target = batch["target"].long()
        logits = outputs["ssc_logits"]
        if target.shape[1:] != logits.shape[2:]:
            raise DataFormatError(f"target shape {tuple(target.shape)} does not fit the logits {tuple(logits.shape)}")
        terms = {"ce": weighted_ce_loss(logits, target, self.class_weights, normalize=True),
                 "sem_scal": sem_scal_loss(logits, target), "geo_scal": geo_scal_loss(logits, target),
                 **self.extra_losses(outputs, batch)}
        return {f"loss_{k}": self.loss_weights[k] * v for k, v in terms.items() if self.loss_weights[k] != 0}


@register_model("l2cocc_l")
class L2COccLidar(L2COccBase):
    """L2COcc-L, the LiDAR teacher. forward(batch) reads ``points`` (P, 5) [batch, x, y, z, intensity] in the
    LiDAR frame (``data.points.source: lidar``) and ``target`` only for its batch size when there is no image."""

    def __init__(self, cfg: dict) -> None:
        super().__init__(cfg)
        self.lidar_encoder = LidarVoxelEncoder(self.work_grid, self.channels)

    def voxel_features(self, batch: dict) -> tuple[torch.Tensor, dict]:
        if "points" not in batch:
            raise DataFormatError("L2COcc-L needs the LiDAR scan: the batch has no 'points' (set "
                                  "data.points.source: lidar)")
        return self.lidar_encoder(batch["points"], batch_size(batch)), {}


def batch_size(batch: dict) -> int:
    """The number of samples in a collated batch (from ``frame_index``, the list every sample contributes)."""
    if "frame_index" in batch:
        return len(batch["frame_index"])
    for key in ("target", "img", "stereo_depth"):
        if key in batch:
            return int(batch[key].shape[0])
    raise DataFormatError(f"cannot tell the batch size from the keys {sorted(batch)}")
