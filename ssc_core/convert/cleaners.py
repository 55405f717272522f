"""Converter of CleanerS's released checkpoints (fereenwong/CleanerS: the Segformer-B2 teacher and student, NYUv2).

The official network is ``VoxelSSC`` (``cleaner/models/segmentation/voxel_seg.py``), saved by its ``save_checkpoint``
as ``{'model': state_dict, 'optimizer', 'scheduler', 'epoch', 'best_val'}``: ``encoder`` (SegFormer's ``mit_b2``),
``head`` (``SegFormerHead``), ``TSDFNet`` and ``complete`` (``Unet3d``). Teacher and student are the same network,
so one converter serves both; the config the user names (``cleaners_teacher`` / ``cleaners_student``) says which
input the imported model reads. The release's test script strips a ``student.`` prefix from the names; so does this
converter, and a ``teacher.`` subtree saved beside the student is dropped and listed. The keys map onto
``ssc_core.models.cleaners.VoxelSSC`` by renames, except for:

- the encoder: MiT keeps PVT's original names (``patch_embed1``, ``block1.j``, ``norm1``, ``mlp.dwconv.dwconv``),
  timm's ``pvt_v2`` numbers stages (``patch_embed``, ``stages.s.downsample``, ``stages.s.blocks.j``,
  ``stages.s.norm``, ``mlp.dwconv``); every tensor keeps its shape;
- the SegFormer head's per-level ``linear_cN.proj`` are ``nn.Linear`` (E, C); ours are 1x1 convolutions
  (E, C, 1, 1), the same numbers. Both concatenate the levels coarsest first, so the fusion conv keeps its layout;
- the official ``Bottleneck3D`` builds its three pooling shortcuts (``downsample2..4``) in every block but runs them
  only in the strided first block of a stage; ours (``pool2..4``) exist only there. Those of blocks 1-3 are
  dropped and listed.

The 3D convolutions, transposed convolutions and BatchNorms of the TSDF net and the 3D U-Net keep their layouts.
"""

from __future__ import annotations

import re

import torch

from ssc_core.convert.keymap import KeyMap, KeyRule, Relayout
from ssc_core.convert.registry import Conversion, load_converted, register_converter, ssc_conversion
from ssc_core.errors import CheckpointMismatchError, ConfigError
from ssc_core.types import GridSpec

ENC = "encoder.model."
MIT_STAGES = 4
PATCH_PARTS = ("proj", "norm")
MIT_BLOCK_PARTS = ("norm1", "norm2", "attn.q", "attn.kv", "attn.proj", "attn.sr", "attn.norm", "mlp.fc1", "mlp.fc2")
MIT_BACKBONE = re.compile(r"pvt_v2_b[0-5]\Z")  # MiT-B0..B5 (the release: B2); not the linear-attention *_li
DDR_STACKS = (("TSDFNet.completion_layer", "tsdf_net.body.layer"), ("complete.semantic_layer", "completion.layer"))
STUDENT, TEACHER = "student.", "teacher."
LINEAR_AS_CONV = Relayout("nn.Linear (E, C) -> 1x1 Conv2d (E, C, 1, 1)", lambda t: t[:, :, None, None],
                          lambda t: t.flatten(1))


def _encoder_rules() -> list[KeyRule]:
    rules = []
    for s in range(MIT_STAGES):
        official, ours = f"encoder.block{s + 1}.{{j}}.", f"{ENC}stages.{s}.blocks.{{j}}."
        embed = f"{ENC}stages.{s}.downsample." if s else ENC + "patch_embed."
        rules += [KeyRule(f"encoder.patch_embed{s + 1}.{part}.{{t}}", embed + f"{part}.{{t}}") for part in PATCH_PARTS]
        rules.append(KeyRule(official + "mlp.dwconv.dwconv.{t}", ours + "mlp.dwconv.{t}"))
        rules += [KeyRule(official + f"{part}.{{t}}", ours + f"{part}.{{t}}") for part in MIT_BLOCK_PARTS]
        rules.append(KeyRule(f"encoder.norm{s + 1}.{{t}}", f"{ENC}stages.{s}.norm.{{t}}"))
    return rules


def _head_rules() -> list[KeyRule]:
    rules = []
    for level in range(MIT_STAGES):
        rules += [KeyRule(f"head.linear_c{level + 1}.proj.weight", f"head.linear.{level}.weight", LINEAR_AS_CONV),
                  KeyRule(f"head.linear_c{level + 1}.proj.bias", f"head.linear.{level}.bias")]
    return [*rules, KeyRule("head.linear_fuse.{n}.{t}", "head.fuse.{n}.{t}"),
            KeyRule("head.linear_pred.{t}", "head.classifier.{t}")]


def _ddr_rules(official: str, ours: str) -> list[KeyRule]:
    """A DDR stage (four Bottleneck3D): official ``{official}.i`` <-> ours ``{ours}.i``."""
    unused = ("a pooling shortcut the official Bottleneck3D builds in every block but runs only in the strided "
              "first block of a stage")
    return [KeyRule(official + ".0.downsample{n}.{j}.{t}", ours + ".0.pool{n}.{j}.{t}"),
            KeyRule(official + ".{i}.downsample{n}.{j}.{t}", None, reason=unused),
            KeyRule(official + ".{i}.downsample.{n}.{t}", ours + ".{i}.downsample.{n}.{t}"),
            KeyRule(official + ".{i}.conv{n}.{t}", ours + ".{i}.conv{n}.{t}"),
            KeyRule(official + ".{i}.bn{n}.{t}", ours + ".{i}.bn{n}.{t}")]


def cleaners_keymap() -> KeyMap:
    """The official <-> ours key rules of CleanerS's VoxelSSC (module docstring)."""
    rules = [*_encoder_rules(), *_head_rules(), KeyRule("TSDFNet.oper1.{n}.{t}", "tsdf_net.stem.{n}.{t}")]
    for official, ours in DDR_STACKS:
        for stage in (1, 2):
            rules += _ddr_rules(f"{official}{stage}", f"{ours}{stage}")
    return KeyMap([*rules,
                   KeyRule("TSDFNet.enc_tsdf.0.{n}.{t}", "tsdf_net.body.up1.{n}.{t}"),
                   KeyRule("TSDFNet.enc_tsdf.1.{n}.{t}", "tsdf_net.body.up2.{n}.{t}"),
                   KeyRule("complete.classify_semantic.0.{n}.{t}", "completion.up1.{n}.{t}"),
                   KeyRule("complete.classify_semantic.1.{n}.{t}", "completion.up2.{n}.{t}"),
                   KeyRule("complete.classify_semantic.2.1.{t}", "classifier.1.{t}")])


def unused_official_layers(ours: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The pooling shortcuts of the unstrided official bottlenecks (never run; module docstring), zero-filled in
    their official shapes for the model whose state dict is ``ours`` (BatchNorm variances one)."""
    out = {}
    for official, mine in DDR_STACKS:
        for key, tensor in ours.items():
            m = re.match(re.escape(mine) + r"(\d)\.(\d+)\.conv2\.weight\Z", key)
            if m is None or m.group(2) == "0":
                continue
            planes = tensor.shape[0]
            for n in (2, 3, 4):
                prefix = f"{official}{m.group(1)}.{m.group(2)}.downsample{n}."
                out[prefix + "1.weight"] = torch.zeros(planes, planes, 1, 1, 1)
                out.update({prefix + f"2.{t}": torch.zeros(planes) for t in ("weight", "bias", "running_mean")})
                out[prefix + "2.running_var"] = torch.ones(planes)
                out[prefix + "2.num_batches_tracked"] = torch.tensor(0)
    return out


def cleaners_to_official(ours: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our CleanerS state dict -> the release's ``model`` state dict (every official key; the never-run pooling
    shortcuts zero-filled): the inverse of the converter, used to build official-layout test files.
    CheckpointMismatchError naming any key of ours that no rule covers."""
    mapped = cleaners_keymap().to_official(ours)
    if mapped.unmatched:
        raise CheckpointMismatchError(f"no official CleanerS key for {len(mapped.unmatched)} of our keys: "
                                      f"{mapped.unmatched[:8]}")
    return {**mapped.state, **unused_official_layers(ours)}


def _student_subtree(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(the state with a ``student.`` prefix removed, the ``teacher.`` keys dropped) when the file carries the
    prefix; the state unchanged otherwise."""
    if not any(k.startswith(STUDENT) for k in state):
        return state, {}
    reason = "the teacher saved beside the student; the release's test loads the student (prefix 'student.')"
    dropped = {k: reason for k in state if k.startswith(TEACHER)}
    return {k.removeprefix(STUDENT): v for k, v in state.items() if k not in dropped}, dropped


def _check_config(config: dict | None) -> None:
    model = (config or {}).get("model") or {}
    if model.get("name") != "cleaners":
        raise ConfigError("the cleaners converter needs a CleanerS config (model.name: cleaners), e.g. --config "
                          "cleaners_student or cleaners_teacher")
    backbone = str((model.get("backbone") or {}).get("name", "pvt_v2_b2"))
    if not MIT_BACKBONE.match(backbone):
        raise ConfigError(f"the released CleanerS checkpoints use SegFormer's MiT-B2 encoder (timm pvt_v2_b2 with "
                          f"mlp_ratios 4); this config's backbone is {backbone!r}. CleanerS on ResNet-50 has no "
                          f"released checkpoint, so it cannot be imported")


def _check_fits(state: dict[str, torch.Tensor], own: dict[str, torch.Tensor]) -> None:
    """Name the config keys an official file does not fit (a clearer message than a list of shapes)."""
    checks = (("head.linear_pred.weight", "head.classifier.weight", "classes", "model.num_classes (12 = NYU)"),
              ("head.linear_fuse.0.weight", "head.fuse.0.weight", "feature channels",
               "model.feature (the release: 256)"),
              ("TSDFNet.oper1.3.weight", "tsdf_net.stem.3.weight", "TSDF stem channels",
               "model.tsdf_stem (the release: [3, 64])"),
              ("encoder.patch_embed1.proj.weight", ENC + "patch_embed.proj.weight", "encoder channels",
               "model.backbone.name (the release: pvt_v2_b2 = MiT-B2)"))
    for official, mine, what, key in checks:
        if official in state and mine in own and state[official].shape[0] != own[mine].shape[0]:
            raise CheckpointMismatchError(f"the checkpoint has {state[official].shape[0]} {what} but the config "
                                          f"builds {own[mine].shape[0]}: check {key}")


@register_converter("cleaners", "CleanerS, fereenwong/CleanerS checkpoint (NYUv2, Segformer-B2 teacher or "
                    "student); --config cleaners_student or cleaners_teacher")
def convert_cleaners(state: dict[str, torch.Tensor], config: dict | None) -> Conversion:
    """Official CleanerS state dict + a CleanerS config -> our checkpoint (model state, config, class map, grid,
    version) and the dropped keys. CheckpointMismatchError names unknown official keys, official keys the
    config's model has no place for, and missing or mis-shaped ones."""
    from ssc_core.models import build_model

    _check_config(config)
    state, dropped = _student_subtree(state)
    model = build_model(config)
    _check_fits(state, model.state_dict())
    dropped.update(load_converted(cleaners_keymap(), state, model, "CleanerS",
                                  " (a deeper encoder? check model.backbone.name)"))
    return ssc_conversion(model, config, dropped, "nyu", GridSpec.nyu().to_dict())
