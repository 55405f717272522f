"""SegFormer's MiT-B2 encoder is timm's pvt_v2_b2 with mlp_ratios 4: a state dict in SegFormer's own naming (as
``mit_b2.pth`` holds it) fits it key for key and loads through the backbone's checked loader."""

from __future__ import annotations

import re

import pytest
import torch

from ssc_core.errors import CheckpointMismatchError
from ssc_core.models.blocks.image_backbone import build_image_backbone

MIT_B2 = {"dims": (64, 128, 320, 512), "depths": (3, 4, 6, 3), "sr_ratios": (8, 4, 2, 1), "mlp_ratio": 4}
CONFIG = {"name": "pvt_v2_b2", "out_indices": [0, 1, 2, 3], "frozen_stages": 3,
          "timm_kwargs": {"mlp_ratios": [4, 4, 4, 4]}}


def mit_b2_shapes() -> dict[str, tuple[int, ...]]:
    """Every tensor of SegFormer's MiT-B2 (ImageNet classifier included) by its name in mit_b2.pth: overlapping
    patch embeddings (7x7 stride 4, then 3x3 stride 2) with LayerNorm; per block LayerNorm, attention with q, kv,
    proj and (spatial reduction > 1) an sr conv + LayerNorm, LayerNorm, Mix-FFN fc1 -> 3x3 depth-wise conv -> fc2;
    a LayerNorm after each stage."""
    shapes: dict[str, tuple[int, ...]] = {}
    c_in = 3
    for s, (d, depth, sr) in enumerate(zip(MIT_B2["dims"], MIT_B2["depths"], MIT_B2["sr_ratios"]), start=1):
        k = 7 if s == 1 else 3
        h = MIT_B2["mlp_ratio"] * d
        shapes.update({f"patch_embed{s}.proj.weight": (d, c_in, k, k), f"patch_embed{s}.proj.bias": (d,),
                       f"patch_embed{s}.norm.weight": (d,), f"patch_embed{s}.norm.bias": (d,)})
        for b in range(depth):
            p = f"block{s}.{b}."
            shapes.update({p + "norm1.weight": (d,), p + "norm1.bias": (d,), p + "attn.q.weight": (d, d),
                           p + "attn.q.bias": (d,), p + "attn.kv.weight": (2 * d, d), p + "attn.kv.bias": (2 * d,),
                           p + "attn.proj.weight": (d, d), p + "attn.proj.bias": (d,), p + "norm2.weight": (d,),
                           p + "norm2.bias": (d,), p + "mlp.fc1.weight": (h, d), p + "mlp.fc1.bias": (h,),
                           p + "mlp.dwconv.dwconv.weight": (h, 1, 3, 3), p + "mlp.dwconv.dwconv.bias": (h,),
                           p + "mlp.fc2.weight": (d, h), p + "mlp.fc2.bias": (d,)})
            if sr > 1:
                shapes.update({p + "attn.sr.weight": (d, d, sr, sr), p + "attn.sr.bias": (d,),
                               p + "attn.norm.weight": (d,), p + "attn.norm.bias": (d,)})
        shapes.update({f"norm{s}.weight": (d,), f"norm{s}.bias": (d,)})
        c_in = d
    shapes.update({"head.weight": (1000, 512), "head.bias": (1000,)})
    return shapes


def timm_name(mit_name: str) -> str:
    """Where a MiT-B2 tensor lives in timm's pvt_v2_b2 (what timm's converter of original PVT files does)."""
    name = re.sub(r"^patch_embed1\.", "patch_embed.", mit_name)
    name = re.sub(r"^patch_embed(\d)\.", lambda m: f"stages.{int(m.group(1)) - 1}.downsample.", name)
    name = re.sub(r"^block(\d)\.(\d+)\.", lambda m: f"stages.{int(m.group(1)) - 1}.blocks.{m.group(2)}.", name)
    name = re.sub(r"^norm(\d)\.", lambda m: f"stages.{int(m.group(1)) - 1}.norm.", name)
    return name.replace("dwconv.dwconv", "dwconv")


def test_mit_b2_encoder_has_pvt_v2_b2_mlp4s_parameters_key_for_key():
    backbone = build_image_backbone(CONFIG)
    own = {k: tuple(v.shape) for k, v in backbone.model.state_dict().items()}
    mit = {timm_name(k): v for k, v in mit_b2_shapes().items() if not k.startswith("head.")}
    assert mit == own
    assert sum(torch.Size(s).numel() for s in mit.values()) == 24_196_288  # MiT-B2's encoder: 24.2 M
    assert backbone.out_channels == [64, 128, 320, 512] and backbone.strides == [4, 8, 16, 32]
    assert not any(p.requires_grad for p in backbone.parameters())


def test_a_mit_b2_weights_file_loads_into_the_backbone(tmp_path):
    torch.manual_seed(0)
    state = {k: torch.randn(s) for k, s in mit_b2_shapes().items()}
    torch.save({"state_dict": state}, tmp_path / "mit_b2.pth")
    backbone = build_image_backbone({**CONFIG, "pretrained_path": str(tmp_path / "mit_b2.pth")})
    loaded = backbone.model.state_dict()
    for name, value in state.items():
        if not name.startswith("head."):
            assert torch.equal(loaded[timm_name(name)], value), name
    del state["block3.5.mlp.fc2.bias"]
    torch.save(state, tmp_path / "broken.pth")
    with pytest.raises(CheckpointMismatchError, match="missing"):
        build_image_backbone({**CONFIG, "pretrained_path": str(tmp_path / "broken.pth")})
