"""Multi-scale deformable attention: both evaluations equal a direct per-point loop (values and gradients), and a
depth-weighted corner evaluation equals trilinear sampling of a depth-lifted volume (the DFA3D construction)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ssc_core.ops.deform_attn import CORNER_OFFSETS, bilinear_corners, ms_deform_attn

SHAPES = [(5, 7), (3, 4)]


def _inputs(seed: int = 0, b: int = 2, q: int = 6, heads: int = 2, d: int = 3, p: int = 3):
    gen = torch.Generator().manual_seed(seed)
    total = sum(h * w for h, w in SHAPES)
    value = torch.randn(b, total, heads, d, generator=gen, dtype=torch.float64)
    # Locations from -0.2 to 1.2: some samples fall partly or wholly outside the maps.
    loc = torch.rand(b, q, heads, len(SHAPES), p, 2, generator=gen, dtype=torch.float64) * 1.4 - 0.2
    weights = torch.rand(b, q, heads, len(SHAPES), p, generator=gen, dtype=torch.float64)
    return value, loc, weights


def _pixel(value, b, head, level, x, y):
    """value of one pixel (D,), zero outside the level (zero padding)."""
    h, w = SHAPES[level]
    if not (0 <= x < w and 0 <= y < h):
        return torch.zeros(value.shape[-1], dtype=value.dtype)
    start = sum(hh * ww for hh, ww in SHAPES[:level])
    return value[b, start + y * w + x, head]


def reference(value, loc, weights, corner_factor=None):
    """The sum written out point by point: bilinear sampling with align_corners=False by hand."""
    b_, q_, heads, levels, p_, _ = loc.shape
    d = value.shape[-1]
    out = torch.zeros(b_, q_, heads * d, dtype=value.dtype)
    for b in range(b_):
        for q in range(q_):
            for head in range(heads):
                acc = torch.zeros(d, dtype=value.dtype)
                for lvl in range(levels):
                    h, w = SHAPES[lvl]
                    for p in range(p_):
                        x = float(loc[b, q, head, lvl, p, 0]) * w - 0.5
                        y = float(loc[b, q, head, lvl, p, 1]) * h - 0.5
                        x0, y0 = math.floor(x), math.floor(y)
                        sample = torch.zeros(d, dtype=value.dtype)
                        for c, (dx, dy) in enumerate(CORNER_OFFSETS):
                            wx = (x - x0) if dx else 1 - (x - x0)
                            wy = (y - y0) if dy else 1 - (y - y0)
                            factor = 1.0 if corner_factor is None else corner_factor(b, q, head, lvl, p, c)
                            sample = sample + wx * wy * factor * _pixel(value, b, head, lvl, x0 + dx, y0 + dy)
                        acc = acc + weights[b, q, head, lvl, p] * sample
                out[b, q, head * d:(head + 1) * d] = acc
    return out


@pytest.mark.parametrize("method", ["grid_sample", "corners"])
def test_ms_deform_attn_equals_a_per_point_reference(method):
    value, loc, weights = _inputs()
    out = ms_deform_attn(value, SHAPES, loc, weights, method=method)
    assert out.shape == (2, 6, 6)
    torch.testing.assert_close(out, reference(value, loc, weights), rtol=1e-10, atol=1e-10)


def test_both_evaluations_give_the_same_gradients():
    grads = []
    for method in ("grid_sample", "corners"):
        value, loc, weights = (t.clone().requires_grad_(True) for t in _inputs(seed=1))
        ms_deform_attn(value, SHAPES, loc, weights, method=method).pow(2).sum().backward()
        grads.append((value.grad, loc.grad, weights.grad))
    for a, b in zip(*grads):
        assert a.abs().sum() > 0
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-8)


def test_corner_weights_scale_each_corner_like_the_reference():
    value, loc, weights = _inputs(seed=2)
    gen = torch.Generator().manual_seed(3)
    factors = torch.rand(*weights.shape, 4, generator=gen, dtype=torch.float64)
    out = ms_deform_attn(value, SHAPES, loc, weights, corner_weights=factors)
    expected = reference(value, loc, weights, lambda *idx: float(factors[idx]))
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)


def test_depth_weighted_corners_equal_trilinear_sampling_of_a_lifted_volume():
    """DFA3D: V(d, y, x) = f(y, x) * p(d | y, x); sampling V trilinearly at (x, y, z) equals the 2D corner
    evaluation with each corner weighted by p at that corner, linearly interpolated at depth z."""
    gen = torch.Generator().manual_seed(4)
    h, w, depth_bins, d = 5, 7, 6, 3
    feats = torch.randn(1, h * w, 1, d, generator=gen, dtype=torch.float64)
    prob = torch.rand(depth_bins, h, w, generator=gen, dtype=torch.float64).softmax(0)
    q, p = 5, 4
    loc3 = torch.rand(1, q, 1, 1, p, 3, generator=gen, dtype=torch.float64)  # (x, y, z) normalised
    weights = torch.rand(1, q, 1, 1, p, generator=gen, dtype=torch.float64)

    xi, yi, _ = bilinear_corners(loc3[..., :2], h, w)
    z = loc3[..., 2:3] * depth_bins - 0.5  # depth in bins, align_corners=False
    z0 = torch.floor(z)
    factors = torch.zeros(xi.shape, dtype=torch.float64)
    for k, wz in ((z0, 1 - (z - z0)), (z0 + 1, z - z0)):
        inside = (k >= 0) & (k <= depth_bins - 1)
        factors = factors + wz * inside * prob[k.clamp(0, depth_bins - 1).long(), yi, xi]
    out = ms_deform_attn(feats, [(h, w)], loc3[..., :2], weights, corner_weights=factors)

    volume = (prob[None] * feats[0, :, 0].T.reshape(d, 1, h, w))[None]  # (1, D, depth, h, w)
    grid = (2 * loc3[0, :, 0, 0] - 1).view(1, q, p, 1, 3)  # (x, y, z) -> (W, H, D) of the volume
    sampled = F.grid_sample(volume, grid, mode="bilinear", align_corners=False)[0, :, :, :, 0]  # (D, q, p)
    expected = (sampled * weights[0, :, 0, 0][None]).sum(-1).T
    torch.testing.assert_close(out[0], expected, rtol=1e-10, atol=1e-10)


def test_bad_shapes_raise_value_errors():
    value, loc, weights = _inputs()
    with pytest.raises(ValueError, match="sum to"):
        ms_deform_attn(value[:, :-1], SHAPES, loc, weights)
    with pytest.raises(ValueError, match="attention_weights"):
        ms_deform_attn(value, SHAPES, loc, weights[..., :1])
    with pytest.raises(ValueError, match="corner_weights"):
        ms_deform_attn(value, SHAPES, loc, weights, corner_weights=torch.ones(2))
    with pytest.raises(ValueError, match="method"):
        ms_deform_attn(value, SHAPES, loc, weights, method="cuda")
