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

from ssc_core.data.stereo_depth import stereo_depth_requires
from ssc_core.data.transforms import image_crop_hw
from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.losses import geo_scal_loss, resolve_class_weights, scene_target, sem_scal_loss, weighted_ce_loss
from ssc_core.losses.depth import depth_kl_loss, num_bins
from ssc_core.models.blocks.depth_net import DepthNet, camera_features
from ssc_core.models.blocks.evt import EVT, stereo_proposals
from ssc_core.models.blocks.image_encoder import MultiLevelImageEncoder
from ssc_core.models.blocks.lidar_encoder import LidarVoxelEncoder
from ssc_core.models.blocks.lss import LiftSplat, depth_bins, lift
from ssc_core.models.blocks.lss_fpn import GeneralizedLSSFPN
from ssc_core.models.blocks.occ_head import OccHead
from ssc_core.models.blocks.resnet3d import ResNet3D
from ssc_core.models.blocks.stereo_depth import StereoMonoDepth
from ssc_core.models.blocks.tpv import TPVNetwork
from ssc_core.models.registry import model_sections, register_model
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
        m, data = model_sections(cfg, COMMON_KEYS | self.EXTRA_KEYS, str((cfg.get("model") or {}).get("name")))
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
        logits = outputs["ssc_logits"]
        target = scene_target(batch, logits, "L2COcc")
        terms = {"ce": weighted_ce_loss(logits, target, self.class_weights, normalize=True),
                 "sem_scal": sem_scal_loss(logits, target), "geo_scal": geo_scal_loss(logits, target),
                 **self.extra_losses(outputs, batch)}
        return {f"loss_{k}": self.loss_weights[k] * v for k, v in terms.items() if self.loss_weights[k] != 0}


@register_model("l2cocc_l")
class L2COccLidar(L2COccBase):
    """L2COcc-L, the LiDAR teacher. forward(batch) reads ``points`` (P, 5) [batch, x, y, z, intensity] in the
    LiDAR frame (``data.points.source: lidar``); the batch size comes from ``frame_index`` (``batch_size``)."""

    def __init__(self, cfg: dict) -> None:
        super().__init__(cfg)
        self.lidar_encoder = LidarVoxelEncoder(self.work_grid, self.channels)

    @classmethod
    def sensor_inputs(cls, cfg: dict) -> frozenset[str]:
        """The LiDAR scan alone (no camera: live, no image or camera calibration is waited for)."""
        return frozenset({"points"})

    def voxel_features(self, batch: dict) -> tuple[torch.Tensor, dict]:
        if "points" not in batch:
            raise DataFormatError("L2COcc-L needs the LiDAR scan: the batch has no 'points' (set "
                                  "data.points.source: lidar)")
        return self.lidar_encoder(batch["points"], batch_size(batch)), {}


CAMERA_KEYS = {"backbone", "neck", "depth_bins", "depth_net", "aggregation", "evt", "feature_stride"}
CAMERA_INPUTS = ("img", "P2", "post_rot", "post_tran", "T_cam_velo", "stereo_depth")


@register_model("l2cocc_c")
class L2COccCamera(L2COccBase):
    """L2COcc-C, the camera model (see the module docstring). forward(batch) reads the current frame's ``img``
    (B, F, 3, H, W), its raw ``P2`` (B, F, 3, 4), image transform ``post_rot`` (B, F, 3, 3) / ``post_tran``
    (B, F, 3), ``T_cam_velo`` (B, F, 4, 4) and ``stereo_depth`` (B, H, W) metres in ``img``'s pixels (0 = none);
    training with the depth loss also needs ``lidar_depth`` (B, H, W). Besides the common outputs it returns
    ``depth_prob`` (B, D, H/s, W/s) and ``proposals`` (B, X/2, Y/2, Z/2) bool."""

    DEFAULT_LOSS_WEIGHTS = {"ce": 3.0, "sem_scal": 1.0, "geo_scal": 1.0, "depth": 1e-4}
    DEFAULT_VOXEL_BLOCKS = [1, 1, 1]
    EXTRA_KEYS = CAMERA_KEYS

    def __init__(self, cfg: dict) -> None:
        super().__init__(cfg)
        m = cfg.get("model") or {}
        image_hw = image_crop_hw(cfg.get("data") or {})
        if image_hw is None:
            raise ConfigError("L2COcc's camera model needs data.image_crop [H, W] (the size of its image tensor)")
        stride = int(m.get("feature_stride", 8))
        if image_hw[0] % (4 * stride) or image_hw[1] % (4 * stride):
            raise ConfigError(f"data.image_crop {list(image_hw)} must be a multiple of 4 x feature_stride "
                              f"({4 * stride}): the depth U-Nets halve the feature map twice")
        self.image_hw = image_hw
        self.bins = tuple(float(v) for v in m.get("depth_bins", (2.0, 58.0, 0.5)))
        count = num_bins(self.bins)
        if count % 4:
            raise ConfigError(f"model.depth_bins {list(self.bins)} give {count} bins; DepthAggregation's 3D U-Net "
                              "needs a multiple of 4")
        neck = dict(m.get("neck") or {})
        self.image_encoder = MultiLevelImageEncoder(dict(m.get("backbone") or {}), neck.get("out_channels", 128),
                                                    neck.get("strides"))
        img_c = self.image_encoder.out_channels
        depth_cfg = dict(m.get("depth_net") or {})
        self.depth_net = DepthNet(img_c, int(depth_cfg.get("mid_channels", img_c)),
                                  self.channels, count, cam_channels=33, norm="BN", reduce_norm="BN",
                                  cam_norm={"type": "GN", "num_groups": 1}, pool_norm={"type": "GN", "num_groups": 2},
                                  block_channels=count)
        agg = dict(m.get("aggregation") or {})
        self.depth = StereoMonoDepth(self.bins, int(agg.get("channels", 32)), int(agg.get("kernel", 5)))
        feature_hw = (image_hw[0] // stride, image_hw[1] // stride)
        self.lift_splat = LiftSplat(image_hw, feature_hw, depth_bins(*self.bins), self.work_grid)
        start, stop, step = self.bins
        self.evt = EVT(self.channels, self.work_grid, (start - step / 2, stop - step / 2), **dict(m.get("evt") or {}))

    @classmethod
    def sensor_inputs(cls, cfg: dict) -> frozenset[str]:
        """The left image, and the right one when the stereo depth source matches the pair; never the LiDAR scan
        (the -D config's ``data.points`` only feeds its teacher during training)."""
        data = cfg.get("data") or {}
        right = bool(data.get("use_right_image")) or "image_right" in stereo_depth_requires(data)
        return frozenset({"image", "image_right"} if right else {"image"})

    def voxel_features(self, batch: dict) -> tuple[torch.Tensor, dict]:
        missing = [k for k in CAMERA_INPUTS if k not in batch]
        if missing:
            raise DataFormatError(f"L2COcc's camera model needs {missing} in the batch (data.image_preprocess: "
                                  f"resize_bottom_crop and data.stereo_depth.source give them; keys: {sorted(batch)})")
        img = batch["img"][:, -1]
        if tuple(img.shape[2:]) != self.image_hw:
            raise DataFormatError(f"img is {tuple(img.shape[2:])} but the model was built for data.image_crop "
                                  f"{list(self.image_hw)}")
        P2, post_rot, post_tran = batch["P2"][:, -1:], batch["post_rot"][:, -1:], batch["post_tran"][:, -1:]
        T_cam_velo = batch["T_cam_velo"][:, -1:]
        T_velo_cam = torch.linalg.inv(T_cam_velo.float())
        b = img.shape[0]
        cam = camera_features(P2, post_rot, post_tran, T_velo_cam, torch.eye(4, device=img.device).expand(b, 4, 4))
        mono_logits, context = self.depth_net(self.image_encoder(img), cam)
        stereo_depth = batch["stereo_depth"].float()
        depth_prob = self.depth(mono_logits, stereo_depth)
        index = self.lift_splat.geometry(P2, post_rot, post_tran, T_velo_cam)
        volume = self.lift_splat(lift(depth_prob.unsqueeze(1), context.unsqueeze(1)), index)
        proposals = stereo_proposals(stereo_depth, P2[:, 0], post_rot[:, 0], post_tran[:, 0], T_velo_cam[:, 0],
                                     self.work_grid)
        volume = self.evt(volume, proposals, context, depth_prob, P2[:, 0], T_cam_velo[:, 0], post_rot[:, 0],
                          post_tran[:, 0], self.image_hw)
        return volume, {"depth_prob": depth_prob, "proposals": proposals}

    def extra_losses(self, outputs: dict, batch: dict) -> dict[str, torch.Tensor]:
        """``depth``: ``depth_kl_loss`` of the fused depth distribution against ``batch['lidar_depth']``."""
        if self.loss_weights["depth"] == 0:
            return {}
        if "lidar_depth" not in batch:
            raise DataFormatError("L2COcc's depth loss needs batch['lidar_depth'] (set data.lidar_depth: true, or "
                                  "model.loss_weights.depth: 0)")
        return {"depth": depth_kl_loss(outputs["depth_prob"], batch["lidar_depth"], self.bins)}


@register_model("l2cocc_d")
class L2COccDistilled(L2COccCamera):
    """L2COcc-D: the camera network of L2COcc-C with the student's loss weights (3 CE, 0.5 sem_scal, 1.5
    geo_scal, 1e-4 depth). The distillation against the frozen L2COcc-L is the Trainer hook named by
    ``train.distill`` (fact sheet §2.4); the network and its checkpoint keys are L2COcc-C's."""

    DEFAULT_LOSS_WEIGHTS = {"ce": 3.0, "sem_scal": 0.5, "geo_scal": 1.5, "depth": 1e-4}


def batch_size(batch: dict) -> int:
    """The number of samples in a collated batch (from ``frame_index``, the list every sample contributes)."""
    if "frame_index" in batch:
        return len(batch["frame_index"])
    for key in ("target", "img", "stereo_depth"):
        if key in batch:
            return int(batch[key].shape[0])
    raise DataFormatError(f"cannot tell the batch size from the keys {sorted(batch)}")
