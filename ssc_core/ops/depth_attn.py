"""Depth-aware 3D deformable attention (DFA3D, as L2COcc / CGFormer's EVT uses it) on top of ``ms_deform_attn``.

Image features f(y, x) are lifted by a per-pixel depth distribution p(d | y, x) into V(d, y, x) = p(d | y, x) f(y, x)
and sampled trilinearly at (x, y, z) locations. That is the 2D bilinear sample of f with each of its four corner
pixels weighted by p at that pixel, linearly interpolated at depth z (``ms_deform_attn``'s ``corner_weights``),
which never builds the (C, D, h, w) volume and reads only two depth bins per corner.

Locations are (x, y, z) normalised to [0, 1] per level with ``align_corners=False`` conventions on all three axes:
bin k of D spans z in [k / D, (k + 1) / D) and its centre is at (k + 0.5) / D. Outside the depth range the weight
is 0, as for x and y.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ssc_core.ops.deform_attn import bilinear_corners, ms_deform_attn


def depth_corner_weights(depth_prob: torch.Tensor, spatial_shapes: Sequence[Sequence[int]],
                         locations: torch.Tensor) -> torch.Tensor:
    """Per-corner depth factors for ``ms_deform_attn``.

    depth_prob (B, S, D): the levels' depth distributions flattened as the values are (level l holds h_l * w_l
    pixels); locations (B, Q, H, L, P, 3) normalised (x, y, z). Returns (B, Q, H, L, P, 4) in CORNER_OFFSETS
    order: p(z | corner pixel) linearly interpolated between the two nearest bin centres, 0 outside the bins."""
    b, q, heads, levels, points, _ = locations.shape
    depth_bins = depth_prob.shape[-1]
    out, start = [], 0
    for level, (h, w) in enumerate((int(h), int(w)) for h, w in spatial_shapes):
        flat = depth_prob[:, start:start + h * w].reshape(b, h * w * depth_bins)
        start += h * w
        loc = locations[:, :, :, level]  # (B, Q, H, P, 3)
        xi, yi, _ = bilinear_corners(loc[..., :2], h, w)  # (B, Q, H, P, 4)
        z = loc[..., 2:3] * depth_bins - 0.5
        z0 = torch.floor(z)
        factor = torch.zeros(xi.shape, dtype=depth_prob.dtype, device=depth_prob.device)
        for bin_index, weight in ((z0, 1 - (z - z0)), (z0 + 1, z - z0)):
            inside = (bin_index >= 0) & (bin_index <= depth_bins - 1)
            index = (yi * w + xi) * depth_bins + bin_index.clamp(0, depth_bins - 1).long()
            gathered = torch.gather(flat, 1, index.reshape(b, -1)).view(index.shape)
            factor = factor + (weight * inside).to(factor.dtype) * gathered
        out.append(factor)
    return torch.stack(out, dim=3)


def depth_deform_attn(value: torch.Tensor, depth_prob: torch.Tensor, spatial_shapes: Sequence[Sequence[int]],
                      locations: torch.Tensor, attention_weights: torch.Tensor) -> torch.Tensor:
    """DFA3D: value (B, S, H, C_h), depth_prob (B, S, D), locations (B, Q, H, L, P, 3) normalised (x, y, z),
    attention_weights (B, Q, H, L, P) -> (B, Q, H * C_h), the depth-weighted deformable attention of the module
    docstring."""
    factors = depth_corner_weights(depth_prob, spatial_shapes, locations)
    return ms_deform_attn(value, spatial_shapes, locations[..., :2].contiguous(), attention_weights,
                          corner_weights=factors)
