"""Deformable-attention layers of the voxel transformers (VoxFormer; L2COcc's EVT reuses the cross-attention), on
``ssc_core.ops.ms_deform_attn``.

- ``MSDeformAttention``: Deformable DETR's sampling core as BEVFormer's ``MSDeformableAttention3D`` has it
  (offsets, attention weights, value projection; no output projection), with mmcv's initialisation.
- ``CameraCrossAttention``: VoxFormer's deformable cross-attention (BEVFormer's spatial cross-attention): each
  query's reference point is projected into every camera; the cameras that see it sample their features around
  the projection; the results are averaged over those cameras, projected, dropped out and added to the query.
- ``PlaneSelfAttention``: VoxFormer's deformable self-attention (BEVFormer's temporal self-attention fed the
  current volume twice): the voxels laid out as a 2D plane in flat index order, two sets of offsets and weights
  from [value, query + position], averaged.
- ``LearnedPlaneEncoding`` (mmcv's LearnedPositionalEncoding on that plane), ``FFN`` and ``TransformerLayer``
  (attention -> LayerNorm -> FFN -> LayerNorm, post-norm as VoxFormer orders it).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ssc_core.errors import ConfigError
from ssc_core.ops.deform_attn import ms_deform_attn


def _direction_bias(heads: int, groups: int, points: int) -> torch.Tensor:
    """mmcv's offset-bias initialisation: head h points along angle 2 pi h / heads (scaled so the larger of
    |cos|, |sin| is 1), point p at (p + 1) times that, repeated over ``groups``.
    Shape (heads * groups * points * 2,)."""
    thetas = torch.arange(heads, dtype=torch.float32) * (2.0 * math.pi / heads)
    grid = torch.stack([thetas.cos(), thetas.sin()], -1)
    grid = (grid / grid.abs().max(-1, keepdim=True)[0]).view(heads, 1, 1, 2).repeat(1, groups, points, 1)
    grid *= torch.arange(1, points + 1, dtype=torch.float32).view(1, 1, points, 1)
    return grid.flatten()


def _xavier(linear: nn.Linear) -> None:
    nn.init.xavier_uniform_(linear.weight)
    nn.init.zeros_(linear.bias)


def _init_sampling(offsets: nn.Linear, weights: nn.Linear, heads: int, groups: int, points: int) -> None:
    """mmcv's start: offsets along each head's direction whatever the query, uniform attention weights."""
    nn.init.zeros_(offsets.weight)
    with torch.no_grad():
        offsets.bias.copy_(_direction_bias(heads, groups, points))
    nn.init.zeros_(weights.weight)
    nn.init.zeros_(weights.bias)


class MSDeformAttention(nn.Module):
    """Deformable attention sampling core. ``forward(query (B, Q, C), value (B, S, C), reference_points (B, Q, A,
    2), spatial_shapes [(h, w), ...], corner_weights=None) -> (B, Q, C)``.

    Offsets are predicted in pixels of each level and added to the normalised reference points (x, y in [0, 1]);
    with A > 1 anchors per query the ``points`` samples are split evenly over the anchors (BEVFormer's pillars).
    ``corner_weights`` passes through to ``ms_deform_attn`` (a depth-aware variant's per-corner factors)."""

    def __init__(self, channels: int, heads: int = 8, levels: int = 1, points: int = 8) -> None:
        super().__init__()
        if channels % heads:
            raise ConfigError(f"attention channels {channels} must be divisible by the number of heads {heads}")
        self.channels, self.heads, self.levels, self.points = channels, heads, levels, points
        self.sampling_offsets = nn.Linear(channels, heads * levels * points * 2)
        self.attention_weights = nn.Linear(channels, heads * levels * points)
        self.value_proj = nn.Linear(channels, channels)
        _init_sampling(self.sampling_offsets, self.attention_weights, heads, levels, points)
        _xavier(self.value_proj)

    def forward(self, query: torch.Tensor, value: torch.Tensor, reference_points: torch.Tensor,
                spatial_shapes: list[tuple[int, int]], corner_weights: torch.Tensor | None = None) -> torch.Tensor:
        b, q, _ = query.shape
        anchors = reference_points.shape[2]
        if self.points % anchors:
            raise ConfigError(f"{self.points} sampling points cannot be split over {anchors} anchors")
        value = self.value_proj(value).view(b, value.shape[1], self.heads, -1)
        offsets = self.sampling_offsets(query).view(b, q, self.heads, self.levels, self.points, 2)
        weights = self.attention_weights(query).view(b, q, self.heads, self.levels * self.points).softmax(-1)
        weights = weights.view(b, q, self.heads, self.levels, self.points)
        hw = torch.tensor(spatial_shapes, dtype=offsets.dtype, device=offsets.device)  # (L, 2) = (h, w)
        offsets = offsets / hw.flip(-1)[None, None, None, :, None, :]
        offsets = offsets.view(b, q, self.heads, self.levels, self.points // anchors, anchors, 2)
        locations = reference_points[:, :, None, None, None, :, :] + offsets
        locations = locations.view(b, q, self.heads, self.levels, self.points, 2)
        return ms_deform_attn(value, spatial_shapes, locations, weights, corner_weights=corner_weights)


class CameraCrossAttention(nn.Module):
    """Deformable cross-attention from voxel queries to the features of several cameras (one sample).

    forward(query (Q, C), value (F, S, C) flattened features of the F cameras, ref_cam (F, Q, 2) normalised image
    coordinates (x, y) of each query's reference point in each camera, visible (F, Q) bool, spatial_shapes of the
    feature levels) -> (Q, C): the sum over the cameras that see a query of MSDeformAttention around its
    projection, divided by their count (at least 1), then output_proj, dropout, plus the query."""

    def __init__(self, channels: int, heads: int = 8, levels: int = 1, points: int = 8, dropout: float = 0.1) -> None:
        super().__init__()
        self.deformable_attention = MSDeformAttention(channels, heads, levels, points)
        self.output_proj = nn.Linear(channels, channels)
        self.dropout = nn.Dropout(dropout)
        _xavier(self.output_proj)

    def forward(self, query: torch.Tensor, value: torch.Tensor, ref_cam: torch.Tensor, visible: torch.Tensor,
                spatial_shapes: list[tuple[int, int]]) -> torch.Tensor:
        slots = torch.zeros_like(query)
        for cam in range(value.shape[0]):
            index = torch.nonzero(visible[cam]).squeeze(1)
            if not len(index):
                continue
            out = self.deformable_attention(query[index][None], value[cam:cam + 1], ref_cam[cam, index][None, :, None],
                                            spatial_shapes)
            slots = slots.index_add(0, index, out[0])
        count = visible.sum(0).clamp(min=1).to(query.dtype)
        return self.dropout(self.output_proj(slots / count[:, None])) + query


class PlaneSelfAttention(nn.Module):
    """Deformable self-attention over all voxels laid out as an (h, w) plane in flat index order (VoxFormer's
    2D variant). forward(query (B, N, C), pos (B, N, C) or None) -> (B, N, C), N = h * w.

    As BEVFormer's temporal self-attention fed the same volume as 'previous' and 'current' BEV: offsets and weights
    come from [query, query + pos] (2C) for ``queues`` = 2 copies of the value, each softmax-normalised over its
    points; the copies are averaged, projected, dropped out and added to the query."""

    def __init__(self, channels: int, plane: tuple[int, int], heads: int = 8, points: int = 8, dropout: float = 0.1,
                 queues: int = 2) -> None:
        super().__init__()
        if channels % heads:
            raise ConfigError(f"attention channels {channels} must be divisible by the number of heads {heads}")
        self.channels, self.heads, self.points, self.queues = channels, heads, points, queues
        self.plane = (int(plane[0]), int(plane[1]))
        self.sampling_offsets = nn.Linear(queues * channels, queues * heads * points * 2)
        self.attention_weights = nn.Linear(queues * channels, queues * heads * points)
        self.value_proj = nn.Linear(channels, channels)
        self.output_proj = nn.Linear(channels, channels)
        self.dropout = nn.Dropout(dropout)
        _init_sampling(self.sampling_offsets, self.attention_weights, heads, queues, points)
        _xavier(self.value_proj)
        _xavier(self.output_proj)
        h, w = self.plane
        rows, cols = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        ref = torch.stack([(cols.flatten() + 0.5) / w, (rows.flatten() + 0.5) / h], -1)
        self.register_buffer("reference_points", ref.float(), persistent=False)

    def forward(self, query: torch.Tensor, pos: torch.Tensor | None = None) -> torch.Tensor:
        b, n, c = query.shape
        h, w = self.plane
        if n != h * w:
            raise ConfigError(f"self-attention plane {self.plane} holds {h * w} voxels, the volume has {n}")
        mixed = torch.cat([query, query if pos is None else query + pos], -1)
        value = self.value_proj(query).view(b, n, self.heads, c // self.heads)
        offsets = self.sampling_offsets(mixed).view(b, n, self.heads, self.queues, self.points, 2)
        weights = self.attention_weights(mixed).view(b, n, self.heads, self.queues, self.points).softmax(-1)
        offsets = offsets / torch.tensor([w, h], dtype=offsets.dtype, device=offsets.device)
        locations = self.reference_points.to(offsets.dtype)[None, :, None, None, None, :] + offsets
        # The queues read the same value: treat their points as one set on one level, weights halved (the mean).
        locations = locations.reshape(b, n, self.heads, 1, self.queues * self.points, 2)
        weights = (weights / self.queues).reshape(b, n, self.heads, 1, self.queues * self.points)
        out = ms_deform_attn(value, [self.plane], locations, weights)
        return self.dropout(self.output_proj(out)) + query


class LearnedPlaneEncoding(nn.Module):
    """mmcv's LearnedPositionalEncoding on an (h, w) plane: position (row, col) -> cat(col_embed[col],
    row_embed[row]). forward() -> (h * w, 2 * features) in flat index order (row * w + col)."""

    def __init__(self, features: int, plane: tuple[int, int]) -> None:
        super().__init__()
        self.plane = (int(plane[0]), int(plane[1]))
        self.row_embed = nn.Embedding(self.plane[0], features)
        self.col_embed = nn.Embedding(self.plane[1], features)
        nn.init.uniform_(self.row_embed.weight)
        nn.init.uniform_(self.col_embed.weight)

    def forward(self) -> torch.Tensor:
        h, w = self.plane
        cols = self.col_embed.weight[None].expand(h, w, -1)
        rows = self.row_embed.weight[:, None].expand(h, w, -1)
        return torch.cat([cols, rows], -1).reshape(h * w, -1)


class FFN(nn.Module):
    """Linear (C -> hidden) -> ReLU -> dropout -> Linear (hidden -> C) -> dropout, plus the input. (..., C)."""

    def __init__(self, channels: int, hidden: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
                                    nn.Linear(hidden, channels), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)


class TransformerLayer(nn.Module):
    """attention (a module whose output already includes the residual) -> LayerNorm -> FFN -> LayerNorm.
    forward(x, *args) passes ``args`` to the attention."""

    def __init__(self, attention: nn.Module, channels: int, ffn_hidden: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.attention = attention
        self.norm1 = nn.LayerNorm(channels)
        self.ffn = FFN(channels, ffn_hidden, dropout)
        self.norm2 = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor, *args: object) -> torch.Tensor:
        return self.norm2(self.ffn(self.norm1(self.attention(x, *args))))
