"""Multi-scale deformable attention (Deformable DETR, as BEVFormer / VoxFormer / CGFormer use it) in pure PyTorch.

The operator mixes, for every query and head, ``P`` bilinear samples from each of ``L`` feature levels with
attention weights:

    out[b, q, h] = sum_l sum_p A[b, q, h, l, p] * bilinear(value_l[b, :, h], loc[b, q, h, l, p])

Conventions (mmcv's ``multi_scale_deformable_attn_pytorch``, so weights trained there mean the same here):

- ``value`` (B, S, H, D): the levels flattened row-major (level l holds ``spatial_shapes[l] = (h_l, w_l)`` and
  starts at ``sum_{k<l} h_k w_k``), H heads of D channels each;
- ``sampling_locations`` (B, Q, H, L, P, 2): (x, y) normalised to the level, (0, 0) the top-left corner of its
  top-left pixel and (1, 1) the bottom-right corner of its bottom-right pixel (``align_corners=False``); pixel
  centres sit at ((i + 0.5) / w, (j + 0.5) / h). Samples outside read zeros (zero padding);
- ``attention_weights`` (B, Q, H, L, P), typically a softmax over L * P;
- output (B, Q, H * D).

Two evaluations of the same sum:

- ``grid_sample`` (default): one ``F.grid_sample`` per level, the fastest pure-PyTorch route;
- corner gather: the four bilinear corners of every sample are gathered explicitly (``bilinear_corners``), which
  lets a caller weight each corner separately through ``corner_weights`` (B, Q, H, L, P, 4). A depth-aware 3D
  variant (DFA3D: features lifted by a per-pixel depth distribution and sampled trilinearly) is exactly this with
  ``corner_weights`` = the depth distribution at each corner pixel, linearly interpolated at the sample's depth;
  ``test/test_deform_attn.py`` checks that against a trilinear ``grid_sample`` of the lifted volume.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

# Corner order of ``bilinear_corners`` and ``corner_weights``: (dx, dy) offsets from the floor pixel.
CORNER_OFFSETS = ((0, 0), (1, 0), (0, 1), (1, 1))  # top-left, top-right, bottom-left, bottom-right


def _shapes(spatial_shapes: torch.Tensor | Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    if isinstance(spatial_shapes, torch.Tensor):
        spatial_shapes = spatial_shapes.tolist()
    return [(int(h), int(w)) for h, w in spatial_shapes]


def _check(value: torch.Tensor, shapes: list[tuple[int, int]], locations: torch.Tensor,
           weights: torch.Tensor) -> None:
    if value.dim() != 4:
        raise ValueError(f"value must be (B, S, heads, D), got {tuple(value.shape)}")
    total = sum(h * w for h, w in shapes)
    if value.shape[1] != total:
        raise ValueError(f"value holds {value.shape[1]} positions but spatial_shapes {shapes} sum to {total}")
    b, _, heads, _ = value.shape
    if locations.dim() != 6 or locations.shape[-1] != 2 or tuple(locations.shape[:1]) + tuple(
            locations.shape[2:4]) != (b, heads, len(shapes)):
        raise ValueError(f"sampling_locations must be (B={b}, Q, heads={heads}, L={len(shapes)}, P, 2), "
                         f"got {tuple(locations.shape)}")
    if tuple(weights.shape) != tuple(locations.shape[:-1]):
        raise ValueError(f"attention_weights must be {tuple(locations.shape[:-1])}, got {tuple(weights.shape)}")


def level_views(value: torch.Tensor, spatial_shapes: torch.Tensor | Sequence[Sequence[int]]) -> list[torch.Tensor]:
    """Split flattened (B, S, H, D) values into one (B * H, D, h_l, w_l) map per level."""
    b, _, heads, d = value.shape
    maps, start = [], 0
    for h, w in _shapes(spatial_shapes):
        level = value[:, start:start + h * w]
        maps.append(level.permute(0, 2, 3, 1).reshape(b * heads, d, h, w))
        start += h * w
    return maps


def bilinear_corners(locations: torch.Tensor, height: int, width: int) -> tuple[torch.Tensor, torch.Tensor,
                                                                                 torch.Tensor]:
    """The four pixels a bilinear sample reads (``align_corners=False``, zero padding).

    locations: (..., 2) normalised (x, y). Returns (x index (..., 4) int64, y index (..., 4) int64, weight (..., 4)
    in the locations' dtype), corners in CORNER_OFFSETS order; corners outside the map get weight 0 and an index
    clamped into it, so they can be gathered safely."""
    x = locations[..., 0] * width - 0.5
    y = locations[..., 1] * height - 0.5
    x0, y0 = torch.floor(x), torch.floor(y)
    fx, fy = x - x0, y - y0
    xs, ys, ws = [], [], []
    for dx, dy in CORNER_OFFSETS:
        cx, cy = x0 + dx, y0 + dy
        w = (fx if dx else 1 - fx) * (fy if dy else 1 - fy)
        inside = (cx >= 0) & (cx <= width - 1) & (cy >= 0) & (cy <= height - 1)
        xs.append(cx.clamp(0, width - 1).long())
        ys.append(cy.clamp(0, height - 1).long())
        ws.append(w * inside.to(w.dtype))
    return torch.stack(xs, -1), torch.stack(ys, -1), torch.stack(ws, -1)


def _sample_grid(maps: list[torch.Tensor], locations: torch.Tensor) -> torch.Tensor:
    """(B * H, D, Q, L * P) bilinear samples through grid_sample."""
    b, q, heads, _, p, _ = locations.shape
    grids = (2 * locations - 1).permute(0, 2, 1, 3, 4, 5).reshape(b * heads, q, len(maps), p, 2)
    samples = [F.grid_sample(m, grids[:, :, lvl].to(m.dtype), mode="bilinear", padding_mode="zeros",
                             align_corners=False) for lvl, m in enumerate(maps)]
    return torch.cat(samples, dim=-1)


def _sample_corners(maps: list[torch.Tensor], locations: torch.Tensor,
                    corner_weights: torch.Tensor | None) -> torch.Tensor:
    """(B * H, D, Q, L * P) bilinear samples by gathering the four corners, each optionally re-weighted."""
    b, q, heads, _, p, _ = locations.shape
    samples = []
    for lvl, m in enumerate(maps):
        bh, d, h, w = m.shape
        loc = locations[:, :, :, lvl].permute(0, 2, 1, 3, 4).reshape(bh, q * p, 2)
        xi, yi, wgt = bilinear_corners(loc, h, w)
        if corner_weights is not None:
            cw = corner_weights[:, :, :, lvl].permute(0, 2, 1, 3, 4).reshape(bh, q * p, 4)
            wgt = wgt * cw.to(wgt.dtype)
        index = (yi * w + xi).reshape(bh, 1, q * p * 4).expand(bh, d, -1)
        gathered = torch.gather(m.flatten(2), 2, index).view(bh, d, q * p, 4)
        samples.append((gathered * wgt.unsqueeze(1).to(m.dtype)).sum(-1).view(bh, d, q, p))
    return torch.cat(samples, dim=-1)


def ms_deform_attn(value: torch.Tensor, spatial_shapes: torch.Tensor | Sequence[Sequence[int]],
                   sampling_locations: torch.Tensor, attention_weights: torch.Tensor,
                   corner_weights: torch.Tensor | None = None, method: str = "grid_sample") -> torch.Tensor:
    """Multi-scale deformable attention (see the module docstring for shapes and conventions).

    value (B, S, H, D); spatial_shapes (L, 2) [(h, w), ...]; sampling_locations (B, Q, H, L, P, 2);
    attention_weights (B, Q, H, L, P); corner_weights None or (B, Q, H, L, P, 4) extra per-corner factors
    (CORNER_OFFSETS order; forces the corner-gather evaluation); method 'grid_sample' or 'corners'.
    Returns (B, Q, H * D) in the value's dtype."""
    shapes = _shapes(spatial_shapes)
    _check(value, shapes, sampling_locations, attention_weights)
    if method not in ("grid_sample", "corners"):
        raise ValueError(f"method must be 'grid_sample' or 'corners', got {method!r}")
    b, q, heads, levels, p, _ = sampling_locations.shape
    maps = level_views(value, shapes)
    if corner_weights is None and method == "grid_sample":
        samples = _sample_grid(maps, sampling_locations)
    else:
        if corner_weights is not None and tuple(corner_weights.shape) != (b, q, heads, levels, p, 4):
            raise ValueError(f"corner_weights must be {(b, q, heads, levels, p, 4)}, got "
                             f"{tuple(corner_weights.shape)}")
        samples = _sample_corners(maps, sampling_locations, corner_weights)
    weights = attention_weights.permute(0, 2, 1, 3, 4).reshape(b * heads, 1, q, levels * p)
    out = (samples * weights.to(samples.dtype)).sum(-1)  # (B * H, D, Q)
    return out.view(b, heads * value.shape[-1], q).transpose(1, 2).contiguous()
