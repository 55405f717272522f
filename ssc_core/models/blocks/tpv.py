"""The TPV (tri-perspective view) network of L2COcc (fact sheet §2.2), shared by its LiDAR teacher and camera
student: voxel features -> three planes -> one shared Swin Transformer + 2D GeneralizedLSSFPN -> planes broadcast
back to the volume -> a softmax-weighted fusion of the three planes and the volume.

Axis conventions (the volume is (B, C, X, Y, Z)): plane ``xy`` (B, C, X, Y) collapses z, ``yz`` (B, C, Y, Z)
collapses x, ``zx`` (B, C, X, Z) collapses y; lists of planes are always in that order.

The Swin is timm's ``SwinTransformer`` with three changes, because L2COcc's planes are small and not square:
- the patch embedding keeps the plane's resolution: timm is built with ``patch_size=1`` (so its token grid is the
  plane and its stage reductions are 1, 2, 4, 8) and its 1x1 projection is replaced by a ``kernel_size`` x
  ``kernel_size`` convolution of stride 1 with zero padding on the bottom/right (mmcv's 'corner' padding, which
  L2COcc's stride-1 patch embedding uses);
- ``strict_img_size=False`` so one network takes the 128 x 128 and the 128 x 16 planes (timm then builds the
  shifted-window masks for each input size), and ``always_partition=True`` so every stage keeps 7 x 7 windows
  with shift 3 (padding the map as mmdet's Swin does) instead of timm's shrinking the window to a small map;
- each returned stage gets its own LayerNorm (mmdet's ``norm{i}``); timm's final norm and head are removed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ssc_core.config import reject_unknown_keys
from ssc_core.errors import CheckpointMismatchError, ConfigError
from ssc_core.models.blocks.image_backbone import read_weights_file
from ssc_core.models.blocks.lss_fpn import GeneralizedLSSFPN

PLANES = ("xy", "yz", "zx")
SWIN_KEYS = {
    "embed_dim", "depths", "num_heads", "window_size", "kernel_size", "mlp_ratio", "drop_path_rate", "out_indices",
    "pretrained_path",
}


class TPVPooler(nn.Module):
    """(B, C, X, Y, Z) -> [xy (B, C, X, Y), yz (B, C, Y, Z), zx (B, C, X, Z)]: a 1x1x1 Conv3d (no bias) gives three
    logits per voxel; plane p is the softmax-weighted sum of the features along its collapsed axis (softmax of
    logit p over that axis), then a 1x1 conv MLP (C -> C, ReLU, C -> C) per plane."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weights = nn.Conv3d(channels, 3, kernel_size=1, bias=False)
        self.mlps = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, channels, 1), nn.ReLU(), nn.Conv2d(channels, channels, 1))
            for _ in PLANES)

    def pool(self, volume: torch.Tensor) -> list[torch.Tensor]:
        """The three softmax-weighted sums, before the per-plane MLPs."""
        logits = self.weights(volume)
        planes = []
        for index, axis in enumerate((4, 2, 3)):  # xy collapses z, yz collapses x, zx collapses y
            weight = torch.softmax(logits[:, index:index + 1], dim=axis)
            planes.append((volume * weight).sum(dim=axis))
        return planes

    def forward(self, volume: torch.Tensor) -> list[torch.Tensor]:
        return [mlp(plane) for mlp, plane in zip(self.mlps, self.pool(volume))]


class PlaneSwin(nn.Module):
    """One Swin Transformer (timm) shared by the three planes; see the module docstring for what differs from
    timm's. forward(list of (B, in_channels, h, w)) -> for each input, the list of its stage outputs
    (B, embed_dim * 2**i, ceil(h / 2**i), ceil(w / 2**i)) for i in ``out_indices``, each layer-normalised.

    Defaults are Swin-T as L2COcc configures it: embed 96, depths (2, 2, 6, 2), heads (3, 6, 12, 24), window 7,
    kernel 4 (stride 1), drop path 0.2, stages 1..3 (192 / 384 / 768 channels at 1/2, 1/4, 1/8 of the plane)."""

    def __init__(self, in_channels: int, embed_dim: int = 96, depths: Sequence[int] = (2, 2, 6, 2),
                 num_heads: Sequence[int] = (3, 6, 12, 24), window_size: int = 7, kernel_size: int = 4,
                 mlp_ratio: float = 4.0, drop_path_rate: float = 0.2, out_indices: Sequence[int] = (1, 2, 3)) -> None:
        super().__init__()
        from timm.models.swin_transformer import SwinTransformer

        if len(depths) != len(num_heads):
            raise ConfigError(f"swin.depths {list(depths)} and swin.num_heads {list(num_heads)} differ in length")
        if any(i not in range(len(depths)) for i in out_indices) or sorted(set(out_indices)) != list(out_indices):
            raise ConfigError(f"swin.out_indices must be increasing stage indices in 0..{len(depths) - 1}, got "
                              f"{list(out_indices)}")
        self.model = SwinTransformer(
            img_size=224, patch_size=1, in_chans=in_channels, num_classes=0, embed_dim=embed_dim,
            depths=tuple(depths), num_heads=tuple(num_heads), window_size=window_size, always_partition=True,
            strict_img_size=False, mlp_ratio=mlp_ratio, drop_path_rate=drop_path_rate)
        self.model.patch_embed.proj = nn.Sequential(nn.ZeroPad2d((0, kernel_size - 1, 0, kernel_size - 1)),
                                                    nn.Conv2d(in_channels, embed_dim, kernel_size, stride=1))
        self.model.norm = nn.Identity()
        self.out_indices = tuple(out_indices)
        self.out_channels = [embed_dim * 2**i for i in self.out_indices]
        self.norms = nn.ModuleList(nn.LayerNorm(c) for c in self.out_channels)
        # Stages after the last returned one never run: drop them so they hold no parameters.
        self.model.layers = self.model.layers[:max(self.out_indices) + 1]

    def forward(self, planes: Sequence[torch.Tensor]) -> list[list[torch.Tensor]]:
        outputs = []
        for plane in planes:
            x = self.model.patch_embed(plane)  # (B, h, w, C): NHWC through the stages
            feats = []
            for index, stage in enumerate(self.model.layers):
                x = stage(x)
                if index in self.out_indices:
                    norm = self.norms[self.out_indices.index(index)]
                    feats.append(norm(x).permute(0, 3, 1, 2).contiguous())
            outputs.append(feats)
        return outputs

    def load_pretrained(self, path: str | Path) -> list[str]:
        """Load ImageNet Swin weights (timm's or Microsoft's layout, e.g. ``swin_tiny_patch4_window7_224.pth``)
        into the stages and the patch-embedding norm. The patch projection (3 input channels there, the planes'
        channels here) and the classifier/final norm are not loaded; returns the names of the keys skipped.
        CheckpointMismatchError names missing or mis-shaped keys; ConfigError when the file does not exist."""
        from timm.models.swin_transformer import checkpoint_filter_fn

        state = read_weights_file(path, "swin.pretrained_path")
        projection = sorted(k for k in state if k.startswith("patch_embed.proj"))  # timm's filter would resample it
        state = checkpoint_filter_fn({k: v for k, v in state.items() if k not in projection}, self.model)
        own = self.model.state_dict()
        skipped = projection + sorted(k for k in state if k.startswith(("head", "norm.")) or k not in own)
        state = {k: v for k, v in state.items() if k not in skipped}
        missing = sorted(k for k in own if k not in state and not k.startswith("patch_embed.proj"))
        wrong = sorted(k for k in state if own[k].shape != state[k].shape)
        if missing or wrong:
            raise CheckpointMismatchError(f"{path} does not fit the TPV Swin: missing {missing[:5]} ({len(missing)}), "
                                          f"shape mismatch {wrong[:5]} ({len(wrong)})")
        self.model.load_state_dict(state, strict=False)
        return skipped


def build_plane_swin(in_channels: int, cfg: dict | None) -> PlaneSwin:
    """A PlaneSwin from a ``swin:`` mapping (keys SWIN_KEYS; see PlaneSwin for the defaults), weights from
    ``pretrained_path`` when given."""
    cfg = dict(cfg or {})
    reject_unknown_keys(cfg, SWIN_KEYS, "swin")
    path = cfg.pop("pretrained_path", None)
    swin = PlaneSwin(in_channels, **cfg)
    if path:
        swin.load_pretrained(path)
    return swin


def broadcast_planes(planes: Sequence[torch.Tensor], volume_shape: Sequence[int]) -> list[torch.Tensor]:
    """Resize plane maps to the volume's planes (bilinear) and give them a unit axis where they were collapsed:
    xy -> (B, C, X, Y, 1), yz -> (B, C, 1, Y, Z), zx -> (B, C, X, 1, Z), for a volume (X, Y, Z)."""
    x, y, z = volume_shape
    out = []
    for plane, size, axis in zip(planes, ((x, y), (y, z), (x, z)), (4, 2, 3)):
        if tuple(plane.shape[2:]) != size:
            plane = F.interpolate(plane, size=size, mode="bilinear", align_corners=False)
        out.append(plane.unsqueeze(axis))
    return out


class TPVAggregator(nn.Module):
    """(three broadcast planes, volume (B, C, X, Y, Z)) -> (fused (B, C, X, Y, Z), weight logits (B, 4, X, Y, Z)):
    logits = Conv3d(C -> 4, 1x1x1, no bias)(xy + yz + zx + volume); fused = sum_k softmax(logits)_k * {xy, yz, zx,
    volume}_k."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.combine = nn.Conv3d(channels, 4, kernel_size=1, bias=False)

    def forward(self, planes: Sequence[torch.Tensor], volume: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        parts = [*planes, volume]
        logits = self.combine(sum(parts[1:], parts[0]))
        weights = torch.softmax(logits, dim=1)
        fused = sum(part * weights[:, k:k + 1] for k, part in enumerate(parts))
        return fused, logits


class TPVNetwork(nn.Module):
    """Pooler -> PlaneSwin -> 2D GeneralizedLSSFPN (two outputs, BatchNorm without running statistics, LeakyReLU)
    -> the first FPN output broadcast -> TPVAggregator.

    forward((B, C, X, Y, Z)) -> dict: ``fused`` (B, C, X, Y, Z), ``aggregator_logits`` (B, 4, X, Y, Z),
    ``plane_backbone`` (per plane, the Swin outputs) and ``plane_neck`` (per plane, the FPN outputs), the last two
    being what distillation compares."""

    def __init__(self, channels: int, swin_cfg: dict | None = None) -> None:
        super().__init__()
        self.pooler = TPVPooler(channels)
        self.swin = build_plane_swin(channels, swin_cfg)
        self.neck = GeneralizedLSSFPN(self.swin.out_channels, channels, dims=2,
                                      norm={"type": "BN", "track_running_stats": False}, activation="leaky_relu")
        self.aggregator = TPVAggregator(channels)

    def forward(self, volume: torch.Tensor) -> dict[str, object]:
        backbone = self.swin(self.pooler(volume))
        neck = [self.neck(feats) for feats in backbone]
        planes = broadcast_planes([feats[0] for feats in neck], volume.shape[2:])
        fused, logits = self.aggregator(planes, volume)
        return {"fused": fused, "aggregator_logits": logits, "plane_backbone": backbone, "plane_neck": neck}
