"""SGN: Sparse Guidance Network for camera-based semantic scene completion (Mei et al., IEEE TIP 2024).

Composed of parts, each testable alone (module order and shapes as in the reference; C = model.dim):

  ImageEncoder   (B, F, 3, H, W) -> timm ResNet layer3 (stride 16) -> single-level FPN -> (B, F, C, h, w)
  FLoSP          voxel centres of the 1:2 grid projected into every frame; nearest-pixel features,
                 masked mean over the frames that see the voxel -> (B, C, X/2, Y/2, Z/2), then a 3x3x3 bottleneck
  occ head       SDB(C -> C/2, depth 1) + Conv3d -> dense occupancy logits (training-only supervision)
  SVPN           pseudo-points -> per-point MLP + scatter-mean on the 1:1 grid -> sparse residual blocks + SGFE
                 -> occupancy probability -> BEV U-Net (Z as channels) -> 3D head: proposal logits and
                 8-channel geometry guidance at 1:2
  seeds          voxels whose (detached) proposal logit > 0; all voxels of a sample with fewer than 2
  SGB            sparse encoder on seed features (SFE + SGFE at 1:2 and at 1:4, fused) + sparse semantic head
  completion     seeds keep SGB features, other voxels get mlp_prior(image features); concat guidance
  SDB + header   SDB(C + 8 -> C/2, depth) -> x2 trilinear upsample -> LayerNorm + Linear -> (B, K, X, Y, Z)

Batches of any size work: sparse sites carry their batch index; nothing assumes B = 1.
"""

from __future__ import annotations

import torch
from torch import nn

from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.losses import (
    binary_occupancy_loss,
    geo_scal_loss,
    lovasz_softmax_loss,
    resolve_class_weights,
    sem_scal_loss,
    weighted_ce_loss,
)
from ssc_core.models.blocks.bev_unet import BEVUNet, SegmentationHead3D
from ssc_core.models.blocks.diffusion import SDB
from ssc_core.models.blocks.flosp import flosp, project_voxels
from ssc_core.models.blocks.fpn import SingleLevelFPN
from ssc_core.models.blocks.heads import SparseHeader, UpsampleHeader
from ssc_core.models.blocks.image_backbone import build_image_backbone
from ssc_core.models.blocks.sparse_blocks import SFE, SGFE
from ssc_core.models.registry import loss_weights, model_sections, register_model, scene_grids
from ssc_core.ops import SparseVoxels, linearize_coords, scatter_max, scatter_mean, unique_coords
from ssc_core.types import GridSpec

MODEL_KEYS = {
    "name", "num_classes", "class_weights", "dim", "sdb_depth", "backbone", "flosp_stride",
    "point_channels", "sparse_backend", "seed_threshold", "loss_weights", "aux_in_eval", "svpn_sigmoid",
}
SVPN_SIGMOID_MODES = ("before_dense", "after_dense")
LOSS_NAMES = ("ssc", "sem_scal", "geo_scal", "sem", "occ", "pts")
GUIDANCE_CHANNELS = 8


class ImageEncoder(nn.Module):
    """Image backbone (timm ResNet layer3 in SGN's configs; its last returned level is used) + single-level FPN,
    applied to every frame. (B, F, 3, H, W) -> (B, F, C, h, w)."""

    def __init__(self, backbone_cfg: dict, channels: int) -> None:
        super().__init__()
        self.backbone = build_image_backbone(backbone_cfg)
        self.neck = SingleLevelFPN(self.backbone.out_channels[-1], channels)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        b, f = img.shape[:2]
        feats = self.neck(self.backbone(img.flatten(0, 1))[-1])
        return feats.view(b, f, *feats.shape[1:])


class PointVoxelEncoder(nn.Module):
    """Points -> sparse voxels of the 1:1 grid: 9-d point features [xyz, xyz - voxel mean, xyz - voxel corner],
    Linear-LN-ReLU-Linear, scatter-mean per voxel. Samples with fewer than ``min_points`` in range get that
    many fixed pseudo-random points so every sample has sites."""

    def __init__(self, grid: GridSpec, channels: int = 16, min_points: int = 10) -> None:
        super().__init__()
        self.grid, self.min_points = grid, min_points
        self.point_mlp = nn.Sequential(nn.Linear(9, channels), nn.LayerNorm(channels), nn.ReLU(inplace=True),
                                       nn.Linear(channels, channels))
        self.register_buffer("lower", torch.tensor(grid.origin, dtype=torch.float32), persistent=False)
        self.register_buffer("upper", torch.tensor(grid.max_bound, dtype=torch.float32), persistent=False)

    def _in_range(self, points: torch.Tensor, batch_size: int) -> torch.Tensor:
        margin = 1e-4
        xyz = points[:, 1:4]
        keep = torch.all((xyz > self.lower + margin) & (xyz < self.upper - margin), dim=1)
        points = points[keep]
        counts = torch.bincount(points[:, 0].long(), minlength=batch_size)
        sparse_samples = torch.nonzero(counts < self.min_points).squeeze(1).tolist()
        if sparse_samples:
            gen = torch.Generator().manual_seed(0)
            fill = []
            for b in sparse_samples:
                rand = torch.rand(self.min_points, 3, generator=gen).to(points.device)
                xyz_fill = self.lower + margin + rand * (self.upper - self.lower - 2 * margin)
                fill.append(torch.cat([torch.full((self.min_points, 1), float(b), device=points.device), xyz_fill,
                                       torch.zeros(self.min_points, 1, device=points.device)], dim=1))
            points = torch.cat([points, *fill], dim=0)
        return points

    def forward(self, points: torch.Tensor, batch_size: int) -> SparseVoxels:
        """points: (P, 5) float [batch, x, y, z, intensity] in the current LiDAR frame."""
        points = self._in_range(points.float(), batch_size)
        xyz = points[:, 1:4]
        dims = torch.tensor(self.grid.dims, device=points.device)
        idx = torch.floor(dims * (xyz - self.lower) / (self.upper - self.lower)).long()
        idx = torch.minimum(idx.clamp(min=0), dims - 1)
        coords = torch.cat([points[:, :1].long(), idx], dim=1)
        voxels, inverse = unique_coords(coords, self.grid.dims)
        mean = scatter_mean(xyz, inverse, len(voxels))
        corner = idx.float() * self.grid.voxel_size + self.lower
        feats = self.point_mlp(torch.cat([xyz, xyz - mean[inverse], xyz - corner], dim=1))
        return SparseVoxels(scatter_mean(feats, inverse, len(voxels)), voxels, self.grid.dims, batch_size)


class SVPN(nn.Module):
    """Sparse voxel proposal network. (P, 5) points -> (proposal logits (B, 1, X/2, Y/2, Z/2),
    guidance features (B, 8, X/2, Y/2, Z/2)).

    sigmoid: 'before_dense' (the official sgn_head_occ.py today: the sparse SGFE output goes through the sigmoid
    and is then scattered, so voxels without points read 0) or 'after_dense' (an older commit of that file: the
    logits are scattered first, so voxels without points read sigmoid(0) = 0.5; for weights trained with it)."""

    def __init__(self, grid: GridSpec, point_channels: int = 16, backend: str = "auto",
                 sigmoid: str = "before_dense") -> None:
        super().__init__()
        if sigmoid not in SVPN_SIGMOID_MODES:
            raise ConfigError(f"model.svpn_sigmoid must be one of {SVPN_SIGMOID_MODES}, got {sigmoid!r}")
        self.sigmoid_after_dense = sigmoid == "after_dense"
        self.grid = grid
        self.voxel_encoder = PointVoxelEncoder(grid, point_channels)
        self.sfe = SFE(point_channels, point_channels, layers=2, backend=backend)
        self.sgfe = SGFE(point_channels, 1, point_channels)
        self.bev = BEVUNet(grid.dims[2])
        self.head = SegmentationHead3D(1, GUIDANCE_CHANNELS, 1, guidance=True)

    def forward(self, points: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        voxels = self.voxel_encoder(points, batch_size)
        scores = self.sgfe(self.sfe(voxels))
        if self.sigmoid_after_dense:
            prob = torch.sigmoid(scores.dense())
        else:
            prob = scores.replace_features(torch.sigmoid(scores.features)).dense()
        bev = prob[:, 0].permute(0, 3, 1, 2)  # (B, Z, X, Y): Z voxels as channels
        half = self.bev(bev).permute(0, 2, 3, 1).unsqueeze(1)  # (B, 1, X/2, Y/2, Z/2)
        logits, guidance = self.head(half)
        return logits, guidance


class SGB(nn.Module):
    """Sparse guidance block on seed voxels: SFE + SGFE at the seeds' resolution, the same on a x2 max-pooled
    copy (gathered back), and Linear(3C -> C) on cat[input, level 1, level 2]. (N_s, C) -> (N_s, C)."""

    def __init__(self, channels: int, backend: str = "auto") -> None:
        super().__init__()
        self.sfe1 = SFE(channels, channels, layers=1, backend=backend)
        self.sgfe1 = SGFE(channels, channels, channels)
        self.sfe2 = SFE(channels, channels, layers=1, backend=backend)
        self.sgfe2 = SGFE(channels, channels, channels)
        self.fc_out = nn.Linear(3 * channels, channels)

    def forward(self, seeds: SparseVoxels) -> torch.Tensor:
        level1 = self.sgfe1(self.sfe1(seeds)).features
        half_shape = tuple(-(-s // 2) for s in seeds.spatial_shape)
        coarse = torch.cat([seeds.coords[:, :1], torch.div(seeds.coords[:, 1:], 2, rounding_mode="floor")], 1)
        coarse_coords, inverse = unique_coords(coarse, half_shape)
        down = SparseVoxels(scatter_max(level1, inverse, len(coarse_coords)), coarse_coords, half_shape,
                            seeds.batch_size)
        level2 = self.sgfe2(self.sfe2(down)).features[inverse]
        return self.fc_out(torch.cat([seeds.features, level1, level2], dim=1))


@register_model("sgn")
class SGN(nn.Module):
    """SGN built from a whole parsed config (``model:`` and ``data.grid``; see docs/models.md for the keys).

    forward(batch) takes the collated sample dict (img (B, F, 3, H, W), K (B, F, 3, 3), T_cam_velo (B, F, 4, 4),
    image_hw (B, 2), points (P, 5)) and returns ssc_logits (B, K, X, Y, Z), pts_logits (B, 1, X/2, Y/2, Z/2),
    seed_coords (N_s, 4) int64 (batch, x, y, z at 1:2), sem_logits (N_s, K) and, in training mode (or with
    model.aux_in_eval), occ_logits (B, 1, X/2, Y/2, Z/2)."""

    def __init__(self, cfg: dict) -> None:
        super().__init__()
        m, data = model_sections(cfg, MODEL_KEYS, "SGN")
        self.grid, self.work_grid = scene_grids(data, "SGN", "BEV U-Net, 1:2 grid")
        self.num_classes = int(m.get("num_classes", 20))
        channels = int(m.get("dim", 128))
        backend = m.get("sparse_backend", "auto")
        self.flosp_stride = int(m.get("flosp_stride", 16))
        self.seed_threshold = float(m.get("seed_threshold", 0.0))
        self.aux_in_eval = bool(m.get("aux_in_eval", False))
        self.loss_weights = loss_weights(m, LOSS_NAMES, "SGN")
        class_set = data.get("class_set", "semantic_kitti")
        default_weights = "sgn" if class_set in ("semantic_kitti", "kitti360") else None
        class_weights = resolve_class_weights(m.get("class_weights", default_weights), class_set, self.num_classes)
        self.register_buffer("class_weights", class_weights, persistent=False)
        self.register_buffer("voxel_centers", torch.from_numpy(self.work_grid.voxel_centers()), persistent=False)

        self.image_encoder = ImageEncoder(dict(m.get("backbone") or {}), channels)
        self.bottleneck = nn.Conv3d(channels, channels, 3, padding=1)
        self.occ_header = nn.Sequential(SDB(channels, channels // 2, depth=1),
                                        nn.Conv3d(channels // 2, 1, 3, padding=1))
        self.svpn = SVPN(self.grid, int(m.get("point_channels", 16)), backend,
                         sigmoid=str(m.get("svpn_sigmoid", "before_dense")))
        self.sgb = SGB(channels, backend)
        self.sem_header = SparseHeader(channels, self.num_classes)
        self.mlp_prior = nn.Sequential(nn.Linear(channels, channels // 2), nn.LayerNorm(channels // 2),
                                       nn.LeakyReLU(), nn.Linear(channels // 2, channels))
        self.sdb = SDB(channels + GUIDANCE_CHANNELS, channels // 2, depth=int(m.get("sdb_depth", 3)))
        self.ssc_header = UpsampleHeader(channels // 2, self.num_classes, scale=2)

    def lift(self, batch: dict) -> torch.Tensor:
        """Image features lifted to the 1:2 grid (FLoSP + bottleneck): (B, C, X/2, Y/2, Z/2)."""
        feats = self.image_encoder(batch["img"])
        pix, inside = project_voxels(self.voxel_centers, batch["K"], batch["T_cam_velo"], batch["image_hw"])
        x3d = flosp(feats, pix, inside, self.flosp_stride)
        return self.bottleneck(x3d.view(x3d.shape[0], x3d.shape[1], *self.work_grid.dims))

    def select_seeds(self, pts_logits: torch.Tensor) -> torch.Tensor:
        """(N_s, 4) int64 coords (batch, x, y, z) of voxels with proposal logit > threshold (detached); a sample
        with fewer than 2 such voxels uses all of its voxels."""
        seeds = pts_logits.detach()[:, 0] > self.seed_threshold
        few = seeds.flatten(1).sum(1) < 2
        if bool(few.any()):
            seeds = seeds | few.view(-1, 1, 1, 1)
        return torch.nonzero(seeds)

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        for key in ("img", "K", "T_cam_velo", "image_hw"):
            if key not in batch:
                raise DataFormatError(f"SGN batch has no {key!r} (keys: {sorted(batch)})")
        if "points" not in batch:
            raise DataFormatError("SGN needs pseudo-points: the batch has no 'points' (set data.points.source to "
                                  "lidar, stereo_sgbm or precomputed)")
        points = batch["points"]
        if points.dim() != 2 or points.shape[1] != 5:
            raise DataFormatError(f"SGN batch['points'] must be (P, 5) [batch, x, y, z, intensity] as collate makes "
                                  f"it, got {tuple(points.shape)}")
        x3d = self.lift(batch)
        b, c = x3d.shape[:2]
        pts_logits, guidance = self.svpn(points, b)
        seed_coords = self.select_seeds(pts_logits)
        flat = x3d.permute(0, 2, 3, 4, 1).reshape(-1, c)
        seed_index = linearize_coords(seed_coords, self.work_grid.dims)
        seeds = SparseVoxels(flat[seed_index], seed_coords, self.work_grid.dims, b)
        seed_feats = self.sgb(seeds)
        completed = self.mlp_prior(flat).index_put((seed_index,), seed_feats)
        volume = completed.view(b, *self.work_grid.dims, c).permute(0, 4, 1, 2, 3)
        volume = self.sdb(torch.cat([volume, guidance], dim=1))
        out = {
            "ssc_logits": self.ssc_header(volume),
            "pts_logits": pts_logits,
            "seed_coords": seed_coords,
            "sem_logits": self.sem_header(seed_feats),
        }
        if self.training or self.aux_in_eval:
            out["occ_logits"] = self.occ_header(x3d)
        return out

    def losses(self, outputs: dict, batch: dict) -> dict[str, torch.Tensor]:
        """SGN's six weighted terms: loss_ssc (class-weighted CE), loss_sem_scal, loss_geo_scal (1:1 target),
        loss_sem (Lovász + CE on seeds vs 1:2 target), loss_occ and loss_pts (BCE vs binarised 1:2 target)."""
        for key in ("target", "target_1_2"):
            if key not in batch:
                raise DataFormatError(f"SGN losses need batch[{key!r}] (keys: {sorted(batch)})")
        if "occ_logits" not in outputs:
            raise DataFormatError("SGN outputs have no occ_logits: run the forward in train mode or set "
                                  "model.aux_in_eval: true to compute losses")
        target, target_1_2 = batch["target"].long(), batch["target_1_2"].long()
        logits = outputs["ssc_logits"]
        if target.shape[1:] != logits.shape[2:] or target_1_2.shape[1:] != tuple(self.work_grid.dims):
            raise DataFormatError(f"target shapes {tuple(target.shape)} / {tuple(target_1_2.shape)} do not fit the "
                                  f"grid {self.grid.dims} and its 1:2 grid {self.work_grid.dims}")
        seeds = outputs["seed_coords"]
        seed_target = target_1_2[seeds[:, 0], seeds[:, 1], seeds[:, 2], seeds[:, 3]]
        sem_logits = outputs["sem_logits"]
        terms = {
            "ssc": weighted_ce_loss(logits, target, self.class_weights),
            "sem_scal": sem_scal_loss(logits, target),
            "geo_scal": geo_scal_loss(logits, target),
            "sem": lovasz_softmax_loss(sem_logits, seed_target) + weighted_ce_loss(sem_logits, seed_target),
            "occ": binary_occupancy_loss(outputs["occ_logits"], target_1_2),
            "pts": binary_occupancy_loss(outputs["pts_logits"], target_1_2),
        }
        return {f"loss_{k}": self.loss_weights[k] * v for k, v in terms.items() if self.loss_weights[k] != 0}


