"""L2COcc's efficient voxel transformer (EVT, fact sheet §2.1) and its voxel proposals from stereo depth.

- ``stereo_proposals``: every pixel with a stereo depth is back-projected (the sample's image transform undone,
  P2's column-4 shift, K^-1, camera -> LiDAR) and the voxels of the work grid it lands in become proposals.
- ``DepthCrossAttention``: DFA3D cross-attention of voxel queries to one camera's feature map: each query's
  voxel centre is projected to (u, v, depth), and 8 heads x 8 points sample the features with depth-aware
  deformable attention (``ssc_core.ops.depth_deform_attn``) against the depth distribution; queries that do not
  project into the image get nothing from the image (a zero slot); output projection, dropout, residual.
- ``EVT``: the lift-splat volume's features at the proposed voxels are the queries of three layers of
  (DepthCrossAttention -> LayerNorm -> FFN -> LayerNorm); every other voxel gets ``mlp_prior`` of its lift-splat
  feature. No self-attention and no learned query embedding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ssc_core.errors import ConfigError
from ssc_core.models.blocks.lss import frustum_to_lidar, voxel_index
from ssc_core.ops.depth_attn import depth_deform_attn
from ssc_core.types import GridSpec

EPS = 1e-5


def project_to_image(points: torch.Tensor, P2: torch.Tensor, T_cam_velo: torch.Tensor, post_rot: torch.Tensor,
                     post_tran: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """LiDAR-frame points (N, 3) -> (uv (N, 2) pixels of the image tensor, depth (N,) metres): ``P2 @ T_cam_velo``
    (P2 (3, 4) raw, its 4th column included; T_cam_velo (4, 4) LiDAR -> camera 0), divided by depth (clamped at
    1e-5), then the image transform ``post_rot`` (3, 3) / ``post_tran`` (3,). Computed in float32."""
    homo = torch.cat([points.float(), points.new_ones(len(points), 1, dtype=torch.float32)], dim=1)
    cam = homo @ (P2.float() @ T_cam_velo.float()).T
    depth = cam[:, 2]
    uv = cam[:, :2] / depth.clamp(min=EPS).unsqueeze(1)
    return uv @ post_rot.float()[:2, :2].T + post_tran.float()[:2], depth


def stereo_proposals(stereo_depth: torch.Tensor, P2: torch.Tensor, post_rot: torch.Tensor, post_tran: torch.Tensor,
                     T_velo_cam: torch.Tensor, grid: GridSpec) -> torch.Tensor:
    """(B, H, W) stereo depth of the image tensor's pixels (0 = none) -> (B, X, Y, Z) bool: voxels of ``grid``
    holding at least one back-projected pixel. P2 (B, 3, 4), post_rot (B, 3, 3), post_tran (B, 3), T_velo_cam
    (B, 4, 4) camera 0 -> LiDAR. (The release also back-projects depth-0 pixels, which all land at the camera
    centre; they are skipped here.)"""
    b, h, w = stereo_depth.shape
    occupancy = torch.zeros(b * grid.num_voxels + 1, dtype=torch.bool, device=stereo_depth.device)
    u = torch.arange(w, device=stereo_depth.device, dtype=torch.float32).view(1, w).expand(h, w)
    v = torch.arange(h, device=stereo_depth.device, dtype=torch.float32).view(h, 1).expand(h, w)
    for i in range(b):
        frustum = torch.stack([u, v, stereo_depth[i].float()], dim=-1).unsqueeze(0)  # (1, H, W, 3)
        points = frustum_to_lidar(frustum, P2[i:i + 1, None], post_rot[i:i + 1, None], post_tran[i:i + 1, None],
                                  T_velo_cam[i:i + 1, None])
        valid = (stereo_depth[i] > 0).reshape(-1)
        index = voxel_index(points.reshape(1, -1, 3)[:, valid], grid) + i * grid.num_voxels
        index[index >= (i + 1) * grid.num_voxels] = b * grid.num_voxels  # outside the grid: the discard slot
        occupancy[index] = True
    return occupancy[:-1].view(b, *grid.dims)


class DepthCrossAttention(nn.Module):
    """DFA3D cross-attention of (Q, C) queries with normalised (u, v, depth) reference points to one feature map.

    forward(queries (Q, C), reference (Q, 3), visible (Q,) bool, value (S, C) image features of an (h, w) map,
    depth_prob (S, D)) -> (Q, C). Offsets (in pixels / bins, divided by (w, h, D)) and attention weights come from
    linear layers of the queries, initialised as Deformable DETR / DFA3D do (zero weights, offset biases along
    head directions growing with the point index); camera and level embeddings are added to the values."""

    def __init__(self, channels: int, heads: int = 8, points: int = 8, dropout: float = 0.1) -> None:
        super().__init__()
        if channels % heads:
            raise ConfigError(f"EVT channels {channels} must be divisible by its {heads} heads")
        self.channels, self.heads, self.points = channels, heads, points
        self.sampling_offsets = nn.Linear(channels, heads * points * 2)
        self.depth_offsets = nn.Linear(channels, heads * points)
        self.attention_weights = nn.Linear(channels, heads * points)
        self.value_proj = nn.Linear(channels, channels)
        self.output_proj = nn.Linear(channels, channels)
        self.camera_embed = nn.Parameter(torch.empty(channels))
        self.level_embed = nn.Parameter(torch.empty(channels))
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Deformable DETR's initialisation plus DFA3D's for the depth offsets."""
        for layer in (self.sampling_offsets, self.depth_offsets, self.attention_weights):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        theta = torch.arange(self.heads, dtype=torch.float32) * (2.0 * math.pi / self.heads)
        direction = torch.stack([theta.cos(), theta.sin()], -1)
        direction = direction / direction.abs().max(-1, keepdim=True).values
        scale = torch.arange(1, self.points + 1, dtype=torch.float32).view(1, -1, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_((direction.view(-1, 1, 2) * scale).reshape(-1))
            depth_dir = ((theta.cos() + theta.sin()) / 2).view(-1, 1, 1)
            self.depth_offsets.bias.copy_((depth_dir * scale).reshape(-1))
        for layer in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        nn.init.normal_(self.camera_embed)
        nn.init.normal_(self.level_embed)

    def forward(self, queries: torch.Tensor, reference: torch.Tensor, visible: torch.Tensor, value: torch.Tensor,
                depth_prob: torch.Tensor, feature_hw: Sequence[int]) -> torch.Tensor:
        h, w = (int(v) for v in feature_hw)
        slots = queries.new_zeros(queries.shape)
        index = torch.nonzero(visible).squeeze(1)
        if len(index):
            q = queries[index]
            n, heads, points = len(index), self.heads, self.points
            depth_bins = depth_prob.shape[-1]
            values = self.value_proj(value + self.camera_embed + self.level_embed)
            values = values.view(1, h * w, heads, self.channels // heads)
            normaliser = q.new_tensor([w, h, depth_bins])
            offsets = torch.cat([self.sampling_offsets(q).view(n, heads, points, 2),
                                 self.depth_offsets(q).view(n, heads, points, 1)], dim=-1) / normaliser
            locations = reference[index].view(n, 1, 1, 3) + offsets  # (n, heads, points, 3)
            weights = self.attention_weights(q).view(n, heads, points).softmax(-1)
            slots[index] = depth_deform_attn(values, depth_prob.unsqueeze(0).to(values.dtype), [(h, w)],
                                             locations.view(1, n, heads, 1, points, 3),
                                             weights.view(1, n, heads, 1, points))[0]
        return self.dropout(self.output_proj(slots)) + queries


class EVTLayer(nn.Module):
    """DepthCrossAttention -> LayerNorm -> FFN (C -> ffn_channels -> C, ReLU, dropout, residual) -> LayerNorm."""

    def __init__(self, channels: int, heads: int = 8, points: int = 8, ffn_channels: int = 256,
                 dropout: float = 0.1) -> None:
        super().__init__()
        self.attention = DepthCrossAttention(channels, heads, points, dropout)
        self.norm1 = nn.LayerNorm(channels)
        self.ffn = nn.Sequential(nn.Linear(channels, ffn_channels), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                 nn.Linear(ffn_channels, channels), nn.Dropout(dropout))
        self.norm2 = nn.LayerNorm(channels)

    def forward(self, queries: torch.Tensor, *attention_args) -> torch.Tensor:
        x = self.norm1(self.attention(queries, *attention_args))
        return self.norm2(x + self.ffn(x))


class EVT(nn.Module):
    """forward(volume (B, C, X, Y, Z) lift-splat features, proposals (B, X, Y, Z) bool, context (B, C, h, w) image
    features, depth_prob (B, D, h, w), P2 (B, 3, 4), T_cam_velo (B, 4, 4), post_rot (B, 3, 3), post_tran (B, 3),
    image_hw (H, W)) -> (B, C, X, Y, Z). A sample with fewer than two proposals treats every voxel as one (as the
    release does).

    grid: the work grid of the volume; depth_range: (near, far) metres the depth axis of ``depth_prob`` spans (the
    bins' edges, 1.75 .. 57.75 m for L2COcc's 112 bins of 0.5 m from 2 m), which normalises each reference
    point's depth; layers / heads / points / ffn_channels / dropout as in the release (3 / 8 / 8 / 2C / 0.1)."""

    def __init__(self, channels: int, grid: GridSpec, depth_range: Sequence[float], layers: int = 3, heads: int = 8,
                 points: int = 8, ffn_channels: int | None = None, dropout: float = 0.1) -> None:
        super().__init__()
        self.grid = grid
        self.depth_range = (float(depth_range[0]), float(depth_range[1]))
        self.layers = nn.ModuleList(EVTLayer(channels, heads, points, ffn_channels or 2 * channels, dropout)
                                    for _ in range(layers))
        self.mlp_prior = nn.Sequential(nn.Linear(channels, channels // 2), nn.LayerNorm(channels // 2),
                                       nn.LeakyReLU(), nn.Linear(channels // 2, channels))
        self.register_buffer("voxel_centers", torch.from_numpy(grid.voxel_centers()), persistent=False)

    def reference_points(self, P2: torch.Tensor, T_cam_velo: torch.Tensor, post_rot: torch.Tensor,
                         post_tran: torch.Tensor, image_hw: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3) normalised (u / W, v / H, depth in the depth range) of every voxel centre of one sample, and the
        (N,) mask of those in front of the camera and inside the image."""
        uv, depth = project_to_image(self.voxel_centers, P2, T_cam_velo, post_rot, post_tran)
        height, width = (float(v) for v in image_hw)
        near, far = self.depth_range
        ref = torch.stack([uv[:, 0] / width, uv[:, 1] / height, (depth - near) / (far - near)], dim=1)
        visible = (depth > EPS) & (ref[:, 0] > EPS) & (ref[:, 0] < 1 - EPS) & (ref[:, 1] > EPS) & (ref[:, 1] < 1 - EPS)
        return ref, visible

    def forward(self, volume: torch.Tensor, proposals: torch.Tensor, context: torch.Tensor, depth_prob: torch.Tensor,
                P2: torch.Tensor, T_cam_velo: torch.Tensor, post_rot: torch.Tensor, post_tran: torch.Tensor,
                image_hw: Sequence[int]) -> torch.Tensor:
        b, c = volume.shape[:2]
        h, w = context.shape[2:]
        out = []
        for i in range(b):
            flat = volume[i].flatten(1).T  # (N, C)
            chosen = proposals[i].reshape(-1)
            if int(chosen.sum()) < 2:
                chosen = torch.ones_like(chosen)
            seeds = torch.nonzero(chosen).squeeze(1)
            ref, visible = self.reference_points(P2[i], T_cam_velo[i], post_rot[i], post_tran[i], image_hw)
            queries = flat[seeds]
            value = context[i].flatten(1).T
            dist = depth_prob[i].flatten(1).T
            for layer in self.layers:
                queries = layer(queries, ref[seeds], visible[seeds], value, dist, (h, w))
            rest = torch.nonzero(~chosen).squeeze(1)
            feats = flat.new_zeros(flat.shape).index_copy(0, seeds, queries)
            feats = feats.index_copy(0, rest, self.mlp_prior(flat[rest]))
            out.append(feats.T.reshape(c, *volume.shape[2:]))
        return torch.stack(out)
