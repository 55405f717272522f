"""HTCL's parameter count, ours per part and an analytic one from the release's layer list (the HTCL repository
reports none), side by side: ``python bench/htcl_params.py [config ...]`` prints both.

The analytic count is written from the layer list of docs/models.md / the fact sheet's section 2.2, layer by
layer (conv weights c_in x c_out x k^d, + c_out with a bias; a norm 2 x c), without looking at our modules.
Two parts are not written out: EfficientNet-B7 (B0 for the tiny config) is taken as its published size (66.35 M,
5.29 M with the 1000-class classifier, minus that classifier), and the LEAStereo cells follow their searched path and
cell graph (the release's modules, instantiated once, give 56,304 and 1,668,641 parameters). Differences by
design (docs/models.md): the fusion attention builds q from the current voxels only, so the release's unused
q-part of ``to_qkv`` (C x heads x dim_head weights) is not built.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# Published sizes with the 1000-class classifier (head width x 1000 + 1000), and the channels of the levels
# HTCL takes (strides 4, 8, 16, 32 and the head map).
PUBLISHED_BACKBONES = {
    "tf_efficientnet_b7": (66_347_960 - 2560 * 1000 - 1000, [48, 80, 224, 640, 2560]),
    "tf_efficientnet_b0": (5_288_548 - 1280 * 1000 - 1000, [24, 40, 112, 320, 1280]),
}
# LEAStereo: searched level path and the number of 3x3 conv operations of a cell (the others are identities)
FEATURE_PATH, FEATURE_CONVS = (1, 0, 1, 0, 0, 0), 5
MATCHING_PATH, MATCHING_CONVS = (1, 1, 2, 2, 1, 2, 2, 2, 1, 1, 0, 1), 6

PARTS = ("image_backbone", "image_neck", "depth_net", "stereo_feature", "stereo_matching", "depth_fusion",
         "temporal_encoder", "temporal_refinement", "temporal_hourglasses", "pose_net", "voxel_encoder",
         "voxel_neck", "fusion_attention", "occ_head", "point_head")


def conv(c_in: int, c_out: int, k: int, dims: int, bias: bool = False) -> int:
    """Weights (and bias) of a convolution."""
    return c_in * c_out * k ** dims + (c_out if bias else 0)


def conv_norm(c_in: int, c_out: int, k: int, dims: int) -> int:
    """Conv without bias + a norm with affine parameters."""
    return conv(c_in, c_out, k, dims) + 2 * c_out


def hourglass(c: int) -> int:
    """PSMNet hourglass: two strided and two plain conv-norms, two transposed conv-BNs, two 1x1 redirects."""
    return (conv_norm(c, 2 * c, 3, 3) + conv_norm(2 * c, 2 * c, 3, 3) + conv_norm(2 * c, 4 * c, 3, 3)
            + conv_norm(4 * c, 4 * c, 3, 3) + conv_norm(4 * c, 2 * c, 3, 3) + conv_norm(2 * c, c, 3, 3)
            + conv_norm(c, c, 1, 3) + conv_norm(2 * c, 2 * c, 1, 3))


def searched_cells(path: tuple[int, ...], convs: int, f: int, dims: int) -> int:
    """LEAStereo cells: per cell two 1x1 ConvBR input projections and ``convs`` 3x3 ConvBRs at width f 2^level."""
    total, initial = 0, 4 * f
    for i, level in enumerate(path):
        c = f * 2 ** level
        c_prev = initial if i == 0 else 4 * f * 2 ** path[i - 1]
        c_prev_prev = initial if i < 2 else 4 * f * 2 ** path[i - 2]
        total += conv_norm(c_prev_prev, c, 1, dims) + conv_norm(c_prev, c, 1, dims) + convs * conv_norm(c, c, 3, dims)
    return total


def basic_block_3d(c_in: int, c: int) -> int:
    """3D ResNet basic block, with a 1x1x1 conv-norm shortcut when the width changes."""
    shortcut = conv_norm(c_in, c, 1, 3) if c_in != c else 0
    return conv_norm(c_in, c, 3, 3) + conv_norm(c, c, 3, 3) + shortcut


def htcl_analytic_parameters(cfg: dict) -> dict[str, int]:
    """Parameters per part of an HTCL config from the layer list (see the module docstring)."""
    m = cfg["model"]
    neck, depth, stereo = m["neck"], m["depth"], m["stereo"]
    temporal, voxel, head = m["temporal"], m["voxel"], m.get("head", {})
    k = int(m.get("num_classes", 20))
    backbone = m["backbone"]["name"]
    if backbone not in PUBLISHED_BACKBONES:
        raise KeyError(f"no published parameter count for backbone {backbone!r}")
    parts = dict.fromkeys(PARTS, 0)
    parts["image_backbone"], levels = PUBLISHED_BACKBONES[backbone]
    n = int(neck["channels"])
    kernels = [round(1 / s) if s < 1 else int(s) for s in neck["strides"]]
    parts["image_neck"] = sum(conv_norm(c, n, kk, 2) for c, kk in zip(levels, kernels))
    c_img = n * len(levels)
    bins = round((depth["bins"][1] - depth["bins"][0]) / depth["bins"][2])
    cam, ctx, g = int(depth["cam_channels"]), int(depth["context_channels"]), int(depth["dcn_groups"])
    mid = c_img
    parts["depth_net"] = (
        conv(c_img, mid, 3, 2, bias=True) + 2 * mid + 2 * cam  # reduce_conv + GN, GN over the camera vector
        + 2 * (cam * mid + mid + mid * mid + mid) + 2 * 2 * (mid * mid + mid)  # two camera MLPs, two SE layers
        + conv(mid, ctx, 1, 2, bias=True)  # context 1x1
        + 3 * 2 * conv_norm(mid, mid, 3, 2)  # three BasicBlocks
        + conv_norm(mid, mid, 1, 2) + 3 * conv_norm(mid, mid, 3, 2) + conv_norm(mid, mid, 1, 2)  # ASPP branches
        + conv_norm(5 * mid, mid, 1, 2)  # ASPP projection
        + mid * (mid // g) * 9 + conv(mid, 2 * 9, 3, 2, bias=True)  # DCN (groups 4) + its offset conv
        + conv(mid, bins, 1, 2, bias=True))
    if stereo["enabled"]:
        f = int(stereo["filter_multiplier"])
        parts["stereo_feature"] = (conv_norm(3, 2 * f, 3, 2) + conv_norm(2 * f, 4 * f, 3, 2)
                                   + conv_norm(4 * f, 4 * f, 3, 2) + searched_cells(FEATURE_PATH, FEATURE_CONVS, f, 2)
                                   + conv(4 * f, 4 * f, 1, 2, True))
        parts["stereo_matching"] = (conv_norm(8 * f, 4 * f, 3, 3) + conv_norm(4 * f, 4 * f, 3, 3)
                                    + searched_cells(MATCHING_PATH, MATCHING_CONVS, f, 3)
                                    + 2 * conv_norm(16 * f, 8 * f, 3, 3) + conv_norm(8 * f, 4 * f, 1, 3)
                                    + conv(4 * f, 1, 3, 3, bias=True))
        c = int(stereo["fusion_channels"])
        parts["depth_fusion"] = (conv_norm(2, c, 3, 3) + conv_norm(c, c, 3, 3) + 3 * hourglass(c)
                                 + conv_norm(c, c, 3, 3) + conv(c, 1, 3, 3, bias=True))
    channels = [int(c) for c in voxel["channels"]]
    blocks = [int(b) for b in voxel["blocks"]]
    enc = conv_norm(ctx, channels[0], 1, 3)
    prev = channels[0]
    for width, count in zip(channels, blocks):
        enc += basic_block_3d(prev, width) + (count - 1) * basic_block_3d(width, width)
        prev = width
    parts["voxel_encoder"] = enc
    out_c = int(voxel["neck_channels"])
    strides = [1, 2, 4][: len(channels)]
    parts["voxel_neck"] = sum(conv_norm(c, out_c, s, 3) for c, s in zip(channels, strides))
    fused = out_c * len(channels)
    if temporal["enabled"]:
        t = len(cfg["data"]["history_offsets"])
        parts["temporal_encoder"] = conv_norm(3, 64, 7, 2) + 2 * 2 * conv_norm(64, 64, 3, 2)  # ResNet-18 stem + layer1
        dc = int(temporal["deform_channels"])

        def deform(c_in: int, c_out: int) -> int:
            return conv(c_in, c_out, 3, 3, bias=True) + conv(c_in, 2 * 27, 3, 3, bias=True)  # + its offset conv

        parts["temporal_refinement"] = (deform(t, dc) + 2 * deform(dc, dc) + conv(3 * dc, t, 3, 3, bias=True)
                                        + 3 * conv(64, 1, 3, 2, bias=True) + 3 * (conv(t, 1, 3, 3, bias=True) + 2))
        hg, vol = int(temporal["hourglass_channels"]), int(temporal["volume_channels"])
        parts["temporal_hourglasses"] = (conv_norm(t, hg, 3, 3) + hourglass(hg) + conv_norm(hg, vol, 3, 3)
                                         + conv(vol, vol, 3, 3) + conv_norm(vol, hg, 3, 3) + hourglass(hg)
                                         + conv_norm(hg, vol, 3, 3) + conv(vol, fused, 3, 3))
        if temporal.get("pose") == "posenet":
            resnet18 = (conv_norm(6, 64, 7, 2) + 4 * conv_norm(64, 64, 3, 2) + conv_norm(64, 128, 3, 2)
                        + 3 * conv_norm(128, 128, 3, 2) + conv_norm(64, 128, 1, 2) + conv_norm(128, 256, 3, 2)
                        + 3 * conv_norm(256, 256, 3, 2) + conv_norm(128, 256, 1, 2) + conv_norm(256, 512, 3, 2)
                        + 3 * conv_norm(512, 512, 3, 2) + conv_norm(256, 512, 1, 2))
            parts["pose_net"] = (resnet18 + conv(512, 256, 1, 2, True) + 2 * conv(256, 256, 3, 2, True)
                                 + conv(256, 12, 1, 2, True))
        hidden = int(temporal["attention_heads"]) * int(temporal["attention_dim_head"])
        qkv = fused * hidden * 3 + fused * hidden  # the release's to_qkv (its q unused) and to_q
        parts["fusion_attention"] = 1 + qkv + conv(hidden, fused, 1, 3, True) + 2 * fused  # alpha, ..., to_out + GN
    parts["occ_head"] = conv_norm(fused, fused // 2, 3, 3) + conv(fused // 2, k, 1, 3)
    if head.get("point_branch", True):
        parts["point_head"] = ((c_img * fused + fused) + (fused * (fused // 2) + fused // 2 + (fused // 2) * 2 + 2)
                               + (fused * fused + fused + fused * k + k))
    return parts


def htcl_parameter_parts(model) -> dict[str, int]:
    """Our model's parameters per part (names as ``htcl_analytic_parameters``)."""
    prefixes = {
        "image_backbone": "image_encoder.backbone.", "image_neck": "image_encoder.neck.", "depth_net": "depth_net.",
        "stereo_feature": "stereo.feature.", "stereo_matching": "stereo.matching.", "depth_fusion": "depth_fusion.",
        "temporal_encoder": "temporal.encoder.", "temporal_hourglasses": ("temporal.pre_hourglass.",
                                                                          "temporal.post_hourglass."),
        "temporal_refinement": ("temporal.deform", "temporal.current_pattern.", "temporal.warped_pattern."),
        "pose_net": "temporal.pose_net.", "voxel_encoder": "voxel_encoder.", "voxel_neck": "voxel_neck.",
        "fusion_attention": ("alpha", "attention."), "occ_head": "occ_head.", "point_head": "point_head.",
    }
    parts = dict.fromkeys(PARTS, 0)
    for name, p in model.named_parameters():
        part = next(k for k, v in prefixes.items() if name.startswith(v))
        parts[part] += p.numel()
    return parts


def main(argv: list[str] | None = None) -> int:
    """Print ours / analytic per part for each config (default: htcl)."""
    import torch

    from ssc_core.config import load_config
    from ssc_core.models import build_model

    for name in argv or ["htcl"]:
        cfg = load_config(name)
        with torch.device("meta"):
            ours = htcl_parameter_parts(build_model(cfg))
        analytic = htcl_analytic_parameters(cfg)
        print(f"{name}: part, ours M, analytic M")
        for part in PARTS:
            print(f"  {part:22s} {ours[part] / 1e6:9.4f} {analytic[part] / 1e6:9.4f}")
        print(f"  {'total':22s} {sum(ours.values()) / 1e6:9.4f} {sum(analytic.values()) / 1e6:9.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
