"""L2COcc's stereo depth branch: NATTEN-style neighbourhood cross-attention against a brute-force reference,
gated residuals at initialisation, U-Net shapes and the fused depth distribution."""

from __future__ import annotations

import pytest
import torch

from ssc_core.errors import ConfigError
from ssc_core.models.blocks.stereo_depth import (
    ChannelAttention3D,
    DepthAggregation,
    GatedCrossAttention,
    NeighborhoodCrossAttention,
    SimpleUNet,
    StereoMonoDepth,
    neighborhood_indices,
)

GEN = torch.Generator().manual_seed(0)


def test_neighbourhood_windows_shift_inwards_at_the_borders():
    index, table = neighborhood_indices(5, 6, 3)
    assert index.shape == (30, 9)
    rows_cols = lambda flat: sorted((i // 6, i % 6) for i in flat.tolist())  # noqa: E731
    assert rows_cols(index[2 * 6 + 3]) == [(r, c) for r in (1, 2, 3) for c in (2, 3, 4)]  # interior: centred
    assert rows_cols(index[0]) == [(r, c) for r in (0, 1, 2) for c in (0, 1, 2)]  # corner: shifted
    # the corner pixel sees offsets 0..2 in both axes -> table rows/cols 2..4 of the 5 x 5 bias table
    assert sorted(table[0].tolist()) == [r * 5 + c for r in (2, 3, 4) for c in (2, 3, 4)]
    with pytest.raises(ConfigError, match="odd"):
        neighborhood_indices(4, 4, 5)


def _reference(attn: NeighborhoodCrossAttention, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
    b, h, w, c = q.shape
    k = attn.kernel
    query, (key, value) = attn.q(q) * attn.scale, attn.kv(kv).split(c, dim=-1)
    out = torch.zeros_like(q)
    for i in range(h):
        for j in range(w):
            si, sj = min(max(i - k // 2, 0), h - k), min(max(j - k // 2, 0), w - k)
            keys = key[:, si:si + k, sj:sj + k].reshape(b, k * k, c)
            values = value[:, si:si + k, sj:sj + k].reshape(b, k * k, c)
            bias = torch.stack([attn.bias[0, (si + a - i + k - 1) * (2 * k - 1) + (sj + bb - j + k - 1)]
                                for a in range(k) for bb in range(k)])
            weights = torch.softmax((keys * query[:, i, j, None]).sum(-1) + bias, dim=-1)
            out[:, i, j] = (weights[..., None] * values).sum(1)
    return attn.proj(out)


def test_neighbourhood_attention_equals_a_per_pixel_reference():
    attn = NeighborhoodCrossAttention(8, heads=1, kernel=3)
    q, kv = torch.randn(2, 4, 5, 8, generator=GEN), torch.randn(2, 4, 5, 8, generator=GEN)
    assert torch.allclose(attn(q, kv), _reference(attn, q, kv), atol=1e-5)


def test_gated_residuals_start_as_identities():
    gated = GatedCrossAttention(8, kernel=3)
    q, kv = torch.randn(1, 8, 4, 4, generator=GEN), torch.randn(1, 8, 4, 4, generator=GEN)
    assert torch.equal(gated(q, kv), kv)
    ca = ChannelAttention3D(16)
    x = torch.randn(1, 16, 4, 4, 4, generator=GEN)
    assert torch.equal(ca(x), x)


def test_simple_unet_keeps_shapes_in_2d_and_3d_and_needs_multiples_of_4():
    assert SimpleUNet(6, 2)(torch.randn(1, 6, 8, 12)).shape == (1, 6, 8, 12)
    assert SimpleUNet(4, 3)(torch.randn(1, 4, 8, 4, 12)).shape == (1, 4, 8, 4, 12)
    with pytest.raises(ValueError, match="divisible by 4"):
        SimpleUNet(4, 2)(torch.randn(1, 4, 6, 8))


def test_fused_depth_is_a_distribution_and_follows_the_stereo_one_hot():
    bins = (2.0, 10.0, 0.5)  # 16 bins
    net = StereoMonoDepth(bins, aggregation_channels=8, kernel=3)
    stereo_depth = torch.zeros(2, 32, 64)
    stereo_depth[0, :, :32] = 4.0  # bin 4
    one_hot = net.stereo_one_hot(stereo_depth, (8, 16))
    assert one_hot.shape == (2, 16, 8, 16)
    assert one_hot[0, 4, :, :8].eq(1).all() and one_hot[0, :, :, 8:].eq(0).all() and one_hot[1].eq(0).all()
    prob = net(torch.randn(2, 16, 8, 16, generator=GEN), stereo_depth)
    assert prob.shape == (2, 16, 8, 16)
    assert torch.allclose(prob.sum(1), torch.ones(2, 8, 16), atol=1e-5)
    agg = DepthAggregation(16, 8, kernel=3)
    assert agg(prob, prob).shape == (2, 16, 8, 16)
