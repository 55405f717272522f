"""Converter of the official SGN checkpoints (Jieqianyu/SGN; SGN-T/L/S for SemanticKITTI and KITTI-360).

The official model is an mmdet3d detector: ``img_backbone`` (mmdet ResNet, torchvision names), ``img_neck``
(mmdet FPN, one level), ``pts_bbox_head`` (SGNHeadOne, with the SVPN as ``pts_bbox_head.pts_header``). Its keys
map one to one onto ``ssc_core.models.sgn.SGN`` except for:

- layers built but never run, dropped and listed: every SGFE's ``scale_selection`` and the SVPN's
  ``deconv_1_8__1_1`` / ``deconv_1_4__1_1``;
- MPAC's gate conv (``conv_mx``): its 9 output channels are (axis, kernel) with the axes in the order z, y, x of
  the official code (z = dim 2), while the first pass runs along the last dim; ours store them in pass order;
- the SVPN's 3D segmentation head runs on (B, 1, Z, X, Y) officially and on (B, 1, X, Y, Z) here: its Conv3d
  kernels are permuted (kz, kx, ky) -> (kx, ky, kz);
- SGB's sparse convs run on coordinates flipped to (z, y, x) officially: their spconv kernels
  (out, kz, ky, kx, in) become (out, kx, ky, kz, in);
- every 1x1x1 sparse conv (the identity branch of each sparse block): spconv 2.x computes it as
  ``features @ weight.view(in, out)`` (a reinterpretation of its (out, 1, 1, 1, in) weight), ours as
  ``features @ weight.view(out, in).T``; the converter re-lays the matrix so both compute the same.
"""

from __future__ import annotations

import torch

from ssc_core.convert.keymap import KeyMap, KeyRule, Relayout
from ssc_core.convert.registry import Conversion, load_converted, register_converter, ssc_conversion
from ssc_core.errors import CheckpointMismatchError, ConfigError

BACKBONE_PREFIX = "image_encoder.backbone.model."
HEAD = "pts_bbox_head."
SVPN = HEAD + "pts_header."
MPAC_AXES = 3


def _five_d(fn):
    return lambda t: fn(t) if t.dim() == 5 else t


def _mpac_gate_order(t: torch.Tensor) -> torch.Tensor:
    """Reverse the axis blocks of the (3 * kernels, C, 1, 1, 1) gate weight (an involution)."""
    n = t.shape[0] // MPAC_AXES
    order = [(MPAC_AXES - 1 - c // n) * n + c % n for c in range(t.shape[0])]
    return t[order]


def _subm1x1_to_ours(t: torch.Tensor) -> torch.Tensor:
    out, cin = t.shape[0], t.shape[-1]
    return t.reshape(cin, out).t().reshape(out, 1, 1, 1, cin)


def _subm1x1_to_official(t: torch.Tensor) -> torch.Tensor:
    out, cin = t.shape[0], t.shape[-1]
    return t.reshape(out, cin).t().contiguous().reshape(out, 1, 1, 1, cin)


ZXY_KERNEL = Relayout("conv3d kernel (kz, kx, ky) -> (kx, ky, kz)", _five_d(lambda t: t.permute(0, 1, 3, 4, 2)),
                      _five_d(lambda t: t.permute(0, 1, 4, 2, 3)))
ZYX_SUBM = Relayout("spconv kernel (kz, ky, kx) -> (kx, ky, kz)", _five_d(lambda t: t.permute(0, 3, 2, 1, 4)),
                    _five_d(lambda t: t.permute(0, 3, 2, 1, 4)))
SUBM_1X1 = Relayout("spconv 1x1x1 weight.view(in, out) -> ours", _subm1x1_to_ours, _subm1x1_to_official)
MPAC_GATES = Relayout("MPAC gate channels (z, y, x) -> pass order (x, y, z)", _mpac_gate_order, _mpac_gate_order)


def _sdb_rules(official: str, ours: str) -> list[KeyRule]:
    renames = [("conv_in.{t}", "conv_in.{t}"), ("diffusion.{i}.conv_mx.{t}", "diffusion.{i}.conv_mx.{t}"),
               ("diffusion.{i}.conv_1x1xk.{j}.{t}", "diffusion.{i}.axis_convs.0.{j}.{t}"),
               ("diffusion.{i}.conv_1xkx1.{j}.{t}", "diffusion.{i}.axis_convs.1.{j}.{t}"),
               ("diffusion.{i}.conv_kx1x1.{j}.{t}", "diffusion.{i}.axis_convs.2.{j}.{t}"),
               ("aspp.reduce.{t}", "aspp.reduce.{t}"), ("aspp.aspp_1.{t}", "aspp.branches.0.{t}"),
               ("aspp.aspp_2.{t}", "aspp.branches.1.{t}"), ("aspp.aspp_4.{t}", "aspp.branches.2.{t}"),
               ("aspp.fusion.{t}", "aspp.fuse.{t}")]
    return [KeyRule(official + a, ours + b, MPAC_GATES if "conv_mx" in a else None) for a, b in renames]


def _sfe_rules(official: str, ours: str, kernel: Relayout | None) -> list[KeyRule]:
    block = official + "spconv_layers.{i}."
    return [
        KeyRule(block + "layers_in.0.{t}", ours + "{i}.identity_conv.{t}", SUBM_1X1),
        KeyRule(block + "layers_in.1.{t}", ours + "{i}.identity_bn.{t}"),
        KeyRule(block + "layers.0.{t}", ours + "{i}.conv1.{t}", kernel),
        KeyRule(block + "layers.1.{t}", ours + "{i}.bn1.{t}"),
        KeyRule(block + "layers.3.{t}", ours + "{i}.conv2.{t}", kernel),
        KeyRule(block + "layers.4.{t}", ours + "{i}.bn2.{t}"),
    ]


def _sgfe_rules(official: str, ours: str) -> list[KeyRule]:
    return [
        KeyRule(official + "feature_reduce.{t}", ours + "feature_reduce.{t}"),
        KeyRule(official + "fc_list.{j}.0.{t}", ours + "pool_linears.{j}.{t}"),
        KeyRule(official + "fcs.{j}.0.{t}", ours + "gates.{j}.{t}"),
        KeyRule(official + "fc.0.{t}", ours + "fc.{t}"),
        KeyRule(official + "out_fc.{t}", ours + "out_fc.{t}"),
        KeyRule(official + "linear_output.{i}.{t}", ours + "out.{i}.{t}"),
        KeyRule(official + "scale_selection.{rest}", None, reason="SGFE.scale_selection is built but never used"),
    ]


def _svpn_rules() -> list[KeyRule]:
    bev = [("Encoder_block{n}.{i}.{t}", "enc{n}.{i}.{t}"), ("conv_out_scale_1_8.{t}", "conv_out_1_8.{t}"),
           ("deconv1_8.{t}", "deconv1_8.{t}"), ("conv1_4.{t}", "conv1_4.{t}"),
           ("conv_out_scale_1_4.{t}", "conv_out_1_4.{t}"), ("deconv1_4.{t}", "deconv1_4.{t}"),
           ("deconv_1_8__1_2.{t}", "deconv_1_8__1_2.{t}"), ("conv1_2.{t}", "conv1_2.{t}"),
           ("conv_out_scale_1_2.{t}", "conv_out_1_2.{t}")]
    head = [("conv0.{t}", "conv0.{t}"), ("conv1.{i}.{t}", "branches.{i}.0.{t}"), ("bn1.{i}.{t}", "branches.{i}.1.{t}"),
            ("conv2.{i}.{t}", "branches.{i}.3.{t}"), ("bn2.{i}.{t}", "branches.{i}.4.{t}"),
            ("guidance_layer.{i}.{t}", "guidance_layer.{i}.{t}"), ("conv_classes.{t}", "conv_classes.{t}")]
    unused = "an SVPN deconvolution to 1:1 that the official forward never runs"
    return [
        KeyRule(SVPN + "voxelize.PPmodel.{i}.{t}", "svpn.voxel_encoder.point_mlp.{i}.{t}"),
        *_sfe_rules(SVPN + "voxelize.soft_model.conv_block.", "svpn.sfe.", None),
        *_sgfe_rules(SVPN + "voxelize.soft_model.proj_block.", "svpn.sgfe."),
        *[KeyRule(SVPN + a, "svpn.bev." + b) for a, b in bev],
        KeyRule(SVPN + "deconv_1_8__1_1.{t}", None, reason=unused),
        KeyRule(SVPN + "deconv_1_4__1_1.{t}", None, reason=unused),
        *[KeyRule(SVPN + "seg_head_1_2." + a, "svpn.head." + b, ZXY_KERNEL) for a, b in head],
    ]


SGN_KEYS = KeyMap([
    KeyRule("img_backbone.{rest}", BACKBONE_PREFIX + "{rest}"),
    KeyRule("img_neck.lateral_convs.0.conv.{t}", "image_encoder.neck.lateral_conv.{t}"),
    KeyRule("img_neck.fpn_convs.0.conv.{t}", "image_encoder.neck.fpn_conv.{t}"),
    KeyRule(HEAD + "bottleneck.{t}", "bottleneck.{t}"),
    *_sdb_rules(HEAD + "occ_header.0.", "occ_header.0."),
    KeyRule(HEAD + "occ_header.1.{t}", "occ_header.1.{t}"),
    *_svpn_rules(),
    *_sfe_rules(HEAD + "sgb.conv_block.", "sgb.sfe1.", ZYX_SUBM),
    *_sgfe_rules(HEAD + "sgb.proj_block.", "sgb.sgfe1."),
    *_sfe_rules(HEAD + "sgb.conv_block_down.", "sgb.sfe2.", ZYX_SUBM),
    *_sgfe_rules(HEAD + "sgb.proj_block_down.", "sgb.sgfe2."),
    KeyRule(HEAD + "sgb.fc_out.{t}", "sgb.fc_out.{t}"),
    KeyRule(HEAD + "sem_header.mlp_head.0.{t}", "sem_header.norm.{t}"),
    KeyRule(HEAD + "sem_header.mlp_head.1.{t}", "sem_header.classifier.{t}"),
    KeyRule(HEAD + "mlp_prior.{i}.{t}", "mlp_prior.{i}.{t}"),
    *_sdb_rules(HEAD + "sdb.", "sdb."),
    KeyRule(HEAD + "ssc_header.mlp_head.0.{t}", "ssc_header.norm.{t}"),
    KeyRule(HEAD + "ssc_header.mlp_head.1.{t}", "ssc_header.classifier.{t}"),
])


def unused_official_layers(ours: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The layers the official model builds but never runs, zero-filled in their official shapes, for a
    complete official-layout state dict of the model whose state is ``ours`` (see ``sgn_to_official``)."""
    out: dict[str, torch.Tensor] = {}
    sgfes = {SVPN + "voxelize.soft_model.proj_block.": "svpn.sgfe.", HEAD + "sgb.proj_block.": "sgb.sgfe1.",
             HEAD + "sgb.proj_block_down.": "sgb.sgfe2."}
    for official, mine in sgfes.items():
        reduce, _ = ours[mine + "feature_reduce.weight"].shape
        scales = sum(1 for k in ours if k.startswith(mine + "pool_linears.") and k.endswith(".weight"))
        out[official + "scale_selection.0.weight"] = torch.zeros(reduce, scales * (reduce // 2))
        out[official + "scale_selection.0.bias"] = torch.zeros(reduce)
    f = ours["svpn.bev.enc1.0.weight"].shape[0]
    for name, channels, kernel in (("deconv_1_8__1_1", f // 8, 8), ("deconv_1_4__1_1", f // 4, 4)):
        out[SVPN + name + ".weight"] = torch.zeros(channels, channels, kernel, kernel)
        out[SVPN + name + ".bias"] = torch.zeros(channels)
    return out


def sgn_to_official(ours: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our SGN state dict -> the official checkpoint's ``state_dict`` (every official key, the never-run layers
    zero-filled): the inverse of the converter, used to export and to build official-layout test files.
    CheckpointMismatchError naming any key of ours that no rule covers."""
    mapped = SGN_KEYS.to_official(ours)
    if mapped.unmatched:
        raise CheckpointMismatchError(f"no official SGN key for {len(mapped.unmatched)} of our keys: "
                                      f"{mapped.unmatched[:8]}")
    return {**mapped.state, **unused_official_layers(ours)}


def _check_fits(state: dict[str, torch.Tensor], cfg: dict) -> None:
    """Name the config keys an official file does not fit (a clearer message than a list of shapes)."""
    model_cfg = cfg.get("model") or {}
    classes = state.get(HEAD + "ssc_header.mlp_head.1.weight")
    expected = int(model_cfg.get("num_classes", 20))
    if classes is not None and classes.shape[0] != expected:
        raise CheckpointMismatchError(
            f"the checkpoint predicts {classes.shape[0]} classes but the config has model.num_classes {expected} "
            "(19 = KITTI-360: use an sgn_*_kitti360 config; 20 = SemanticKITTI)")
    lateral = state.get("img_neck.lateral_convs.0.conv.weight")
    dim = int(model_cfg.get("dim", 128))
    if lateral is not None and lateral.shape[0] != dim:
        raise CheckpointMismatchError(
            f"the checkpoint has C = {lateral.shape[0]} (FPN width, backbone {lateral.shape[1]} channels) but the "
            f"config has model.dim {dim} (SGN-T/S: C 128 with ResNet-50; SGN-L: C 64 with ResNet-18)")


@register_converter("sgn", "SGN-T/L/S, Jieqianyu/SGN mmdet3d checkpoints (SemanticKITTI and KITTI-360); "
                    "--config sgn_t | sgn_l | sgn_s | sgn_*_kitti360", depth_source=True)
def convert_sgn(state: dict[str, torch.Tensor], config: dict | None) -> Conversion:
    """Official SGN state dict + the config of the matching variant -> our checkpoint (model state, config,
    class map, grid, version) and the dropped keys. CheckpointMismatchError names unknown official keys, and
    (through the model load) every missing or mis-shaped one."""
    from ssc_core.models import build_model

    if config is None or (config.get("model") or {}).get("name") != "sgn":
        raise ConfigError("the sgn converter needs an SGN config (model.name: sgn), e.g. --config sgn_t")
    _check_fits(state, config)
    model = build_model(config)
    return ssc_conversion(model, config, load_converted(SGN_KEYS, state, model, "SGN"), "semantic_kitti")
