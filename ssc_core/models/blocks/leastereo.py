"""LEAStereo's searched stereo networks (Cheng et al., NeurIPS 2020) as HTCL ships them (``image2bev/LEAStereo``):
a 2D feature net at stride 3 and a 3D matching net on a concatenation cost volume, both chains of searched cells.

A cell at level l (width C = f * 2^l, f = ``filter_multiplier``, 8 in the release) takes the two previous outputs
(s0, s1): s1 is resampled by the path (down x0.5, same, up x2: bilinear / trilinear, align_corners, odd sizes
(n - 1) * s + 1), s0 resized to s1's size and projected to C by a 1x1 ConvBR where its width differs, s1 always
projected; three steps each add two operations (3x3 ConvBR or identity) on earlier states; the output is the
concatenation of the last four states (4C). ConvBR = conv (no bias) + BatchNorm + ReLU, Kaiming fan_out.

Feature net (searched path levels [1, 0, 1, 0, 0, 0]): stems 3 -> 2f (3x3), 2f -> 4f (3x3, stride 3), 4f -> 4f;
six cells; a 1x1 conv (bias) 4f -> 4f. (N, 3, H, W) -> (N, 4f, H/3, W/3).
Matching net (path [1, 1, 2, 2, 1, 2, 2, 2, 1, 1, 0, 1]): stems 8f -> 4f, 4f -> 4f (3x3x3); twelve cells, with the
outputs of cells 1 and 4 fused by a 3x3x3 ConvBR (16f -> 8f) into cell 5's input and those of cells 4 and 8 into
cell 9's; a 1x1x1 ConvBR 8f -> 4f, trilinear upsampling to the input size, a 3x3x3 conv (bias) 4f -> 1.
(B, 8f, D, H, W) -> (B, 1, D, H, W).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

FEATURE_PATH = (1, 0, 1, 0, 0, 0)
MATCHING_PATH = (1, 1, 2, 2, 1, 2, 2, 2, 1, 1, 0, 1)
# Per step: the (input state, operation) pairs summed into the new state (states 0, 1 = the cell's inputs).
FEATURE_STEPS = (((0, "conv"), (1, "skip")), ((1, "conv"), (2, "conv")), ((0, "conv"), (3, "conv")))
MATCHING_STEPS = (((0, "conv"), (1, "conv")), ((1, "conv"), (2, "conv")), ((1, "conv"), (3, "conv")))
BLOCK_MULTIPLIER = 4  # the last four states form a cell's output

_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_BN = {2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


class ConvBR(nn.Sequential):
    """Conv (no bias) + BatchNorm + ReLU on ``dims``-D maps."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 dims: int = 2) -> None:
        super().__init__(_CONV[dims](in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                                     bias=False), _BN[dims](out_channels), nn.ReLU(inplace=True))


def _scaled(size: int, scale: float) -> int:
    return int((size - 1) * scale + 1) if size % 2 == 1 else int(size * scale)


class SearchedCell(nn.Module):
    """One LEAStereo cell (see the module docstring). forward(s0, s1) -> (s1, output (4C channels))."""

    def __init__(self, c_prev_prev: int, c_prev: int, channels: int, resample: int,
                 steps: Sequence[Sequence[tuple[int, str]]], dims: int) -> None:
        super().__init__()
        self.dims, self.resample, self.channels = dims, resample, channels
        self.steps = [[idx for idx, _ in step] for step in steps]
        self.pre_preprocess = ConvBR(c_prev_prev, channels, 1, dims=dims)
        self.preprocess = ConvBR(c_prev, channels, 1, dims=dims)
        self.ops = nn.ModuleList(
            nn.ModuleList(ConvBR(channels, channels, 3, 1, 1, dims) if op == "conv" else nn.Identity()
                          for _, op in step)
            for step in steps
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        prev = s1
        mode = "bilinear" if self.dims == 2 else "trilinear"
        if self.resample:
            scale = 2.0 if self.resample > 0 else 0.5
            s1 = F.interpolate(s1, [_scaled(s, scale) for s in s1.shape[2:]], mode=mode, align_corners=True)
        if s0.shape[2:] != s1.shape[2:]:
            s0 = F.interpolate(s0, s1.shape[2:], mode=mode, align_corners=True)
        if s0.shape[1] != self.channels:
            s0 = self.pre_preprocess(s0)
        states = [s0, self.preprocess(s1)]
        for inputs, ops in zip(self.steps, self.ops):
            states.append(sum(op(states[i]) for i, op in zip(inputs, ops)))
        return prev, torch.cat(states[-BLOCK_MULTIPLIER:], dim=1)


def _cells(path: Sequence[int], steps, f: int, dims: int) -> nn.ModuleList:
    """The chain of cells along a searched path of levels, widths f * 2^level."""
    initial = BLOCK_MULTIPLIER * f
    cells = []
    for i, level in enumerate(path):
        prev_level = path[i - 1] if i > 0 else 0
        c_prev = initial if i == 0 else BLOCK_MULTIPLIER * f * 2 ** prev_level
        c_prev_prev = initial if i < 2 else BLOCK_MULTIPLIER * f * 2 ** path[i - 2]
        resample = -level if i == 0 else prev_level - level
        cells.append(SearchedCell(c_prev_prev, c_prev, f * 2 ** level, resample, steps, dims))
    return nn.ModuleList(cells)


def _kaiming(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Conv3d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm3d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class FeatureNet(nn.Module):
    """(N, 3, H, W) normalised image -> (N, 4f, ceil(H/3), ceil(W/3)) matching features."""

    def __init__(self, filter_multiplier: int = 8) -> None:
        super().__init__()
        f = filter_multiplier
        self.out_channels = BLOCK_MULTIPLIER * f
        self.stem0 = ConvBR(3, 2 * f, 3, 1, 1)
        self.stem1 = ConvBR(2 * f, 4 * f, 3, 3, 1)
        self.stem2 = ConvBR(4 * f, 4 * f, 3, 1, 1)
        self.cells = _cells(FEATURE_PATH, FEATURE_STEPS, f, 2)
        self.last = nn.Conv2d(4 * f, 4 * f, 1)
        _kaiming(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stem1 = self.stem1(self.stem0(x))
        out = (stem1, self.stem2(stem1))
        for cell in self.cells:
            out = cell(*out)
        return self.last(out[1])


class MatchingNet(nn.Module):
    """(B, 8f, D, H, W) cost volume -> (B, 1, D, H, W) matching cost."""

    FUSE_AFTER = {4: 1, 8: 4}  # the output of cell k is fused with that of cell FUSE_AFTER[k] into cell k+1

    def __init__(self, filter_multiplier: int = 8) -> None:
        super().__init__()
        f = filter_multiplier
        self.stem0 = ConvBR(8 * f, 4 * f, 3, 1, 1, dims=3)
        self.stem1 = ConvBR(4 * f, 4 * f, 3, 1, 1, dims=3)
        self.cells = _cells(MATCHING_PATH, MATCHING_STEPS, f, 3)
        self.fuse = nn.ModuleDict({str(k): ConvBR(16 * f, 8 * f, 3, 1, 1, dims=3) for k in self.FUSE_AFTER})
        self.last_6 = ConvBR(8 * f, 4 * f, 1, dims=3)
        self.last_3 = nn.Conv3d(4 * f, 1, 3, 1, 1)
        _kaiming(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        stem0 = self.stem0(x)
        out = (stem0, self.stem1(stem0))
        outputs = []
        for i, cell in enumerate(self.cells):
            out = cell(*out)
            outputs.append(out[1])
            if i in self.FUSE_AFTER:
                fused = self.fuse[str(i)](torch.cat([outputs[self.FUSE_AFTER[i]], out[1]], dim=1))
                out = (out[0], fused)
        up = F.interpolate(self.last_6(out[1]), x.shape[2:], mode="trilinear", align_corners=True)
        return self.last_3(up)
