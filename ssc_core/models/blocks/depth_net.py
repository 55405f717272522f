"""BEVDepth-style camera-aware DepthNet (as HTCL and L2COcc use it): per-pixel depth logits and context features
from an image feature map, both gated by the camera parameters.

``DepthNet(in_channels, mid_channels, context_channels, depth_bins, cam_channels)``:

- ``reduce_conv``: 3x3 conv (bias) + norm (GN(2) in HTCL) + ReLU, in -> mid;
- the camera vector (``camera_features``, 27 / 30 / 33 values) is normalised (GN(2) in HTCL, BN1d in BEVDepth)
  and fed to two MLPs (cam -> mid -> mid, ReLU) whose outputs gate the reduced features through squeeze-excite
  layers (1x1 conv, ReLU, 1x1 conv, sigmoid) -- one for the context path, one for the depth path;
- context: 1x1 conv mid -> context_channels;
- depth: 3 x BasicBlock(mid) -> ASPP(mid; dilations 1/6/12/18 + image pooling, dropout 0.5) -> deformable 3x3
  conv (``ssc_core.ops.DeformConv2d``, ``dcn_groups`` convolution groups, zero-initialised offsets as mmcv's
  ``DCN``) -> 1x1 conv mid -> depth_bins. CGFormer / L2COcc run this path at ``block_channels`` = depth_bins
  (the first block narrows mid -> depth_bins), much lighter at 640 -> 112 channels.

forward((N, in, h, w), (N, cam_channels)) -> (depth logits (N, depth_bins, h, w), context (N, context, h, w)).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssc_core.errors import ConfigError
from ssc_core.models.blocks.norm import NormSpec, build_norm
from ssc_core.ops import DeformConv2d

GN2: dict = {"type": "GN", "num_groups": 2}
ASPP_DILATIONS = (1, 6, 12, 18)


def camera_features(P: torch.Tensor, post_rot: torch.Tensor, post_tran: torch.Tensor, T_velo_cam: torch.Tensor,
                    bda: torch.Tensor | None = None) -> torch.Tensor:
    """The DepthNet's camera vector (BEVDepth / HTCL ``get_mlp_input``), (B, N, F) float32.

    P (B, N, 3, 4) raw projection (fx, fy, cx, cy and its 4th column are used) or (B, N, 3, 3) intrinsics;
    post_rot (B, N, 3, 3), post_tran (B, N, 3): the image transform; T_velo_cam (B, N, 4, 4) camera -> LiDAR
    (``sensor2ego``, its top 3 x 4); bda None (identity), (B, 3, 3) or (B, 4, 4) (adds its translation).
    F = 4 intrinsics (+ 3 for a 3 x 4 P) + 6 image-transform + 5 bda (+ 3 for a 4 x 4 bda) + 12 pose:
    27, 30 (HTCL: 3 x 4 P, 3 x 3 bda) or 33 (3 x 4 P, 4 x 4 bda)."""
    b, n = P.shape[:2]
    if bda is None:
        bda = torch.eye(3, device=P.device, dtype=torch.float32).expand(b, 3, 3)
    bda = bda.float().view(b, 1, *bda.shape[-2:]).expand(b, n, *bda.shape[-2:])
    P, post_rot, post_tran = P.float(), post_rot.float(), post_tran.float()
    values = [P[..., 0, 0], P[..., 1, 1], P[..., 0, 2], P[..., 1, 2]]
    if P.shape[-1] == 4:
        values += [P[..., 0, 3], P[..., 1, 3], P[..., 2, 3]]
    values += [post_rot[..., 0, 0], post_rot[..., 0, 1], post_tran[..., 0],
               post_rot[..., 1, 0], post_rot[..., 1, 1], post_tran[..., 1],
               bda[..., 0, 0], bda[..., 0, 1], bda[..., 1, 0], bda[..., 1, 1], bda[..., 2, 2]]
    feats = [torch.stack(values, dim=-1)]
    if bda.shape[-1] == 4:
        feats.append(bda[..., :3, 3])
    feats.append(T_velo_cam.float()[..., :3, :4].reshape(b, n, 12))
    return torch.cat(feats, dim=-1)


class BasicBlock2d(nn.Module):
    """ResNet basic block (mmdet): 3x3 conv - BN - ReLU - 3x3 conv - BN, plus the input, ReLU. (N, in, h, w) ->
    (N, out, h, w); when ``out_channels`` differs, the input passes through a 3x3 conv with bias (CGFormer's
    ``downsample``) on the shortcut."""

    def __init__(self, channels: int, norm: NormSpec = "BN", out_channels: int | None = None) -> None:
        super().__init__()
        out_channels = channels if out_channels is None else out_channels
        self.conv1 = nn.Conv2d(channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = build_norm(norm, out_channels, 2)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = build_norm(norm, out_channels, 2)
        self.downsample = nn.Conv2d(channels, out_channels, 3, padding=1) if out_channels != channels else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(self.bn2(self.conv2(out)) + identity, inplace=True)


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling (DeepLab v3 as BEVDepth uses it): a 1x1 branch, 3x3 branches of dilation
    6/12/18 (conv - BN - ReLU each), an image-pooling branch (global mean, 1x1 conv, ``pool_norm``, ReLU,
    upsampled), concatenated, 1x1 conv - BN - ReLU, dropout 0.5. (N, C_in, h, w) -> (N, mid, h, w)."""

    def __init__(self, in_channels: int, mid_channels: int, norm: NormSpec = "BN", pool_norm: NormSpec = GN2,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(in_channels, mid_channels, 1 if d == 1 else 3, padding=0 if d == 1 else d,
                                    dilation=d, bias=False),
                          build_norm(norm, mid_channels, 2), nn.ReLU(inplace=True))
            for d in ASPP_DILATIONS
        )
        self.image_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_channels, mid_channels, 1, bias=False),
                                        build_norm(pool_norm, mid_channels, 2), nn.ReLU(inplace=True))
        self.project = nn.Sequential(nn.Conv2d(5 * mid_channels, mid_channels, 1, bias=False),
                                     build_norm(norm, mid_channels, 2), nn.ReLU(inplace=True), nn.Dropout(dropout))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [branch(x) for branch in self.branches]
        pooled = F.interpolate(self.image_pool(x), size=x.shape[2:], mode="bilinear", align_corners=True)
        return self.project(torch.cat([*outs, pooled], dim=1))


class CameraSE(nn.Module):
    """Squeeze-excite gate from a camera embedding: x * sigmoid(conv(relu(conv(g)))) with g (N, C, 1, 1)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv_reduce = nn.Conv2d(channels, channels, 1)
        self.conv_expand = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor, gate: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.conv_expand(F.relu(self.conv_reduce(gate))))


def _camera_mlp(cam_channels: int, mid_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(cam_channels, mid_channels), nn.ReLU(inplace=True),
                         nn.Linear(mid_channels, mid_channels))


class DepthNet(nn.Module):
    """Camera-aware depth + context head (see the module docstring).

    in_channels: image feature channels (640 in HTCL); mid_channels (640); context_channels (128); depth_bins
    (112); cam_channels: length of the ``camera_features`` vector (HTCL 30, L2COcc 33); dcn_groups: convolution
    groups of the deformable conv (4); norm: BatchNorm of the blocks and ASPP; reduce_norm / cam_norm /
    pool_norm: norms of reduce_conv, of the camera vector, of ASPP's pooling branch (GN(2) in HTCL);
    block_channels: width of the depth path's blocks, ASPP and deformable conv (default mid_channels, HTCL's;
    CGFormer / L2COcc narrow it to depth_bins, the first block taking mid -> depth_bins)."""

    def __init__(self, in_channels: int, mid_channels: int, context_channels: int, depth_bins: int,
                 cam_channels: int = 30, dcn_groups: int = 4, norm: NormSpec = "BN", reduce_norm: NormSpec = GN2,
                 cam_norm: NormSpec = GN2, pool_norm: NormSpec = GN2, block_channels: int | None = None) -> None:
        super().__init__()
        width = mid_channels if block_channels is None else int(block_channels)
        if width % dcn_groups:
            raise ConfigError(f"DepthNet block width {width} must be divisible by dcn_groups {dcn_groups}")
        self.cam_channels = int(cam_channels)
        self.reduce_conv = nn.Sequential(nn.Conv2d(in_channels, mid_channels, 3, padding=1),
                                         build_norm(reduce_norm, mid_channels, 2), nn.ReLU(inplace=True))
        self.cam_norm = build_norm(cam_norm, cam_channels, 1)
        self.context_mlp = _camera_mlp(cam_channels, mid_channels)
        self.context_se = CameraSE(mid_channels)
        self.context_conv = nn.Conv2d(mid_channels, context_channels, 1)
        self.depth_mlp = _camera_mlp(cam_channels, mid_channels)
        self.depth_se = CameraSE(mid_channels)
        self.depth_conv = nn.Sequential(
            BasicBlock2d(mid_channels, norm, width), BasicBlock2d(width, norm), BasicBlock2d(width, norm),
            ASPP(width, width, norm, pool_norm),
            DeformConv2d(width, width, 3, padding=1, groups=dcn_groups),
            nn.Conv2d(width, depth_bins, 1),
        )

    def forward(self, x: torch.Tensor, cam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cam = cam.reshape(-1, cam.shape[-1])
        if cam.shape != (x.shape[0], self.cam_channels):
            raise ValueError(f"DepthNet needs ({x.shape[0]}, {self.cam_channels}) camera features, got "
                             f"{tuple(cam.shape)}")
        cam = self.cam_norm(cam)
        x = self.reduce_conv(x)
        context = self.context_conv(self.context_se(x, self.context_mlp(cam)[..., None, None]))
        depth = self.depth_conv(self.depth_se(x, self.depth_mlp(cam)[..., None, None]))
        return depth, context
