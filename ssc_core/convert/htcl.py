"""Converter of HTCL's released checkpoint (Arlo0o/HTCL, ``temporal_baseline.py``; SemanticKITTI).

The official model is an mmdet3d ``BEVDepthOccupancy``: ``img_backbone`` (an mmcls EfficientNet port),
``img_neck`` (mmdet3d SECONDFPN), ``img_view_transformer`` (DepthNet, LEAStereo as ``leamodel``, the depth
fusion ``volume_interaction``, the temporal branch with its ManyDepth ``temporal_encoder``),
``img_bev_encoder_backbone`` (CustomResNet3D), ``img_bev_encoder_neck`` (SECONDFPN3D holding ``alpha`` and the
temporal attention) and ``pts_bbox_head`` (OccHead with the point branch). Its keys map onto
``ssc_core.models.htcl.HTCL`` by renames, except for:

- the backbone: mmcls numbers its blocks ``layers.L.j`` with the 80- and 112-channel stages in one ``layers.4``
  and the 192- and 320-channel stages in one ``layers.5``; timm numbers them ``blocks.s.b`` with one stage per
  width. The split is read from the block counts of the model built from the config;
- LEAStereo cells keep their six operations in one flat list ``_ops.k`` in the order the forward runs them (two
  per step); ours nest them per step: ``ops.(k // 2).(k % 2)``;
- the temporal attention's ``to_qkv`` computes q, k and v from the temporal voxel, but the forward replaces q by
  ``to_q(query)``: only its k and v rows (the last two thirds) become our ``to_kv``; the first third is dropped;
- tensors the release stores but never learns or never runs, dropped and listed: the voxel-pooling constants
  ``dx`` / ``bx`` / ``nx`` / ``frustum``, the matching encoder's back-projection grids, the pose encoder's
  ImageNet classifier ``fc``, and the pose network itself unless the config asks for it
  (``model.temporal.pose: posenet``); likewise, if a file holds them, ``depth_aggregation_net`` (built only with
  ``use_voxel_net``) and the neck's commented-out ``aspp3d``; the point branch (training only) when the config has
  ``model.head.point_branch: false``.

No tensor changes its layout otherwise: the D3D deformable 3D convs store their (dh, dw) offsets per tap as ours,
mmcv's DCN its (dy, dx) offsets as torchvision, and every conv, deconv, norm and linear layer has the same shape.
"""

from __future__ import annotations

import re

import torch

from ssc_core.convert.keymap import KeyMap, KeyRule, Relayout
from ssc_core.convert.registry import Conversion, load_converted, register_converter, ssc_conversion
from ssc_core.errors import CheckpointMismatchError, ConfigError

BACKBONE = "image_encoder.backbone.model."
VT = "img_view_transformer."
DN = VT + "depth_net."
TE = VT + "temporal_encoder."
NECK3D = "img_bev_encoder_neck."
HEAD = "pts_bbox_head."
CELL_OPS = 6  # operations per LEAStereo cell (three steps of two)
ATTENTION_QKV = NECK3D + "attention_3d.to_qkv.weight"
MATCHING_DEPTH_BINS = 112  # the release's temporal_encoder(maxdisp=112): the back-projection grids' batch size

DS_BLOCK = {"depthwise_conv.conv": "conv_dw", "depthwise_conv.bn": "bn1", "se.conv1.conv": "se.conv_reduce",
            "se.conv2.conv": "se.conv_expand", "linear_conv.conv": "conv_pw", "linear_conv.bn": "bn2"}
IR_BLOCK = {"expand_conv.conv": "conv_pw", "expand_conv.bn": "bn1", "depthwise_conv.conv": "conv_dw",
            "depthwise_conv.bn": "bn2", "se.conv1.conv": "se.conv_reduce", "se.conv2.conv": "se.conv_expand",
            "linear_conv.conv": "conv_pwl", "linear_conv.bn": "bn3"}
MMCLS_LAYER_OF_STAGE = (1, 2, 3, 4, 4, 5, 5)  # timm stage s -> mmcls layers.L (stem = 0, head = 6)


def _kv_of_qkv(t: torch.Tensor) -> torch.Tensor:
    return t[t.shape[0] // 3:]


def _qkv_of_kv(t: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.zeros_like(t[: t.shape[0] // 2]), t])


KV_OF_QKV = Relayout("to_qkv rows (q, k, v) -> to_kv rows (k, v)", _kv_of_qkv, _qkv_of_kv)


def stage_blocks(ours: dict[str, torch.Tensor]) -> list[int]:
    """Blocks per timm EfficientNet stage in our state dict (b7: [4, 7, 7, 10, 10, 13, 4])."""
    found: dict[int, set[int]] = {}
    for key in ours:
        m = re.match(re.escape(BACKBONE) + r"blocks\.(\d+)\.(\d+)\.", key)
        if m:
            found.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    counts = [len(found.get(s, ())) for s in range(len(MMCLS_LAYER_OF_STAGE))]
    if any(c == 0 for c in counts) or any(len(b) != max(b) + 1 for b in found.values()):
        raise ConfigError(f"the htcl converter needs an EfficientNet backbone with 7 stages (timm tf_efficientnet_*), "
                          f"found blocks per stage {counts}")
    return counts


def _backbone_rules(ours: dict[str, torch.Tensor]) -> list[KeyRule]:
    counts = stage_blocks(ours)
    rules = [KeyRule("img_backbone.layers.0.conv.{t}", BACKBONE + "conv_stem.{t}"),
             KeyRule("img_backbone.layers.0.bn.{t}", BACKBONE + "bn1.{t}"),
             KeyRule("img_backbone.layers.6.conv.{t}", BACKBONE + "conv_head.{t}"),
             KeyRule("img_backbone.layers.6.bn.{t}", BACKBONE + "bn2.{t}")]
    for stage, layer in enumerate(MMCLS_LAYER_OF_STAGE):
        first = sum(counts[s] for s in range(stage) if MMCLS_LAYER_OF_STAGE[s] == layer)
        for b in range(counts[stage]):
            inverted = any(k.startswith(f"{BACKBONE}blocks.{stage}.{b}.conv_pwl.") for k in ours)
            for official, mine in (IR_BLOCK if inverted else DS_BLOCK).items():
                rules.append(KeyRule(f"img_backbone.layers.{layer}.{first + b}.{official}.{{t}}",
                                     f"{BACKBONE}blocks.{stage}.{b}.{mine}.{{t}}"))
    return rules


def _leastereo_rules(net: str, ours: str) -> list[KeyRule]:
    official = f"{VT}leamodel.{net}."
    rules = [KeyRule(official + "stem{n}.conv.{t}", ours + "stem{n}.0.{t}"),
             KeyRule(official + "stem{n}.bn.{t}", ours + "stem{n}.1.{t}")]
    for pre in ("pre_preprocess", "preprocess"):
        rules += [KeyRule(official + f"cells.{{i}}.{pre}.conv.{{t}}", ours + f"cells.{{i}}.{pre}.0.{{t}}"),
                  KeyRule(official + f"cells.{{i}}.{pre}.bn.{{t}}", ours + f"cells.{{i}}.{pre}.1.{{t}}")]
    for k in range(CELL_OPS):
        op = f"cells.{{i}}.ops.{k // 2}.{k % 2}."
        rules += [KeyRule(official + f"cells.{{i}}._ops.{k}.conv.{{t}}", ours + op + "0.{t}"),
                  KeyRule(official + f"cells.{{i}}._ops.{k}.bn.{{t}}", ours + op + "1.{t}")]
    if net == "feature":
        return [*rules, KeyRule(official + "last_3.{t}", ours + "last.{t}")]
    return [*rules, KeyRule(official + "conv1.conv.{t}", ours + "fuse.4.0.{t}"),
            KeyRule(official + "conv1.bn.{t}", ours + "fuse.4.1.{t}"),
            KeyRule(official + "conv2.conv.{t}", ours + "fuse.8.0.{t}"),
            KeyRule(official + "conv2.bn.{t}", ours + "fuse.8.1.{t}"),
            KeyRule(official + "last_6.conv.{t}", ours + "last_6.0.{t}"),
            KeyRule(official + "last_6.bn.{t}", ours + "last_6.1.{t}"),
            KeyRule(official + "last_3.{t}", ours + "last_3.{t}")]


def _depth_net_rules() -> list[KeyRule]:
    aspp = DN + "depth_conv.3."
    rules = [KeyRule(DN + "reduce_conv.{i}.{t}", "depth_net.reduce_conv.{i}.{t}"),
             KeyRule(DN + "bn.{t}", "depth_net.cam_norm.{t}"),
             KeyRule(DN + "context_conv.{t}", "depth_net.context_conv.{t}")]
    for path in ("depth", "context"):
        rules += [KeyRule(DN + f"{path}_mlp.fc1.{{t}}", f"depth_net.{path}_mlp.0.{{t}}"),
                  KeyRule(DN + f"{path}_mlp.fc2.{{t}}", f"depth_net.{path}_mlp.2.{{t}}"),
                  KeyRule(DN + f"{path}_se.{{rest}}", f"depth_net.{path}_se.{{rest}}")]
    for n in range(1, 5):  # dilations 1, 6, 12, 18 in both
        rules += [KeyRule(aspp + f"aspp{n}.atrous_conv.{{t}}", f"depth_net.depth_conv.3.branches.{n - 1}.0.{{t}}"),
                  KeyRule(aspp + f"aspp{n}.bn.{{t}}", f"depth_net.depth_conv.3.branches.{n - 1}.1.{{t}}")]
    return [*rules, KeyRule(aspp + "global_avg_pool.{i}.{t}", "depth_net.depth_conv.3.image_pool.{i}.{t}"),
            KeyRule(aspp + "conv1.{t}", "depth_net.depth_conv.3.project.0.{t}"),
            KeyRule(aspp + "bn1.{t}", "depth_net.depth_conv.3.project.1.{t}"),
            KeyRule(DN + "depth_conv.{n}.{rest}", "depth_net.depth_conv.{n}.{rest}")]


def _temporal_rules(with_pose_net: bool) -> list[KeyRule]:
    pose_reason = ("the release's frozen pose network, which this config does not run (model.temporal.pose: "
                   "dataset); import with a posenet config to keep it")
    rules = [KeyRule(VT + "temporal_deformable.deformable3.{rest}", "temporal.deform.0.{rest}"),
             KeyRule(VT + "temporal_deformable.deformable5.{rest}", "temporal.deform.1.{rest}"),
             KeyRule(VT + "temporal_deformable.deformable7.{rest}", "temporal.deform.2.{rest}"),
             KeyRule(VT + "temporal_deformable.deformablefuse.{t}", "temporal.deform_fuse.{t}")]
    for n, dilation in enumerate((1, 2, 4)):
        rules += [KeyRule(VT + f"curr_patch.atrous_block{dilation}.{{t}}",
                          f"temporal.current_pattern.branches.{n}.{{t}}"),
                  KeyRule(VT + f"warped_patch.atrous_block{dilation}.{{i}}.{{t}}",
                          f"temporal.warped_pattern.branches.{n}.{{i}}.{{t}}")]
    rules += [KeyRule(VT + "temporal_prehourglass.{rest}", "temporal.pre_hourglass.{rest}"),
              KeyRule(VT + "temporal_hourglass.{rest}", "temporal.post_hourglass.{rest}"),
              KeyRule(TE + "encoder.layer0.0.{t}", "temporal.encoder.model.conv1.{t}"),
              KeyRule(TE + "encoder.layer0.1.{t}", "temporal.encoder.model.bn1.{t}"),
              KeyRule(TE + "encoder.layer1.1.{rest}", "temporal.encoder.model.layer1.{rest}"),
              KeyRule(TE + "encoder.backprojector.{t}", None,
                      reason="a constant pixel grid of the release's plane sweep, recomputed here"),
              KeyRule(TE + "pose_enc.encoder.fc.{t}", None,
                      reason="the pose encoder's ImageNet classifier, which the pose network never runs")]
    if with_pose_net:
        return [*rules, KeyRule(TE + "pose_enc.encoder.{rest}", "temporal.pose_net.encoder.model.{rest}"),
                KeyRule(TE + "pose_dec.net.{rest}", "temporal.pose_net.net.{rest}")]
    return [*rules, KeyRule(TE + "pose_enc.{rest}", None, reason=pose_reason),
            KeyRule(TE + "pose_dec.{rest}", None, reason=pose_reason)]


def _head_rules(with_point_head: bool) -> list[KeyRule]:
    rules = [KeyRule(HEAD + "occ_convs.0.{i}.{t}", "occ_head.conv.{i}.{t}")]
    point = [(HEAD + "img_feat_reduce.{t}", "point_head.img_reduce.{t}"),
             (HEAD + "point_soft_weights.{i}.{t}", "point_head.soft_weights.{i}.{t}"),
             (HEAD + "point_occ_mlp.fc1.{t}", "point_head.mlp.0.{t}"),
             (HEAD + "point_occ_mlp.fc2.{t}", "point_head.mlp.2.{t}")]
    if with_point_head:
        return rules + [KeyRule(a, b) for a, b in point]
    reason = "the point branch (a training-only head), which this config switches off (model.head.point_branch)"
    return rules + [KeyRule(a, None, reason=reason) for a, _ in point]


def htcl_keymap(ours: dict[str, torch.Tensor]) -> KeyMap:
    """The official <-> ours key rules for the HTCL model whose state dict is ``ours`` (the backbone's stage split,
    the pose network and the point head are read from it)."""
    constant = "a constant of the release's voxel pooling geometry (a frozen Parameter), recomputed here"
    return KeyMap([
        *_backbone_rules(ours),
        KeyRule("img_neck.deblocks.{i}.{j}.{t}", "image_encoder.neck.deblocks.{i}.{j}.{t}"),
        *[KeyRule(VT + name, None, reason=constant) for name in ("dx", "bx", "nx", "frustum")],
        KeyRule(VT + "depth_aggregation_net.{rest}", None,
                reason="DepthAggregation, built only with use_voxel_net (off in the release's config)"),
        *_depth_net_rules(),
        *_leastereo_rules("feature", "stereo.feature."),
        *_leastereo_rules("matching", "stereo.matching."),
        KeyRule(VT + "volume_interaction.out3.{rest}", "depth_fusion.out.{rest}"),
        KeyRule(VT + "volume_interaction.{rest}", "depth_fusion.{rest}"),
        *_temporal_rules(any(k.startswith("temporal.pose_net.") for k in ours)),
        KeyRule("img_bev_encoder_backbone.input_proj.{rest}", "voxel_encoder.input_proj.{rest}"),
        KeyRule("img_bev_encoder_backbone.layers.{i}.{rest}", "voxel_encoder.stages.{i}.{rest}"),
        KeyRule(NECK3D + "deblocks.{rest}", "voxel_neck.deblocks.{rest}"),
        KeyRule(NECK3D + "alpha", "alpha"),
        KeyRule(NECK3D + "attention_3d.to_q.{t}", "attention.to_q.{t}"),
        KeyRule(ATTENTION_QKV, "attention.to_kv.weight", KV_OF_QKV),
        KeyRule(NECK3D + "attention_3d.to_out.{rest}", "attention.to_out.{rest}"),
        KeyRule(NECK3D + "aspp3d.{rest}", None, reason="ASPP_3D, commented out of the release's SECONDFPN3D"),
        *_head_rules(any(k.startswith("point_head.") for k in ours)),
    ])


def _pose_net_layers() -> dict[str, torch.Tensor]:
    """The release's pose network in its official names (zeros; the classifier ``fc`` included)."""
    from ssc_core.models.htcl import PoseNet

    pose = {"temporal.pose_net." + k: v for k, v in PoseNet().state_dict().items()}
    out = {k: torch.zeros_like(v) for k, v in KeyMap(_temporal_rules(True)).to_official(pose).state.items()}
    out[TE + "pose_enc.encoder.fc.weight"] = torch.zeros(1000, 512)
    out[TE + "pose_enc.encoder.fc.bias"] = torch.zeros(1000)
    return out


def unused_official_layers(ours: dict[str, torch.Tensor], config: dict) -> dict[str, torch.Tensor]:
    """The tensors the release stores but never learns or runs (see the module docstring), zero-filled in their
    official shapes for the images of ``config`` (``data.image_crop``), so that ``htcl_to_official`` gives a
    complete file."""
    h, w = (int(s) for s in (config.get("data") or {}).get("image_crop", (384, 1280)))
    bins = ours["depth_net.depth_conv.5.weight"].shape[0]
    grid = h // 4 * (w // 4)
    out = {VT + "dx": torch.zeros(3), VT + "bx": torch.zeros(3), VT + "nx": torch.zeros(3, dtype=torch.long),
           VT + "frustum": torch.zeros(bins, h // 8, w // 8, 3),
           TE + "encoder.backprojector.id_coords": torch.zeros(2, h // 4, w // 4),
           TE + "encoder.backprojector.ones": torch.zeros(MATCHING_DEPTH_BINS, 1, grid),
           TE + "encoder.backprojector.pix_coords": torch.zeros(MATCHING_DEPTH_BINS, 3, grid)}
    pose = _pose_net_layers()
    if any(k.startswith("temporal.pose_net.") for k in ours):
        pose = {k: v for k, v in pose.items() if ".fc." in k}
    if "point_head.img_reduce.weight" not in ours:
        c, img_c = ours["occ_head.conv.0.weight"].shape[1], ours["depth_net.reduce_conv.0.weight"].shape[1]
        k = ours["occ_head.conv.3.weight"].shape[0]
        shapes = {"img_feat_reduce": (c, img_c), "point_soft_weights.0": (c // 2, c),
                  "point_soft_weights.2": (2, c // 2), "point_occ_mlp.fc1": (c, c), "point_occ_mlp.fc2": (k, c)}
        for name, (rows, cols) in shapes.items():
            out[HEAD + name + ".weight"], out[HEAD + name + ".bias"] = torch.zeros(rows, cols), torch.zeros(rows)
    return {**out, **pose}


def htcl_to_official(ours: dict[str, torch.Tensor], config: dict) -> dict[str, torch.Tensor]:
    """Our HTCL state dict (of the model built from ``config``) -> the release's ``state_dict`` (every official
    key; the never-learned or never-run tensors and the query third of ``to_qkv`` zero-filled): the inverse of
    the converter, used to export and to build official-layout test files. CheckpointMismatchError naming any
    key of ours that no rule covers."""
    mapped = htcl_keymap(ours).to_official(ours)
    if mapped.unmatched:
        raise CheckpointMismatchError(f"no official HTCL key for {len(mapped.unmatched)} of our keys: "
                                      f"{mapped.unmatched[:8]}")
    return {**mapped.state, **unused_official_layers(ours, config)}


def _check_fits(state: dict[str, torch.Tensor], own: dict[str, torch.Tensor], cfg: dict) -> None:
    """Name the config keys an official file does not fit (a clearer message than a list of shapes)."""
    checks = (
        ("img_backbone.layers.0.conv.weight", BACKBONE + "conv_stem.weight", "EfficientNet stem width",
         "model.backbone.name (the release: tf_efficientnet_b7, stem 64)"),
        (HEAD + "occ_convs.0.3.weight", "occ_head.conv.3.weight", "classes",
         "model.num_classes (20 = SemanticKITTI)"),
        (DN + "depth_conv.5.weight", "depth_net.depth_conv.5.weight", "depth bins",
         "model.depth.bins (the release: [2.0, 58.0, 0.5] = 112 bins)"),
        ("img_neck.deblocks.0.0.weight", "image_encoder.neck.deblocks.0.0.weight", "neck channels",
         "model.neck.channels (the release: 128)"),
    )
    for official, mine, what, key in checks:
        if official in state and mine in own and state[official].shape[0] != own[mine].shape[0]:
            raise CheckpointMismatchError(f"the checkpoint has {state[official].shape[0]} {what} but the config "
                                          f"builds {own[mine].shape[0]}: check {key}")
    if any(k.startswith(VT + "leamodel.") for k in state) and not any(k.startswith("stereo.") for k in own):
        raise CheckpointMismatchError("the checkpoint holds the stereo branch but the config switches it off "
                                      "(model.stereo.enabled)")
    if any(k.startswith(VT + "temporal_") for k in state) and "alpha" not in own:
        raise CheckpointMismatchError("the checkpoint holds the temporal branch but the config switches it off "
                                      "(model.temporal.enabled)")


@register_converter("htcl", "HTCL, Arlo0o/HTCL mmdet3d checkpoint (SemanticKITTI, temporal_baseline.py); "
                    "--config htcl")
def convert_htcl(state: dict[str, torch.Tensor], config: dict | None) -> Conversion:
    """Official HTCL state dict + an HTCL config -> our checkpoint (model state, config, class map, grid,
    version) and the dropped keys. CheckpointMismatchError names unknown official keys, and (through the model
    load) every missing or mis-shaped one."""
    from ssc_core.models import build_model

    if config is None or (config.get("model") or {}).get("name") != "htcl":
        raise ConfigError("the htcl converter needs an HTCL config (model.name: htcl), e.g. --config htcl")
    model = build_model(config)
    own = model.state_dict()
    _check_fits(state, own, config)
    dropped = load_converted(htcl_keymap(own), state, model, "HTCL")
    if ATTENTION_QKV in state:
        rows = state[ATTENTION_QKV].shape[0] // 3
        dropped[f"{ATTENTION_QKV}[:{rows}]"] = "the query rows of to_qkv, which the forward replaces by to_q(query)"
    return ssc_conversion(model, config, dropped, "semantic_kitti")
