"""L2COcc / CGFormer's geometry depth net: a mono depth distribution (the camera-aware DepthNet) and a stereo one
(a precomputed stereo depth map, min-pooled per feature pixel, one-hot over the depth bins and refined by a small
2D U-Net) fused by ``DepthAggregation`` (fact sheet §2.1).

- ``StereoVolumeEncoder``: (B, D, h, w) one-hot -> conv(D, D) + GN(2) -> ``SimpleUNet`` -> 1x1 conv -> logits.
- ``NeighborhoodCrossAttention``: NATTEN-style cross-attention over a k x k neighbourhood (the window is shifted
  inwards at the borders so every query sees k x k keys) with a learned relative-position bias, in plain torch.
- ``DepthAggregation``: each distribution attends to the other (residual on the attended one, learned gate
  initialised at 0), the two are stacked as 2 channels of a (B, 2, D, h, w) volume -> Conv3d -> ``SimpleUNet``
  (3D) -> ``ChannelAttention3D`` -> Conv3d to one channel: fused depth logits (B, D, h, w).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ssc_core.errors import ConfigError
from ssc_core.losses.depth import depth_one_hot, min_pool_depth
from ssc_core.models.blocks.norm import build_norm

GN2: dict = {"type": "GN", "num_groups": 2}
_CONV = {2: nn.Conv2d, 3: nn.Conv3d}
_DECONV = {2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}


def conv_gn(in_channels: int, out_channels: int, kernel: int, stride: int, dims: int) -> nn.Sequential:
    """Conv (no bias, padding kernel // 2) + GroupNorm(2): CGFormer's ``convbn_2d`` / ``convbn_3d``."""
    return nn.Sequential(_CONV[dims](in_channels, out_channels, kernel, stride=stride, padding=kernel // 2,
                                     bias=False), build_norm(GN2, out_channels, dims))


class SimpleUNet(nn.Module):
    """Two stride-2 stages (C -> 2C -> 4C, conv-GN-ReLU pairs) and two transposed-conv stages back (BatchNorm) with
    1x1 conv-GN skips, ReLU after each sum. Shape-preserving; every spatial size must be a multiple of 4."""

    def __init__(self, channels: int, dims: int = 2) -> None:
        super().__init__()
        c = channels
        bn = build_norm
        self.down1 = nn.Sequential(conv_gn(c, 2 * c, 3, 2, dims), nn.ReLU(inplace=True))
        self.down2 = nn.Sequential(conv_gn(2 * c, 2 * c, 3, 1, dims), nn.ReLU(inplace=True))
        self.down3 = nn.Sequential(conv_gn(2 * c, 4 * c, 3, 2, dims), nn.ReLU(inplace=True))
        self.down4 = nn.Sequential(conv_gn(4 * c, 4 * c, 3, 1, dims), nn.ReLU(inplace=True))
        self.up1 = nn.Sequential(_DECONV[dims](4 * c, 2 * c, 3, stride=2, padding=1, output_padding=1, bias=False),
                                 bn("BN", 2 * c, dims))
        self.up2 = nn.Sequential(_DECONV[dims](2 * c, c, 3, stride=2, padding=1, output_padding=1, bias=False),
                                 bn("BN", c, dims))
        self.skip1 = conv_gn(c, c, 1, 1, dims)
        self.skip2 = conv_gn(2 * c, 2 * c, 1, 1, dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(s % 4 for s in x.shape[2:]):
            raise ValueError(f"SimpleUNet needs spatial sizes divisible by 4, got {tuple(x.shape[2:])}")
        d2 = self.down2(self.down1(x))
        d4 = self.down4(self.down3(d2))
        u2 = F.relu(self.up1(d4) + self.skip2(d2), inplace=True)
        return F.relu(self.up2(u2) + self.skip1(x), inplace=True)


class StereoVolumeEncoder(nn.Module):
    """(B, D, h, w) stereo one-hot -> (B, D, h, w) logits: conv3x3 + GN(2), SimpleUNet(D), 1x1 conv."""

    def __init__(self, depth_bins: int) -> None:
        super().__init__()
        self.stem = conv_gn(depth_bins, depth_bins, 3, 1, 2)
        self.unet = SimpleUNet(depth_bins, 2)
        self.out = nn.Conv2d(depth_bins, depth_bins, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.unet(self.stem(x)))


def neighborhood_indices(height: int, width: int, kernel: int, device: torch.device | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """For an (h, w) map: the flat indices (h*w, k*k) of each pixel's k x k neighbourhood, the window shifted
    inwards at the borders (NATTEN), and the flat index (h*w, k*k) of each neighbour's offset into a
    (2k - 1) x (2k - 1) relative-position table."""
    if kernel % 2 == 0 or kernel > min(height, width):
        raise ConfigError(f"neighbourhood kernel {kernel} must be odd and fit the {height} x {width} map")

    def axis(size: int) -> tuple[torch.Tensor, torch.Tensor]:
        pos = torch.arange(size, device=device)
        start = (pos - kernel // 2).clamp(0, size - kernel)
        neighbour = start.unsqueeze(1) + torch.arange(kernel, device=device)  # (size, k)
        return neighbour, neighbour - pos.unsqueeze(1) + kernel - 1  # offsets in [0, 2k - 2]

    rows, row_off = axis(height)
    cols, col_off = axis(width)
    index = (rows[:, None, :, None] * width + cols[None, :, None, :]).reshape(height * width, kernel * kernel)
    table = (row_off[:, None, :, None] * (2 * kernel - 1) + col_off[None, :, None, :])
    return index, table.reshape(height * width, kernel * kernel)


class NeighborhoodCrossAttention(nn.Module):
    """Queries from one map attend to keys / values of another over each pixel's k x k neighbourhood (see
    ``neighborhood_indices``), ``heads`` heads, scaled dot product plus a learned relative-position bias, then a
    linear projection. forward(q (B, h, w, C), kv (B, h, w, C)) -> (B, h, w, C)."""

    def __init__(self, channels: int, heads: int = 1, kernel: int = 5) -> None:
        super().__init__()
        if channels % heads:
            raise ConfigError(f"attention channels {channels} must be divisible by heads {heads}")
        self.heads, self.kernel = heads, kernel
        self.scale = (channels // heads) ** -0.5
        self.q = nn.Linear(channels, channels)
        self.kv = nn.Linear(channels, 2 * channels)
        self.bias = nn.Parameter(torch.zeros(heads, (2 * kernel - 1) ** 2))
        nn.init.trunc_normal_(self.bias, std=0.02, a=-2.0, b=2.0)
        self.proj = nn.Linear(channels, channels)

    def forward(self, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        b, h, w, c = q.shape
        heads, hd = self.heads, c // self.heads
        index, table = neighborhood_indices(h, w, self.kernel, q.device)
        query = self.q(q).view(b, h * w, heads, hd).transpose(1, 2) * self.scale  # (B, heads, hw, hd)
        key, value = self.kv(kv).view(b, h * w, 2, heads, hd).permute(2, 0, 3, 1, 4)  # each (B, heads, hw, hd)
        key_nb, value_nb = key[:, :, index], value[:, :, index]  # (B, heads, hw, k*k, hd)
        logits = (query.unsqueeze(3) * key_nb).sum(-1) + self.bias[:, table]  # (B, heads, hw, k*k)
        out = (logits.softmax(-1).unsqueeze(-1) * value_nb).sum(3)  # (B, heads, hw, hd)
        return self.proj(out.transpose(1, 2).reshape(b, h, w, c))


class GatedCrossAttention(nn.Module):
    """kv + gamma * NeighborhoodCrossAttention(q, kv) on (B, C, h, w) maps, gamma a scalar initialised at 0."""

    def __init__(self, channels: int, kernel: int = 5) -> None:
        super().__init__()
        self.attention = NeighborhoodCrossAttention(channels, 1, kernel)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        kv_last = kv.permute(0, 2, 3, 1)
        out = self.gamma * self.attention(q.permute(0, 2, 3, 1), kv_last) + kv_last
        return out.permute(0, 3, 1, 2)


class ChannelAttention3D(nn.Module):
    """x + s * conv(sigmoid(se(pool(c(x)))) * c(x)) with c = Conv3d-GELU-GN(1), se a 1x1 bottleneck (C/8, GELU),
    the last conv Conv3d-GELU-GN(2), and s a scalar initialised at 0. Shape-preserving."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv3d(channels, channels, 3, padding=1), nn.GELU(), nn.GroupNorm(1, channels))
        self.squeeze = nn.Sequential(nn.AdaptiveAvgPool3d(1), nn.Conv3d(channels, channels // 8, 1), nn.GELU(),
                                     nn.Conv3d(channels // 8, channels, 1), nn.GELU())
        self.conv2 = nn.Sequential(nn.Conv3d(channels, channels, 3, padding=1), nn.GELU(),
                                   build_norm(GN2, channels, 3))
        self.layer_scale = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv1(x)
        return x + self.layer_scale * self.conv2(torch.sigmoid(self.squeeze(feat)) * feat)


class DepthAggregation(nn.Module):
    """(stereo probabilities, mono probabilities), each (B, D, h, w) -> fused logits (B, D, h, w); see the module
    docstring. D, h and w must be multiples of 4."""

    def __init__(self, depth_bins: int, channels: int = 32, kernel: int = 5) -> None:
        super().__init__()
        self.mono_to_stereo = GatedCrossAttention(depth_bins, kernel)
        self.stereo_to_mono = GatedCrossAttention(depth_bins, kernel)
        self.stem = nn.Conv3d(2, channels, 3, padding=1)
        self.unet = SimpleUNet(channels, 3)
        self.channel_attention = ChannelAttention3D(channels)
        self.out = nn.Conv3d(channels, 1, 3, padding=1)

    def forward(self, stereo: torch.Tensor, mono: torch.Tensor) -> torch.Tensor:
        pair = torch.stack([self.mono_to_stereo(mono, stereo), self.stereo_to_mono(stereo, mono)], dim=1)
        feat = self.channel_attention(self.unet(F.relu(self.stem(pair))))
        return self.out(feat).squeeze(1)


class StereoMonoDepth(nn.Module):
    """The depth distribution of L2COcc's camera branch from the mono logits (B, D, h, w) and a stereo depth map
    (B, H, W) at image resolution: stereo = softmax(StereoVolumeEncoder(one-hot of the per-patch minimum)),
    mono = softmax(logits), fused = softmax(DepthAggregation(stereo, mono)). Returns (B, D, h, w) probabilities."""

    def __init__(self, bins: Sequence[float], aggregation_channels: int = 32, kernel: int = 5) -> None:
        super().__init__()
        self.bins = tuple(float(v) for v in bins)
        count = int(round((self.bins[1] - self.bins[0]) / self.bins[2]))
        self.stereo_encoder = StereoVolumeEncoder(count)
        self.aggregation = DepthAggregation(count, aggregation_channels, kernel)

    def stereo_one_hot(self, stereo_depth: torch.Tensor, feature_hw: Sequence[int]) -> torch.Tensor:
        """(B, H, W) depth map -> (B, D, h, w) one-hot of each patch's nearest valid depth."""
        patch = stereo_depth.shape[1] // int(feature_hw[0])
        if stereo_depth.shape[1] != patch * feature_hw[0] or stereo_depth.shape[2] != patch * feature_hw[1]:
            raise ValueError(f"stereo depth {tuple(stereo_depth.shape)} is not a multiple of the feature map "
                             f"{tuple(feature_hw)}")
        return depth_one_hot(min_pool_depth(stereo_depth, patch), self.bins)

    def forward(self, mono_logits: torch.Tensor, stereo_depth: torch.Tensor) -> torch.Tensor:
        one_hot = self.stereo_one_hot(stereo_depth, mono_logits.shape[2:]).to(mono_logits.dtype)
        stereo = torch.softmax(self.stereo_encoder(one_hot), dim=1)
        return torch.softmax(self.aggregation(stereo, torch.softmax(mono_logits, dim=1)), dim=1)
