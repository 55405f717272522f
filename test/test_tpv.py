"""The TPV network of L2COcc and GeneralizedLSSFPN: pooling semantics, the shared stride-1 Swin on non-square
planes, the aggregator's convex fusion, and loading ImageNet Swin weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ssc_core.errors import CheckpointMismatchError, ConfigError
from ssc_core.models.blocks.lss_fpn import GeneralizedLSSFPN
from ssc_core.models.blocks.tpv import PlaneSwin, TPVAggregator, TPVNetwork, TPVPooler, broadcast_planes

SMALL_SWIN = {"embed_dim": 8, "depths": [1, 1, 1, 1], "num_heads": [1, 1, 2, 2], "drop_path_rate": 0.0}


def test_pooler_with_equal_logits_is_the_mean_along_each_collapsed_axis():
    pooler = TPVPooler(4)
    nn.init.zeros_(pooler.weights.weight)
    volume = torch.randn(2, 4, 6, 5, 3)
    xy, yz, zx = pooler.pool(volume)
    assert torch.allclose(xy, volume.mean(dim=4), atol=1e-6)
    assert torch.allclose(yz, volume.mean(dim=2), atol=1e-6)
    assert torch.allclose(zx, volume.mean(dim=3), atol=1e-6)
    assert [tuple(p.shape) for p in pooler(volume)] == [(2, 4, 6, 5), (2, 4, 5, 3), (2, 4, 6, 3)]


def test_pooler_follows_a_dominant_logit_along_the_axis():
    pooler = TPVPooler(2)
    with torch.no_grad():
        pooler.weights.weight.zero_()
        pooler.weights.weight[0, 0] = 1.0  # the xy logit is channel 0 of the volume
    volume = torch.zeros(1, 2, 3, 3, 4)
    volume[0, 0, :, :, 2] = 50.0  # channel 0 huge at z = 2: the xy softmax puts all weight there
    volume[0, 1] = torch.arange(4.0).view(1, 1, 4)
    xy = pooler.pool(volume)[0]
    assert torch.allclose(xy[0, 1], torch.full((3, 3), 2.0), atol=1e-5)


def test_one_swin_serves_square_and_flat_planes_at_stride_one():
    swin = PlaneSwin(16, **SMALL_SWIN)
    planes = [torch.randn(1, 16, 32, 32), torch.randn(1, 16, 32, 4), torch.randn(1, 16, 32, 4)]
    outs = swin(planes)
    assert swin.out_channels == [16, 32, 64]
    assert [tuple(f.shape) for f in outs[0]] == [(1, 16, 16, 16), (1, 32, 8, 8), (1, 64, 4, 4)]
    assert [tuple(f.shape) for f in outs[1]] == [(1, 16, 16, 2), (1, 32, 8, 1), (1, 64, 4, 1)]
    embed = swin.model.patch_embed.proj
    assert embed[1].stride == (1, 1) and embed[1].kernel_size == (4, 4)
    blocks = [b for stage in swin.model.layers for b in stage.blocks]
    assert all(b.window_size == (7, 7) for b in blocks)  # always_partition: windows stay 7 on small maps


def test_swin_outputs_depend_on_the_plane_only_so_one_network_is_shared():
    swin = PlaneSwin(16, **SMALL_SWIN).eval()
    a, b = torch.randn(1, 16, 16, 16), torch.randn(1, 16, 16, 8)
    together = swin([a, b])
    alone = swin([b])
    assert all(torch.allclose(x, y, atol=1e-6) for x, y in zip(together[1], alone[0]))


def test_generalized_lss_fpn_returns_one_output_fewer_than_its_inputs():
    fpn3d = GeneralizedLSSFPN([8, 8, 8], 16, dims=3, norm={"type": "GN", "num_groups": 4})
    outs = fpn3d([torch.randn(1, 8, 8, 8, 4), torch.randn(1, 8, 4, 4, 2), torch.randn(1, 8, 2, 2, 1)])
    assert [tuple(o.shape) for o in outs] == [(1, 16, 8, 8, 4), (1, 16, 4, 4, 2)]
    fpn2d = GeneralizedLSSFPN([4, 6, 10], 8, dims=2, norm={"type": "BN", "track_running_stats": False},
                              activation="leaky_relu")
    assert not fpn2d.lateral[0][1].track_running_stats
    outs = fpn2d([torch.randn(2, 4, 8, 2), torch.randn(2, 6, 4, 1), torch.randn(2, 10, 2, 1)])
    assert [tuple(o.shape) for o in outs] == [(2, 8, 8, 2), (2, 8, 4, 1)]
    with pytest.raises(ConfigError, match="levels"):
        fpn2d([torch.randn(1, 4, 2, 2)])


def test_aggregator_is_a_convex_combination_of_planes_and_volume():
    agg = TPVAggregator(3)
    nn.init.zeros_(agg.combine.weight)
    volume = torch.randn(1, 3, 4, 5, 2)
    planes = broadcast_planes([torch.randn(1, 3, 4, 5), torch.randn(1, 3, 5, 2), torch.randn(1, 3, 4, 2)], (4, 5, 2))
    assert [tuple(p.shape) for p in planes] == [(1, 3, 4, 5, 1), (1, 3, 1, 5, 2), (1, 3, 4, 1, 2)]
    fused, logits = agg(planes, volume)
    assert logits.shape == (1, 4, 4, 5, 2)
    assert torch.allclose(fused, (planes[0] + planes[1] + planes[2] + volume) / 4, atol=1e-6)


def test_tpv_network_shapes_and_gradients():
    net = TPVNetwork(16, SMALL_SWIN)
    volume = torch.randn(1, 16, 16, 16, 4, requires_grad=True)
    out = net(volume)
    assert out["fused"].shape == volume.shape
    assert out["aggregator_logits"].shape == (1, 4, 16, 16, 4)
    assert [len(f) for f in out["plane_backbone"]] == [3, 3, 3]
    assert [tuple(f.shape) for f in out["plane_neck"][1]] == [(1, 16, 8, 2), (1, 16, 4, 1)]
    out["fused"].sum().backward()
    assert volume.grad is not None and volume.grad.abs().sum() > 0


def test_imagenet_swin_weights_load_except_the_patch_projection(tmp_path):
    import timm

    reference = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, embed_dim=8, depths=(1, 1, 1, 1),
                                  num_heads=(1, 1, 2, 2))
    path = tmp_path / "swin.pth"
    torch.save({"model": reference.state_dict()}, path)
    swin = PlaneSwin(16, **SMALL_SWIN)
    skipped = swin.load_pretrained(path)
    assert "patch_embed.proj.weight" in skipped and any(k.startswith("head") for k in skipped)
    own = swin.model.state_dict()
    ref = reference.state_dict()
    assert torch.equal(own["layers.1.blocks.0.attn.qkv.weight"], ref["layers.1.blocks.0.attn.qkv.weight"])
    assert torch.equal(own["patch_embed.norm.weight"], ref["patch_embed.norm.weight"])

    wider = timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, embed_dim=16, depths=(1, 1, 1, 1),
                              num_heads=(1, 1, 2, 2))
    torch.save(wider.state_dict(), path)
    with pytest.raises(CheckpointMismatchError, match="shape mismatch"):
        PlaneSwin(16, **SMALL_SWIN).load_pretrained(path)

