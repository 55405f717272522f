"""VoxFormer: sparse voxel transformer for camera-based semantic scene completion (Li et al., CVPR 2023).

Two stages, both in this module (C = model.dim; the work grid is the 1:2 grid of data.grid, 128 x 128 x 16 for
KITTI):

  stage 1, query proposals
    online         ``sweep_occupancy`` (B, X, Y, Z): depth points of the current and previous raw frames,
                   ray-cast into log-odds occupancy by the data layer (data.sweeps) -> LMSCNet_SS (BEV U-Net +
                   3D head, 2 classes) -> ``qpn_logits`` (B, 2, X/2, Y/2, Z/2); proposals = detached argmax == 1,
                   trained jointly by its class-weighted CE (loss_qpn)
    cached         ``proposal`` (B, X/2, Y/2, Z/2) read from the original's bit-packed ``.query_*`` files
                   (data.proposals; written by ``ssc-precompute proposals``); no QPN is built
  stage 2
    ImageEncoder   (B, F, 3, H, W) -> timm ResNet layer3 -> single-level FPN -> (B, F, C, h, w), + camera and
                   level embeddings
    queries        a learned embedding per work-grid voxel (262,144 x C) and a learned mask token
    cross-attn     ``cross_layers`` x [deformable cross-attention of the proposed voxels' queries into every
                   camera that sees their centre (``cross_points`` samples, mean over those cameras) -> LN ->
                   FFN -> LN]; the other voxels take the mask token
    self-attn      ``self_layers`` x [deformable self-attention over all voxels laid out as a 2D plane with a
                   learned positional encoding -> LN -> FFN -> LN]
    header         ``linear``: x2 trilinear upsample + LN + Linear (VoxFormer's); ``conv``: Conv3d-GN-ReLU-Conv3d
                   at the work grid then x2 trilinear (HASSC's) -> ``ssc_logits`` (B, K, X, Y, Z)

Batches of any size work (each sample has its own proposals and cameras); the original assumes batch 1.
Training-mode outputs also hold ``voxel_features`` (B, C, X/2, Y/2, Z/2), and ``coarse_outputs`` gives HASSC the
work-grid logits (the coarse-output interface, docs/models.md).
"""

from __future__ import annotations

import torch
from torch import nn

from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.losses import geo_scal_loss, scene_target, sem_scal_loss, weighted_ce_loss
from ssc_core.models.blocks.bev_unet import LMSCNetSS
from ssc_core.models.blocks.deformable_attention import (
    CameraCrossAttention,
    LearnedPlaneEncoding,
    PlaneSelfAttention,
    TransformerLayer,
)
from ssc_core.models.blocks.heads import ConvHeader, UpsampleHeader
from ssc_core.models.blocks.image_encoder import ImageEncoder
from ssc_core.models.registry import (
    loss_weights,
    model_class_weights,
    model_sections,
    register_model,
    scene_grids,
)
from ssc_core.types import IGNORE_LABEL

MODEL_KEYS = {
    "name", "num_classes", "class_weights", "dim", "backbone", "heads", "cross_layers", "cross_points",
    "self_layers", "self_points", "ffn_dim", "dropout", "self_attention_plane", "header", "conv_header_hidden",
    "proposals", "qpn_alpha", "loss_weights",
}
PROPOSAL_SOURCES = ("online", "cached")
HEADERS = ("linear", "conv")
LOSS_NAMES = ("ssc", "sem_scal", "geo_scal", "qpn")


def default_plane(work_dims: tuple[int, int, int]) -> tuple[int, int]:
    """The self-attention plane VoxFormer uses, generalised: (4 X, Y Z / 4) voxels; 512 x 512 for 128 x 128 x 16."""
    x, y, z = work_dims
    if (y * z) % 4:
        raise ConfigError(f"the default self-attention plane needs Y * Z of the work grid divisible by 4, got "
                          f"{work_dims}; set model.self_attention_plane")
    return 4 * x, y * z // 4


def project_reference_points(centers_velo: torch.Tensor, K: torch.Tensor, T_cam_velo: torch.Tensor,
                             image_hw: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Project points into each camera of one sample, as VoxFormer's encoder does.

    centers_velo (Q, 3) in the current LiDAR frame; K (F, 3, 3); T_cam_velo (F, 4, 4); image_hw (2,) [H, W].
    Returns (normalised image coordinates (F, Q, 2) = (u / W, v / H), visible (F, Q) bool: depth > eps and both
    coordinates strictly inside (0, 1)). Computed in float32, also under autocast."""
    with torch.autocast(device_type=centers_velo.device.type, enabled=False):
        T = T_cam_velo.float()
        cam = torch.einsum("fij,qj->fqi", T[:, :3, :3], centers_velo.float()) + T[:, None, :3, 3]
        uvw = torch.einsum("fij,fqj->fqi", K.float(), cam)
        depth = uvw[..., 2:3]
        uv = uvw[..., :2] / depth.clamp(min=eps)
        uv = uv / image_hw.flip(0).to(uv.dtype)
    visible = (depth[..., 0] > eps) & torch.all((uv > 0) & (uv < 1), dim=-1)
    return uv, visible


@register_model("voxformer")
class VoxFormer(nn.Module):
    """VoxFormer built from a whole parsed config (``model:`` and ``data:``; keys in docs/models.md).

    forward(batch) takes the collated sample dict (img (B, F, 3, H, W), K (B, F, 3, 3), T_cam_velo (B, F, 4, 4),
    image_hw (B, 2), and sweep_occupancy (B, X, Y, Z) for online proposals or proposal (B, X/2, Y/2, Z/2) for cached
    ones) and returns ssc_logits (B, K, X, Y, Z), proposal (B, X/2, Y/2, Z/2) bool, qpn_logits (B, 2, X/2, Y/2, Z/2)
    with online proposals, and voxel_features (B, C, X/2, Y/2, Z/2) in training mode."""

    def __init__(self, cfg: dict) -> None:
        super().__init__()
        m, data = model_sections(cfg, MODEL_KEYS, "VoxFormer")
        self.grid, self.work_grid = scene_grids(data, "VoxFormer", "LMSCNet's BEV U-Net, 1:2 grid")
        self.num_classes = int(m.get("num_classes", 20))
        channels = int(m.get("dim", 128))
        self.voxel_feature_channels = channels
        heads = int(m.get("heads", 8))
        ffn_dim = int(m.get("ffn_dim", 2 * channels))
        dropout = float(m.get("dropout", 0.1))
        self.proposal_source = m.get("proposals", "online")
        if self.proposal_source not in PROPOSAL_SOURCES:
            raise ConfigError(f"model.proposals must be one of {PROPOSAL_SOURCES}, got {self.proposal_source!r}")
        header = m.get("header", "linear")
        if header not in HEADERS:
            raise ConfigError(f"model.header must be one of {HEADERS}, got {header!r}")
        self.loss_weights = loss_weights(m, LOSS_NAMES, "VoxFormer")
        self.register_buffer("class_weights", model_class_weights(m, data, self.num_classes), persistent=False)
        alpha = float(m.get("qpn_alpha", 0.54))
        self.register_buffer("qpn_class_weights", torch.tensor([1 - alpha, alpha]), persistent=False)
        self.register_buffer("voxel_centers", torch.from_numpy(self.work_grid.voxel_centers()), persistent=False)
        self.num_frames = len(data.get("history_offsets") or []) + 1
        num_voxels = self.work_grid.num_voxels
        plane = tuple(m.get("self_attention_plane") or default_plane(self.work_grid.dims))
        if plane[0] * plane[1] != num_voxels:
            raise ConfigError(f"model.self_attention_plane {list(plane)} must hold the {num_voxels} work-grid voxels")
        if channels % 2:
            raise ConfigError(f"model.dim must be even (half of it encodes plane rows, half columns), got {channels}")

        self.qpn = LMSCNetSS(self.grid.dims[2], 2) if self.proposal_source == "online" else None
        self.image_encoder = ImageEncoder(dict(m.get("backbone") or {}), channels)
        self.cams_embeds = nn.Parameter(torch.randn(self.num_frames, channels))
        self.level_embeds = nn.Parameter(torch.randn(1, channels))
        self.queries = nn.Embedding(num_voxels, channels)
        self.mask_embed = nn.Embedding(1, channels)
        self.positional_encoding = LearnedPlaneEncoding(channels // 2, plane)
        cross_points, self_points = int(m.get("cross_points", 8)), int(m.get("self_points", 8))
        self.cross_layers = nn.ModuleList(
            TransformerLayer(CameraCrossAttention(channels, heads, 1, cross_points, dropout), channels, ffn_dim,
                             dropout)
            for _ in range(int(m.get("cross_layers", 3))))
        self.self_layers = nn.ModuleList(
            TransformerLayer(PlaneSelfAttention(channels, plane, heads, self_points, dropout), channels, ffn_dim,
                             dropout)
            for _ in range(int(m.get("self_layers", 2))))
        if header == "linear":
            self.ssc_header = UpsampleHeader(channels, self.num_classes, scale=2)
        else:
            self.ssc_header = ConvHeader(channels, self.num_classes, hidden=int(m.get("conv_header_hidden", 64)))

    # ------------------------------------------------------------------------------------------ stage 1
    def propose(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(proposal (B, X/2, Y/2, Z/2) bool, qpn_logits (B, 2, X/2, Y/2, Z/2) or None for cached proposals)."""
        half = tuple(self.work_grid.dims)
        if self.qpn is None:
            if "proposal" not in batch:
                raise DataFormatError("VoxFormer with model.proposals: cached needs batch['proposal'] (set "
                                      "data.proposals.root to the .query_* files, or use model.proposals: online)")
            proposal = batch["proposal"]
            if tuple(proposal.shape[1:]) != half:
                raise DataFormatError(f"batch['proposal'] must be (B, {', '.join(map(str, half))}), got "
                                      f"{tuple(proposal.shape)}")
            return proposal.bool(), None
        if "sweep_occupancy" not in batch:
            raise DataFormatError("VoxFormer with online proposals needs batch['sweep_occupancy'] (set data.sweeps, "
                                  "docs/datasets.md)")
        occupancy = batch["sweep_occupancy"]
        if tuple(occupancy.shape[1:]) != tuple(self.grid.dims):
            raise DataFormatError(f"batch['sweep_occupancy'] must be (B, {', '.join(map(str, self.grid.dims))}), "
                                  f"got {tuple(occupancy.shape)}")
        logits = self.qpn(occupancy.float())
        return logits.detach().argmax(1) == 1, logits

    # ------------------------------------------------------------------------------------------ stage 2
    def image_values(self, img: torch.Tensor) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """Image features as attention values: (B, F, h * w, C) with camera and level embeddings, and [(h, w)]."""
        feats = self.image_encoder(img)
        b, f, c, h, w = feats.shape
        if f != self.num_frames:
            raise DataFormatError(f"VoxFormer was built for {self.num_frames} frame(s) per sample (data."
                                  f"history_offsets), the batch has {f}")
        values = feats.flatten(3).transpose(2, 3) + self.cams_embeds[None, :, None] + self.level_embeds
        return values, [(h, w)]

    def cross_attend(self, values: torch.Tensor, shapes: list[tuple[int, int]], proposal: torch.Tensor,
                     batch: dict) -> torch.Tensor:
        """(B, N, C) voxel features: proposed voxels' queries after the cross-attention layers, mask token else."""
        b = values.shape[0]
        volumes = []
        for i in range(b):
            index = torch.nonzero(proposal[i].flatten()).squeeze(1)
            volume = self.mask_embed.weight.expand(self.work_grid.num_voxels, -1)
            if len(index):
                ref_cam, visible = project_reference_points(self.voxel_centers[index], batch["K"][i],
                                                            batch["T_cam_velo"][i], batch["image_hw"][i])
                query = self.queries.weight[index]
                for layer in self.cross_layers:
                    query = layer(query, values[i], ref_cam, visible, shapes)
                volume = volume.index_put((index,), query.to(volume.dtype))
            volumes.append(volume)
        return torch.stack(volumes)

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        for key in ("img", "K", "T_cam_velo", "image_hw"):
            if key not in batch:
                raise DataFormatError(f"VoxFormer batch has no {key!r} (keys: {sorted(batch)})")
        proposal, qpn_logits = self.propose(batch)
        values, shapes = self.image_values(batch["img"])
        x = self.cross_attend(values, shapes, proposal, batch)
        pos = self.positional_encoding()[None].to(x.dtype)
        for layer in self.self_layers:
            x = layer(x, pos)
        features = x.view(x.shape[0], *self.work_grid.dims, -1).permute(0, 4, 1, 2, 3)
        out = {"ssc_logits": self.ssc_header(features), "proposal": proposal}
        if qpn_logits is not None:
            out["qpn_logits"] = qpn_logits
        if self.training:
            out["voxel_features"] = features
        return out

    def coarse_outputs(self, outputs: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The coarse-output interface (docs/models.md): (logits at the work grid (B, K, X/2, Y/2, Z/2), voxel
        features (B, C, X/2, Y/2, Z/2)) of a training-mode forward, both differentiable."""
        features = outputs["voxel_features"]
        return self.ssc_header.coarse_logits(features), features

    def losses(self, outputs: dict, batch: dict) -> dict[str, torch.Tensor]:
        """loss_ssc (class-weighted CE, plain mean), loss_sem_scal, loss_geo_scal (1:1 target) and, with online
        proposals, loss_qpn (CE with weights [1 - alpha, alpha] against the binarised 1:2 target), each times its
        model.loss_weights entry."""
        logits = outputs["ssc_logits"]
        target = scene_target(batch, logits, "VoxFormer")
        terms = {
            "ssc": weighted_ce_loss(logits, target, self.class_weights),
            "sem_scal": sem_scal_loss(logits, target),
            "geo_scal": geo_scal_loss(logits, target),
        }
        if "qpn_logits" in outputs:
            if "target_1_2" not in batch:
                raise DataFormatError("VoxFormer's proposal loss needs batch['target_1_2']")
            half = batch["target_1_2"].long()
            occupied = torch.where(half == IGNORE_LABEL, half, (half > 0).long())
            terms["qpn"] = weighted_ce_loss(outputs["qpn_logits"], occupied, self.qpn_class_weights)
        return {f"loss_{k}": self.loss_weights[k] * v for k, v in terms.items() if self.loss_weights[k] != 0}
