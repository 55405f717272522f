"""Converters of the official MobileStereoNet weights (cogsys-tuebingen/mobilestereonet, also shipped with SGN's
preprocessing as ``MSNet3D_SF_DS_KITTI2015.ckpt``): ``{'epoch', 'model', 'optimizer'}`` files whose ``model``
is the state dict of an ``nn.DataParallel`` (``module.`` prefixes, removed on reading).

Keys map by module renames (feature_extraction -> features, firstconv -> stem, dres0/1 -> cost_filter0/1,
encoder_decoder1..3 -> hourglasses.0..2, classif3 -> classifier; MSNet2D: preconv11 -> feature_reduce,
conv3d -> interlace_conv, volume11 -> volume_proj); no tensor changes layout. The auxiliary classifiers
``classif0..2`` only serve the training loss and are dropped and listed. Both variants use max_disparity 192.
"""

from __future__ import annotations

import torch

from ssc_core.convert.keymap import KeyMap, KeyRule
from ssc_core.convert.registry import Conversion, register_converter
from ssc_core.errors import CheckpointMismatchError
from ssc_core.models.stereo.msnet import build_msnet, stereo_checkpoint
from ssc_core.training.checkpoint import load_model_state

MAX_DISPARITY = 192

MSNET_KEYS = KeyMap([
    KeyRule("feature_extraction.firstconv.{rest}", "features.stem.{rest}"),
    KeyRule("feature_extraction.{rest}", "features.{rest}"),
    KeyRule("preconv11.{rest}", "feature_reduce.{rest}"),
    KeyRule("conv3d.{rest}", "interlace_conv.{rest}"),
    KeyRule("volume11.{rest}", "volume_proj.{rest}"),
    KeyRule("dres0.{rest}", "cost_filter0.{rest}"),
    KeyRule("dres1.{rest}", "cost_filter1.{rest}"),
    KeyRule("encoder_decoder1.{rest}", "hourglasses.0.{rest}"),
    KeyRule("encoder_decoder2.{rest}", "hourglasses.1.{rest}"),
    KeyRule("encoder_decoder3.{rest}", "hourglasses.2.{rest}"),
    KeyRule("classif3.{rest}", "classifier.{rest}"),
    KeyRule("classif{n}.{rest}", None, reason="auxiliary classifier that only the training loss uses"),
])


def _convert(variant: str, state: dict[str, torch.Tensor]) -> Conversion:
    other = "msnet3d" if variant == "msnet2d" else "msnet2d"
    is_2d = any(k.startswith("preconv11.") for k in state)
    if is_2d != (variant == "msnet2d"):
        raise CheckpointMismatchError(f"the file holds {other.upper().replace('NET', 'Net')} weights, not "
                                      f"{variant.upper().replace('NET', 'Net')}: use --method {other}")
    mapped = MSNET_KEYS.to_ours(state)
    if mapped.unmatched:
        raise CheckpointMismatchError(f"{len(mapped.unmatched)} key(s) of the file are not MobileStereoNet keys: "
                                      f"{mapped.unmatched[:10]}")
    net = build_msnet(variant, MAX_DISPARITY)
    load_model_state(net, mapped.state, source=f"the converted {variant} checkpoint")
    return Conversion(stereo_checkpoint(net), mapped.dropped)


@register_converter("msnet3d", "MSNet3D stereo depth (mobilestereonet / SGN's MSNet3D_SF_DS_KITTI2015.ckpt), for "
                    "data.points.source: stereo_msnet; no --config", needs_config=False)
def convert_msnet3d(state: dict[str, torch.Tensor], config: dict | None) -> Conversion:
    """Official MSNet3D state dict -> our stereo depth checkpoint and the dropped keys."""
    return _convert("msnet3d", state)


@register_converter("msnet2d", "MSNet2D stereo depth (mobilestereonet), for data.points.source: stereo_msnet; "
                    "no --config", needs_config=False)
def convert_msnet2d(state: dict[str, torch.Tensor], config: dict | None) -> Conversion:
    """Official MSNet2D state dict -> our stereo depth checkpoint and the dropped keys."""
    return _convert("msnet2d", state)


def msnet_to_official(ours: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our MobileStereoNet state dict -> the official ``model`` state dict, the auxiliary classifiers
    ``classif0..2`` zero-filled (they have ``classif3``'s shapes): the inverse of the converter, used to export
    and to build official-layout test files."""
    mapped = MSNET_KEYS.to_official(ours)
    if mapped.unmatched:
        raise CheckpointMismatchError(f"no official MobileStereoNet key for {mapped.unmatched[:8]}")
    auxiliary = {f"classif{n}." + k.removeprefix("classif3."): torch.zeros_like(v)
                 for k, v in mapped.state.items() if k.startswith("classif3.") for n in range(3)}
    return {**mapped.state, **auxiliary}
