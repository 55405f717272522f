"""SECOND-style FPN necks (mmdet3d ``SECONDFPN`` and the occupancy codebases' ``SECONDFPN3D``): every input level
is brought to one common resolution by its own up- or down-sampling layer, normalised, ReLU'd, and the levels
are concatenated along channels.

Per level with stride s (the factor its map is scaled by):

- s > 1: transposed convolution with kernel = stride = s, no bias;
- s == 1: a 1-kernel transposed convolution (mmdet3d's default ``use_conv_for_no_stride=False``), no bias;
- s < 1: convolution with kernel = stride = round(1 / s), no bias (downsampling);

each followed by the norm (``norm``, see ``blocks/norm.py``) and ReLU. HTCL / L2COcc's image neck:
``SECONDFPN([48, 80, 224, 640, 2560], [128] * 5, [0.5, 1, 2, 4, 4])`` with BN(eps 1e-3, momentum 0.01) turns
EfficientNet-B7's strides 4/8/16/32/32 into 5 x 128 = 640 channels at stride 8. HTCL's 3D neck:
``SECONDFPN3D([128, 256, 512], [128] * 3, [1, 2, 4])`` with GN(32) gives 384 channels at the 1:2 grid.
Transposed convolutions are Kaiming-initialised (fan_out, ReLU), as mmdet3d's ``init_cfg`` does for the 2D neck.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ssc_core.errors import ConfigError
from ssc_core.models.blocks.norm import NormSpec, build_norm

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_DECONV = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
SECONDFPN_NORM = {"type": "BN", "eps": 1e-3, "momentum": 0.01}
SECONDFPN3D_NORM = {"type": "GN", "num_groups": 32}


def _resample_layer(in_channels: int, out_channels: int, stride: float, dims: int) -> nn.Module:
    if stride >= 1:
        if stride != int(stride):
            raise ConfigError(f"SECONDFPN upsampling strides >= 1 must be integers, got {stride}")
        return _DECONV[dims](in_channels, out_channels, int(stride), stride=int(stride), bias=False)
    factor = round(1.0 / stride)
    if stride <= 0 or abs(factor * stride - 1.0) > 1e-6:
        raise ConfigError(f"SECONDFPN downsampling strides must be 1/n, got {stride}")
    return _CONV[dims](in_channels, out_channels, factor, stride=factor, bias=False)


class SECONDFPN(nn.Module):
    """Multi-level maps -> one map at a common resolution.

    forward(list of (B, in_channels[i], *S_i)) -> (B, sum(out_channels), *S_i * strides[i]) (the scaled sizes
    must agree). ``dims`` = 2 for images (N, C, H, W), 3 for volumes (B, C, X, Y, Z); ``norm`` as in
    ``blocks/norm.py`` (default: mmdet3d's BN for 2D, GN(32) for 3D)."""

    def __init__(self, in_channels: Sequence[int], out_channels: Sequence[int], strides: Sequence[float],
                 norm: NormSpec | None = None, dims: int = 2) -> None:
        super().__init__()
        if not len(in_channels) == len(out_channels) == len(strides) or not in_channels:
            raise ConfigError(f"SECONDFPN needs equally long non-empty in_channels / out_channels / strides, got "
                              f"{list(in_channels)} / {list(out_channels)} / {list(strides)}")
        if dims not in _CONV:
            raise ConfigError(f"SECONDFPN works on 2D or 3D maps, got dims={dims}")
        norm = norm if norm is not None else (SECONDFPN_NORM if dims == 2 else SECONDFPN3D_NORM)
        self.strides = [float(s) for s in strides]
        self.out_channels = sum(int(c) for c in out_channels)
        self.deblocks = nn.ModuleList(
            nn.Sequential(_resample_layer(int(c_in), int(c_out), s, dims), build_norm(norm, int(c_out), dims),
                          nn.ReLU(inplace=True))
            for c_in, c_out, s in zip(in_channels, out_channels, self.strides)
        )
        for m in self.modules():
            if isinstance(m, _DECONV[dims]):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(feats) != len(self.deblocks):
            raise ValueError(f"SECONDFPN built for {len(self.deblocks)} levels got {len(feats)}")
        ups = [block(x) for block, x in zip(self.deblocks, feats)]
        sizes = {tuple(u.shape[2:]) for u in ups}
        if len(sizes) != 1:
            raise ValueError(f"SECONDFPN levels do not meet at one size after resampling: {sorted(sizes)} "
                             f"(input sizes {[tuple(x.shape[2:]) for x in feats]}, strides {self.strides})")
        return torch.cat(ups, dim=1) if len(ups) > 1 else ups[0]


class SECONDFPN3D(SECONDFPN):
    """SECONDFPN on volumes (B, C, X, Y, Z), GN(32) by default (HTCL's ``SECONDFPN3D`` without its temporal
    fusion, which lives in the model)."""

    def __init__(self, in_channels: Sequence[int], out_channels: Sequence[int], strides: Sequence[float],
                 norm: NormSpec | None = None) -> None:
        super().__init__(in_channels, out_channels, strides, norm=norm, dims=3)
