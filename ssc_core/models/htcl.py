"""HTCL: Hierarchical Temporal Context Learning for camera-based SSC (Li et al., ECCV 2024), in plain PyTorch.

Composed of parts, each testable alone (layer list and shapes as the release, ``temporal_baseline.py``; sizes for
384 x 1280 images, 112 depth bins, the 128 x 128 x 16 work grid; D depth bins, (h, w) = image / 8):

  image encoder   current left image -> timm EfficientNet-B7 (strides 4..32 + head map) -> SECONDFPN -> (B, 640, h, w)
                  (blocks.image_encoder.MultiLevelImageEncoder, shared with L2COcc-C/-D)
  DepthNet        camera-aware depth logits (B, D, h, w) + context (B, 128, h, w)       (blocks/depth_net.py)
  StereoBranch    left/right at 0.75 x size -> LEAStereo feature net (stride 3) -> concat cost volume over
                  ``disparities`` -> resampled to depth planes -> LEAStereo matching net -> (B, 1, D_s, H/4, W/4)
  DepthFusion     [stereo softmax(-cost), mono softmax] -> conv + 3 hourglasses -> fused depth probability
  lift-splat      depth (x) context -> sum into the work grid -> (B, 128, X, Y, Z)            (blocks/lss.py)
  TemporalBranch  ResNet-18 stem + layer1 features; each history frame's (channel-mean) features plane-swept
                  into the current camera over the D bins (dataset poses by default); deformable 3D refinement
                  (offsets in H, W); scale-aware pattern affinity; pre-hourglass -> splat with the same geometry
                  -> post-hourglass -> temporal voxel (B, 384, X, Y, Z)
  voxel encoder   ResNet3D (GN 32) -> SECONDFPN3D -> (B, 384, X, Y, Z), + alpha * LinearAttention3D(query =
                  it, key / value = temporal voxel), alpha initialised at 0
  OccHead         Conv3d 384 -> 192 (GN, ReLU) -> 1x1 -> K classes at the work grid, trilinear (align_corners
                  False) to the scene grid = ``ssc_logits``; the same head on the temporal voxel (training)
  PointHead       voxel features (trilinear) and image features (bilinear, Linear 640 -> 384) at the labelled
                  LiDAR points, mixed by softmax weights from MLP(384 -> 192 -> 2), MLP(384, 384, K) -> point logits

Losses (``losses``): ``loss_depth`` (BCE of the fused depth probability against the one-hot bin of the 8 x 8
min-pooled LiDAR depth), ``loss_voxel_ce`` (class-weighted mean CE, weights 1 / ln(f + 0.001)),
``loss_voxel_sem_scal``, ``loss_voxel_geo_scal``, ``loss_point_ce`` and ``loss_point_lovasz`` (label 0
ignored); with the temporal branch each voxel and point term is computed again on the temporal voxel's head
output and added to the same key, as the release does. What differs from the release and why: docs/models.md.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssc_core.config import reject_unknown_keys
from ssc_core.errors import CheckpointMismatchError, ConfigError, DataFormatError
from ssc_core.losses import (
    geo_scal_loss,
    lovasz_softmax_loss,
    resolve_class_weights,
    scene_target,
    sem_scal_loss,
    weighted_ce_loss,
)
from ssc_core.models.blocks.depth_net import DepthNet, camera_features
from ssc_core.models.blocks.hourglass import Hourglass3D, conv_norm_3d
from ssc_core.models.blocks.image_backbone import build_image_backbone, read_weights_file
from ssc_core.models.blocks.image_encoder import MultiLevelImageEncoder
from ssc_core.models.blocks.leastereo import FeatureNet, MatchingNet
from ssc_core.models.blocks.lss import depth_bins, frustum_to_lidar, lift, make_frustum, splat, voxel_index
from ssc_core.models.blocks.occ_head import OccHead
from ssc_core.models.blocks.resnet3d import ResNet3D
from ssc_core.models.blocks.second_fpn import SECONDFPN3D
from ssc_core.models.registry import loss_weights, model_sections, register_model, scene_grids
from ssc_core.ops import DeformConv3dHW
from ssc_core.types import GridSpec

LOSS_NAMES = ("depth", "voxel_ce", "voxel_sem_scal", "voxel_geo_scal", "point_ce", "point_lovasz")
SECTION_DEFAULTS: dict[str, dict] = {
    "neck": {"channels": 128, "strides": [0.5, 1, 2, 4, 4]},
    "depth": {"bins": [2.0, 58.0, 0.5], "context_channels": 128, "cam_channels": 30, "dcn_groups": 4},
    "stereo": {"enabled": True, "image_scale": 0.75, "disparities": 64, "filter_multiplier": 8,
               "depth_range": None, "fusion_channels": 32},
    "temporal": {"enabled": True, "pose": "dataset", "pose_weights": None,
                 "matching_backbone": {"name": "resnet18", "out_indices": [1], "prune": True,
                                       "timm_kwargs": {"zero_init_last": False}}, "deform_channels": 8,
                 "hourglass_channels": 32, "volume_channels": 64, "attention_heads": 2, "attention_dim_head": 2,
                 "aux_loss": True},
    "voxel": {"channels": [128, 256, 512], "blocks": [2, 2, 2], "strides": [1, 2, 2], "neck_channels": 128,
              "norm": {"type": "GN", "num_groups": 32}},  # the norm of the 3D encoder, neck and occupancy head
    "head": {"point_branch": True},
}
MODEL_KEYS = {"name", "num_classes", "class_weights", "backbone", "loss_weights", *SECTION_DEFAULTS}
POSE_SOURCES = ("dataset", "posenet")
DEFAULT_BACKBONE = {"name": "tf_efficientnet_b7", "out_indices": [1, 2, 3, 4], "with_head": True,
                    "drop_path_rate": 0.2}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _section(model_cfg: dict, name: str) -> dict:
    """``model.<name>`` merged over its defaults; ConfigError for keys the section does not have."""
    given = dict(model_cfg.get(name) or {})
    reject_unknown_keys(given, SECTION_DEFAULTS[name], f"model.{name}")
    return {**SECTION_DEFAULTS[name], **given}


# ------------------------------------------------------------------------------------------------ image + depth
def concat_cost_volume(left: torch.Tensor, right: torch.Tensor, disparities: int) -> torch.Tensor:
    """(B, C, H, W) left / right features -> (B, 2C, disparities, H, W): level d holds the left features and the
    right ones shifted right by d pixels, zero where the shifted map has no data (columns < d)."""
    b, c, h, w = left.shape
    volume = left.new_zeros(b, 2 * c, disparities, h, w)
    for d in range(disparities):
        volume[:, :c, d, :, d:] = left[:, :, :, d:]
        volume[:, c:, d, :, d:] = right[:, :, :, : w - d]
    return volume


def disparity_to_depth(volume: torch.Tensor, disparity: torch.Tensor) -> torch.Tensor:
    """Resample the disparity axis of (B, C, D_disp, H, W) at fractional disparities (B, P) (one per depth plane):
    linear interpolation, zero outside [0, D_disp - 1]. Returns (B, C, P, H, W)."""
    d_disp = volume.shape[2]
    low = torch.floor(disparity)
    frac = (disparity - low).to(volume.dtype)
    low = low.long()
    out = []
    for b in range(volume.shape[0]):
        planes = 0
        for idx, weight in ((low[b], 1 - frac[b]), (low[b] + 1, frac[b])):
            inside = (idx >= 0) & (idx < d_disp)
            gathered = volume[b].index_select(1, idx.clamp(0, d_disp - 1))
            planes = planes + gathered * (weight * inside.to(volume.dtype)).view(1, -1, 1, 1)
        out.append(planes)
    return torch.stack(out)


class StereoBranch(nn.Module):
    """LEAStereo on the current stereo pair, resampled to depth planes.

    forward(left, right (B, 3, H, W) normalised, fxb (B,) focal x baseline in pixels x metres of these images,
    planes (P,) depths in metres) -> matching cost (B, 1, P, h_s, w_s), (h_s, w_s) = the stride-3 size of the
    ``image_scale``-resized pair (H/4, W/4 at 0.75)."""

    def __init__(self, image_scale: float, disparities: int, filter_multiplier: int) -> None:
        super().__init__()
        self.image_scale, self.disparities = float(image_scale), int(disparities)
        self.feature = FeatureNet(filter_multiplier)
        self.matching = MatchingNet(filter_multiplier)

    def forward(self, left: torch.Tensor, right: torch.Tensor, fxb: torch.Tensor,
                planes: torch.Tensor) -> torch.Tensor:
        size = [round(s * self.image_scale) for s in left.shape[2:]]
        pair = F.interpolate(torch.cat([left, right]), size=size, mode="bilinear", align_corners=True)
        feats = self.feature(pair)
        feat_left, feat_right = feats.chunk(2)
        volume = concat_cost_volume(feat_left, feat_right, self.disparities)
        fxb_feat = fxb.float() * (feats.shape[-1] / left.shape[-1])  # focal length at the feature map's scale
        disparity = fxb_feat.view(-1, 1) / planes.float().view(1, -1)
        return self.matching(disparity_to_depth(volume, disparity))


class DepthFusion(nn.Module):
    """HTCL's volume interaction: [stereo, mono] depth probabilities (2 channels over (D, h, w)) -> conv-norm-ReLU
    x 2 + hourglass -> hourglass -> hourglass (+ skip from the first) -> conv-norm-ReLU -> Conv3d -> softmax over
    D. (B, D, h, w) x 2 -> (B, D, h, w)."""

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        c = channels
        self.dres1 = nn.Sequential(conv_norm_3d(2, c), nn.ReLU(inplace=True), conv_norm_3d(c, c),
                                   nn.ReLU(inplace=True), Hourglass3D(c))
        self.dres2 = Hourglass3D(c)
        self.dres3 = Hourglass3D(c)
        self.out = nn.Sequential(conv_norm_3d(c, c), nn.ReLU(inplace=True), nn.Conv3d(c, 1, 3, padding=1))

    def forward(self, stereo_prob: torch.Tensor, mono_prob: torch.Tensor) -> torch.Tensor:
        first = self.dres1(torch.stack([stereo_prob, mono_prob], dim=1))
        fused = self.dres3(self.dres2(first)) + first
        return torch.softmax(self.out(fused).squeeze(1), dim=1)


# ------------------------------------------------------------------------------------------------ temporal
def camera2_poses(T_cam_velo: torch.Tensor, P2: torch.Tensor) -> torch.Tensor:
    """Current LiDAR -> each frame's left colour camera (camera 2): P2's 4th column, K^-1 P2[:, 3], is the
    camera-0 -> camera-2 translation. T_cam_velo (B, F, 4, 4), P2 (B, F, 3, 4) -> (B, F, 4, 4) float32."""
    shift = torch.eye(4, device=P2.device).repeat(*P2.shape[:2], 1, 1)
    shift[..., :3, 3] = torch.linalg.solve(P2[..., :3].float(), P2[..., 3:].float()).squeeze(-1)
    return shift @ T_cam_velo.float()


def plane_sweep(history: torch.Tensor, K: torch.Tensor, T_hist_cur: torch.Tensor,
                depths: torch.Tensor) -> torch.Tensor:
    """Warp history maps into the current camera over depth hypotheses (ManyDepth's matching, as HTCL uses it).

    history (B, T, C, h, w) maps of the history frames; K (B, 3, 3) intrinsics of the (h, w) grid (the same camera
    for all frames); T_hist_cur (B, T, 4, 4) current camera -> history camera; depths (D,) metres. Returns
    (B, T, C, D, h, w): for each current pixel and depth, the history map bilinearly sampled where that 3D point
    projects (align_corners=True; zero outside the image or behind the camera). Geometry in float32."""
    b, t, c, h, w = history.shape
    d = depths.numel()
    with torch.autocast(history.device.type, enabled=False):
        ys, xs = torch.meshgrid(torch.arange(h, device=K.device, dtype=torch.float32),
                                torch.arange(w, device=K.device, dtype=torch.float32), indexing="ij")
        pix = torch.stack([xs, ys, torch.ones_like(xs)], dim=0).view(1, 3, -1)  # (1, 3, h w)
        rays = torch.linalg.inv(K.float()) @ pix  # (B, 3, h w)
        points = rays.unsqueeze(1) * depths.float().view(1, d, 1, 1)  # (B, D, 3, h w)
        R, tr = T_hist_cur[..., :3, :3].float(), T_hist_cur[..., :3, 3].float()
        cam = torch.einsum("btij,bdjn->btdin", R, points) + tr.view(b, t, 1, 3, 1)
        proj = torch.einsum("bij,btdjn->btdin", K.float(), cam)
        z = proj[..., 2, :]
        ahead = z > 1e-3
        u = torch.where(ahead, proj[..., 0, :] / z.clamp(min=1e-3), torch.full_like(z, -1e4))
        v = torch.where(ahead, proj[..., 1, :] / z.clamp(min=1e-3), torch.full_like(z, -1e4))
        grid = torch.stack([2 * u / max(w - 1, 1) - 1, 2 * v / max(h - 1, 1) - 1], dim=-1)  # (B, T, D, h w, 2)
    grid = grid.view(b * t, d, h * w, 2).to(history.dtype)
    warped = F.grid_sample(history.reshape(b * t, c, h, w), grid, mode="bilinear", padding_mode="zeros",
                           align_corners=True)  # (B T, C, D, h w)
    return warped.view(b, t, c, d, h, w)


class PoseNet(nn.Module):
    """ManyDepth's pose network as HTCL ships it (an option; frozen, run without gradients): a ResNet-18 on the
    6-channel pair [history, current] (each (x/255 - 0.45) / 0.225) and a decoder (1x1 256, 3x3 256 x 2,
    1x1 -> 12), spatial mean, x 0.01, the first 6 values as axis-angle + translation, inverted: the current ->
    history camera transform (B, 4, 4). ``load_release_weights`` reads its weights from an HTCL checkpoint."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = build_image_backbone({"name": "resnet18", "out_indices": [4], "timm_kwargs": {"in_chans": 6}})
        self.net = nn.ModuleList([nn.Conv2d(512, 256, 1), nn.Conv2d(256, 256, 3, padding=1),
                                  nn.Conv2d(256, 256, 3, padding=1), nn.Conv2d(256, 12, 1)])
        self.requires_grad_(False)

    def train(self, mode: bool = True) -> PoseNet:
        """Always in eval mode (frozen, as released)."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, current01: torch.Tensor, history01: torch.Tensor) -> torch.Tensor:
        x = (torch.cat([history01, current01], dim=1) - 0.45) / 0.225
        out = F.relu(self.net[0](self.encoder(x)[-1]))
        out = self.net[3](F.relu(self.net[2](F.relu(self.net[1](out)))))
        params = 0.01 * out.mean(dim=(2, 3)).view(-1, 2, 6)[:, 0]
        return pose_from_axis_angle(params[:, :3], params[:, 3:], invert=True)

    def load_release_weights(self, path: str) -> None:
        """Load ``...pose_enc.encoder.*`` / ``...pose_dec.net.*`` tensors of an HTCL checkpoint (its classifier
        ``fc`` is skipped); CheckpointMismatchError / ConfigError name what does not fit."""
        state = read_weights_file(path, "model.temporal.pose_weights")
        mapped = {}
        for key, value in state.items():
            if "pose_enc.encoder." in key and ".fc." not in key:
                mapped["encoder.model." + key.split("pose_enc.encoder.", 1)[1]] = value
            elif "pose_dec.net." in key:
                mapped["net." + key.split("pose_dec.net.", 1)[1]] = value
        own = self.state_dict()
        missing = sorted(k for k in set(own) - set(mapped) if not k.endswith("num_batches_tracked"))
        if missing or set(mapped) - set(own):
            raise CheckpointMismatchError(f"{path}: pose network weights do not fit: missing {missing[:4]}, "
                                          f"unexpected {sorted(set(mapped) - set(own))[:4]}")
        self.load_state_dict(mapped, strict=False)


def pose_from_axis_angle(axis_angle: torch.Tensor, translation: torch.Tensor, invert: bool = False) -> torch.Tensor:
    """(B, 3) axis-angle and (B, 3) translation -> (B, 4, 4) [R | t] (R by Rodrigues, the exponential of the
    skew matrix); ``invert``: the inverse transform [R^T | -R^T t]."""
    x, y, z = axis_angle.unbind(-1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).view(-1, 3, 3)
    R = torch.linalg.matrix_exp(skew)
    t = translation.unsqueeze(-1)
    if invert:
        R, t = R.transpose(1, 2), -(R.transpose(1, 2) @ t)
    T = torch.eye(4, device=axis_angle.device, dtype=axis_angle.dtype).repeat(len(axis_angle), 1, 1)
    T[:, :3, :3], T[:, :3, 3:] = R, t
    return T


class MultiDilation(nn.Module):
    """Three parallel 3x3 convolutions (dilation 1 / 2 / 4, one output channel each), concatenated: HTCL's
    ``multi_patch2d`` (2D, plain convs) and ``multi_patch3d`` (3D, each + GELU + GroupNorm(1, 1))."""

    def __init__(self, in_channels: int, dims: int) -> None:
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        self.branches = nn.ModuleList(
            conv(in_channels, 1, 3, padding=d, dilation=d) if dims == 2
            else nn.Sequential(conv(in_channels, 1, 3, padding=d, dilation=d), nn.GELU(), nn.GroupNorm(1, 1))
            for d in (1, 2, 4)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


class TemporalBranch(nn.Module):
    """History keyframes -> temporal feature volume over the current frustum (see the module docstring).

    ``frustum_volume(img, K, T_hist_cur, depths, feature_hw)`` -> (B, volume_channels, D, h, w);
    ``voxel(splatted (B, volume_channels, X, Y, Z))`` -> temporal voxel (B, out_channels, X, Y, Z)."""

    def __init__(self, cfg: dict, history: int, out_channels: int) -> None:
        super().__init__()
        self.encoder = build_image_backbone(dict(cfg["matching_backbone"]))
        enc_channels = self.encoder.out_channels[-1]
        c, hg, vol = int(cfg["deform_channels"]), int(cfg["hourglass_channels"]), int(cfg["volume_channels"])
        self.deform = nn.ModuleList([DeformConv3dHW(history, c), DeformConv3dHW(c, c), DeformConv3dHW(c, c)])
        self.deform_fuse = nn.Conv3d(3 * c, history, 3, padding=1)
        self.current_pattern = MultiDilation(enc_channels, dims=2)
        self.warped_pattern = MultiDilation(history, dims=3)
        self.pre_hourglass = nn.Sequential(conv_norm_3d(history, hg), nn.ReLU(inplace=True), Hourglass3D(hg),
                                           conv_norm_3d(hg, vol), nn.ReLU(inplace=True),
                                           nn.Conv3d(vol, vol, 3, padding=1, bias=False))
        self.post_hourglass = nn.Sequential(conv_norm_3d(vol, hg), nn.ReLU(inplace=True), Hourglass3D(hg),
                                            conv_norm_3d(hg, vol), nn.ReLU(inplace=True),
                                            nn.Conv3d(vol, out_channels, 3, padding=1, bias=False))
        self.pose_net = PoseNet() if cfg["pose"] == "posenet" else None
        if self.pose_net is not None and cfg.get("pose_weights"):
            self.pose_net.load_release_weights(str(cfg["pose_weights"]))

    def frustum_volume(self, img: torch.Tensor, K: torch.Tensor, T_hist_cur: torch.Tensor, depths: torch.Tensor,
                       feature_hw: tuple[int, int]) -> torch.Tensor:
        """img (B, T + 1, 3, H, W) ImageNet-normalised (history oldest first, current last); K (B, 3, 3) of the
        current image; T_hist_cur (B, T, 4, 4) current camera -> history cameras (ignored with the pose net)."""
        b, f = img.shape[:2]
        mean = torch.tensor(IMAGENET_MEAN, device=img.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=img.device).view(1, 3, 1, 1)
        unit = img.flatten(0, 1) * std + mean  # back to [0, 1] RGB
        feats = self.encoder((unit - 0.45) / 0.225)[-1]
        feats = feats.view(b, f, *feats.shape[1:])
        current, history = feats[:, -1], feats[:, :-1]
        hm, wm = current.shape[-2:]
        if self.pose_net is not None:
            frames = unit.view(b, f, 3, *unit.shape[-2:])
            T_hist_cur = torch.stack([self.pose_net(frames[:, -1], frames[:, i]) for i in range(f - 1)], dim=1)
        scale = torch.tensor([[wm / img.shape[-1], 0, 0], [0, hm / img.shape[-2], 0], [0, 0, 1]], device=K.device)
        K_match = scale @ K.float()
        K_match[:, :2, 2] += 0.5 * torch.diagonal(scale, dim1=0, dim2=1)[:2] - 0.5  # pixel centres at integers
        # sampling is linear in the map, so warping the channel mean equals HTCL's mean of the warped channels
        warped = plane_sweep(history.mean(dim=2, keepdim=True), K_match, T_hist_cur, depths)[:, :, 0]
        h, w = feature_hw
        current = F.interpolate(current, size=(h, w), mode="bilinear", align_corners=True)
        warped = F.interpolate(warped, size=(depths.numel(), h, w), mode="trilinear", align_corners=True)
        refined = []
        x = warped
        for layer in self.deform:
            x = layer(x)
            refined.append(x)
        refined = self.deform_fuse(torch.cat(refined, dim=1))
        cur = self.current_pattern(current)
        cur = (cur - cur.mean(dim=1, keepdim=True)).unsqueeze(2).expand(-1, -1, depths.numel(), -1, -1)
        hist = self.warped_pattern(warped)
        hist = hist - hist.mean(dim=1, keepdim=True)
        affinity = F.cosine_similarity(cur, hist, dim=1, eps=1e-6).unsqueeze(1)  # (B, 1, D, h, w)
        return self.pre_hourglass(affinity * refined)

    def voxel(self, splatted: torch.Tensor) -> torch.Tensor:
        """(B, volume_channels, X, Y, Z) -> (B, out_channels, X, Y, Z)."""
        return self.post_hourglass(splatted)


class LinearAttention3D(nn.Module):
    """HTCL's temporal fusion attention: q = 1x1x1 conv of the current voxel features (softmax over each head's
    channels, x dim_head^-0.5), k, v = 1x1x1 convs of the temporal voxel (k softmax over the voxels); context =
    k v^T per head, out = context^T q, 1x1x1 conv back to C + GroupNorm(1, C). (B, C, X, Y, Z) x 2 -> same."""

    def __init__(self, channels: int, heads: int = 2, dim_head: int = 2) -> None:
        super().__init__()
        self.heads, self.dim_head, self.scale = heads, dim_head, dim_head ** -0.5
        hidden = heads * dim_head
        self.to_q = nn.Conv3d(channels, hidden, 1, bias=False)
        self.to_kv = nn.Conv3d(channels, 2 * hidden, 1, bias=False)
        self.to_out = nn.Sequential(nn.Conv3d(hidden, channels, 1), nn.GroupNorm(1, channels))

    def forward(self, query: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        b, _, *spatial = query.shape
        q = self.to_q(query).view(b, self.heads, self.dim_head, -1).softmax(dim=-2) * self.scale
        k, v = (t.view(b, self.heads, self.dim_head, -1) for t in self.to_kv(context).chunk(2, dim=1))
        ctx = torch.einsum("bhdn,bhen->bhde", k.softmax(dim=-1), v)
        out = torch.einsum("bhde,bhdn->bhen", ctx, q)
        return self.to_out(out.reshape(b, -1, *spatial))


# ------------------------------------------------------------------------------------------------ heads
def sample_voxels(volume: torch.Tensor, points: torch.Tensor, grid: GridSpec) -> torch.Tensor:
    """Trilinear samples of (B, C, X, Y, Z) at points (P, 4) [batch, x, y, z] (metres, grid frame): (P, C); zero
    outside. ``grid_sample`` reads a 5-D input as (D, H, W) = (X, Y, Z) here and wants the sampling point as
    (W, H, D) = (z, y, x) normalised coordinates, voxel centres at align_corners=False positions."""
    origin = torch.tensor(grid.origin, device=points.device, dtype=torch.float32)
    extent = torch.tensor(grid.extent, device=points.device, dtype=torch.float32)
    norm = 2 * (points[:, 1:4].float() - origin) / extent - 1
    coords = norm[:, [2, 1, 0]].to(volume.dtype)
    return _per_sample(points[:, 0].long(), volume.shape[0], volume.shape[1], volume, lambda b, sel: F.grid_sample(
        volume[b:b + 1], coords[sel].view(1, 1, 1, -1, 3), align_corners=False).view(volume.shape[1], -1).t())


def _per_sample(batch: torch.Tensor, batch_size: int, channels: int, like: torch.Tensor, sample) -> torch.Tensor:
    """(P, C) rows of ``sample(b, mask of sample b's points)`` placed at their points (dtype of the samples, which
    autocast may make float32)."""
    parts = [(sel, sample(b, sel)) for b in range(batch_size) if bool((sel := batch == b).any())]
    dtype = parts[0][1].dtype if parts else like.dtype
    out = like.new_zeros(len(batch), channels, dtype=dtype)
    for sel, values in parts:
        out[sel] = values
    return out


def sample_image(feats: torch.Tensor, points: torch.Tensor, image_hw: tuple[int, int]) -> torch.Tensor:
    """Bilinear samples of (B, C, h, w) image features at points (P, >=6) [batch, x, y, z, u, v] with (u, v)
    pixels of the (H, W) image (pixel centres at integers): (P, C)."""
    h_img, w_img = image_hw
    uv = points[:, 4:6].float()
    norm = torch.stack([(2 * uv[:, 0] + 1) / w_img - 1, (2 * uv[:, 1] + 1) / h_img - 1], dim=-1).to(feats.dtype)
    return _per_sample(points[:, 0].long(), feats.shape[0], feats.shape[1], feats, lambda b, sel: F.grid_sample(
        feats[b:b + 1], norm[sel].view(1, 1, -1, 2), align_corners=False).view(feats.shape[1], -1).t())


class PointHead(nn.Module):
    """Point logits from voxel and image features at LiDAR points (HTCL's OccHead point branch with
    ``sampling_img_feats`` and ``soft_weights``): image features Linear(image -> voxel channels); softmax weights
    from MLP(C -> C/2 -> 2) on the voxel sample mix the two; MLP(C, C, K) with GELU."""

    def __init__(self, voxel_channels: int, image_channels: int, num_classes: int) -> None:
        super().__init__()
        c = voxel_channels
        self.img_reduce = nn.Linear(image_channels, c)
        self.soft_weights = nn.Sequential(nn.Linear(c, c // 2), nn.ReLU(inplace=True), nn.Linear(c // 2, 2))
        self.mlp = nn.Sequential(nn.Linear(c, c), nn.GELU(), nn.Linear(c, num_classes))

    def forward(self, voxel_feats: torch.Tensor, image_feats: torch.Tensor) -> torch.Tensor:
        weights = torch.softmax(self.soft_weights(voxel_feats), dim=1)
        mixed = voxel_feats * weights[:, :1] + self.img_reduce(image_feats) * weights[:, 1:]
        return self.mlp(mixed)


# ------------------------------------------------------------------------------------------------ the model
@register_model("htcl")
class HTCL(nn.Module):
    """HTCL built from a whole parsed config (``model:`` and ``data``; keys in docs/models.md).

    forward(batch) takes the collated sample (img (B, F, 3, H, W) with F = history + 1 when the temporal branch is
    on, K, post_rot, post_tran, P2, T_cam_velo; img_right / stereo_baseline with the stereo branch;
    labelled_points (P, 7) in training for the point head) and returns ssc_logits (B, K, X, Y, Z) on the scene
    grid and depth_prob (B, D, H/8, W/8); in training mode also, with the temporal branch, temporal_logits (B, K,
    X, Y, Z), and with labelled points point_logits (P, K) (and temporal_point_logits)."""

    def __init__(self, cfg: dict) -> None:
        super().__init__()
        m, data = model_sections(cfg, MODEL_KEYS, "HTCL")
        self.grid, self.work_grid = scene_grids(data, "HTCL", "1:2 work grid, two stride-2 stages, hourglasses")
        self.num_classes = int(m.get("num_classes", 20))
        neck, depth, stereo = _section(m, "neck"), _section(m, "depth"), _section(m, "stereo")
        temporal, voxel, head = _section(m, "temporal"), _section(m, "voxel"), _section(m, "head")
        self.loss_weights = loss_weights(m, LOSS_NAMES, "HTCL")
        class_weights = resolve_class_weights(m.get("class_weights", "frequency"), data.get("class_set",
                                              "semantic_kitti"), self.num_classes)
        self.register_buffer("class_weights", class_weights, persistent=False)
        self.register_buffer("depth_bins", depth_bins(*depth["bins"]), persistent=False)
        if self.depth_bins.numel() % 4:
            raise ConfigError(f"model.depth.bins give {self.depth_bins.numel()} bins; the hourglasses need a "
                              f"multiple of 4")
        if stereo["enabled"] and int(stereo["disparities"]) % 4:
            raise ConfigError("model.stereo.disparities must be a multiple of 4 (LEAStereo's matching net)")
        self.history = len(data.get("history_offsets") or [])
        if temporal["enabled"]:
            if temporal["pose"] not in POSE_SOURCES:
                raise ConfigError(f"model.temporal.pose must be one of {POSE_SOURCES}, got {temporal['pose']!r}")
            if self.history < 1:
                raise ConfigError("HTCL's temporal branch needs history frames: set data.history_offsets (HTCL: "
                                  "[-15, -10, -5]) or model.temporal.enabled: false")

        self.image_encoder = MultiLevelImageEncoder(dict(m.get("backbone") or DEFAULT_BACKBONE),
                                                    int(neck["channels"]), list(neck["strides"]))
        img_c = self.image_encoder.out_channels
        self.depth_net = DepthNet(img_c, img_c, int(depth["context_channels"]), self.depth_bins.numel(),
                                  int(depth["cam_channels"]), int(depth["dcn_groups"]))
        self.stereo = None
        if stereo["enabled"]:
            self.stereo = StereoBranch(stereo["image_scale"], stereo["disparities"], stereo["filter_multiplier"])
            self.depth_fusion = DepthFusion(int(stereo["fusion_channels"]))
            start, step = float(depth["bins"][0]), float(depth["bins"][2])
            low, high = stereo["depth_range"] or (start, start + step * (self.depth_bins.numel() - 1))
            planes = torch.linspace(float(low), float(high), int(stereo["disparities"]))
            self.register_buffer("stereo_planes", planes, persistent=False)
        channels = [int(c) for c in voxel["channels"]]
        self.voxel_encoder = ResNet3D(int(depth["context_channels"]), channels, voxel["blocks"], voxel["strides"],
                                      norm=voxel["norm"])
        neck_c = int(voxel["neck_channels"])
        strides = [1]
        for s in voxel["strides"][1:]:
            strides.append(strides[-1] * int(s))
        self.voxel_neck = SECONDFPN3D(channels, [neck_c] * len(channels), strides, norm=voxel["norm"])
        fused_c = self.voxel_neck.out_channels
        self.temporal = None
        if temporal["enabled"]:
            self.temporal = TemporalBranch(temporal, self.history, fused_c)
            self.temporal_aux = bool(temporal["aux_loss"])
            self.alpha = nn.Parameter(torch.zeros(1))
            self.attention = LinearAttention3D(fused_c, int(temporal["attention_heads"]),
                                               int(temporal["attention_dim_head"]))
        self.occ_head = OccHead(fused_c, self.num_classes, voxel["norm"])
        self.point_head = PointHead(fused_c, img_c, self.num_classes) if head["point_branch"] else None

    # ------------------------------------------------------------------------------------------ forward
    def _check_batch(self, batch: dict) -> None:
        keys = ["img", "K", "T_cam_velo", "P2", "post_rot", "post_tran"]
        if self.stereo is not None:
            keys += ["img_right", "stereo_baseline"]
        for key in keys:
            if key not in batch:
                hint = " (set data.use_right_image: true)" if key in ("img_right", "stereo_baseline") else ""
                raise DataFormatError(f"HTCL batch has no {key!r}{hint} (keys: {sorted(batch)})")
        frames = batch["img"].shape[1]
        if self.temporal is not None and frames != self.history + 1:
            raise DataFormatError(f"HTCL was built for {self.history} history frames but the batch has {frames} "
                                  f"frames (data.history_offsets must not change after building)")
        h, w = batch["img"].shape[-2:]
        if h % 32 or w % 32:
            raise DataFormatError(f"HTCL needs image sizes divisible by 32 (stride-8 features through hourglasses), "
                                  f"got {h} x {w}")

    def depth_and_context(self, batch: dict, img_feats: torch.Tensor,
                          T_velo_cam: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Fused depth probability (B, D, h, w) and context (B, C, h, w) of the current frame; T_velo_cam
        (B, 1, 4, 4) its camera -> LiDAR transform."""
        cur = slice(-1, None)
        cam = camera_features(batch["P2"][:, cur], batch["post_rot"][:, cur], batch["post_tran"][:, cur], T_velo_cam)
        depth_logits, context = self.depth_net(img_feats, cam)
        depth_prob = torch.softmax(depth_logits, dim=1)
        if self.stereo is not None:
            fxb = batch["K"][:, -1, 0, 0].float() * batch["stereo_baseline"][:, -1].float()
            cost = self.stereo(batch["img"][:, -1], batch["img_right"][:, -1], fxb, self.stereo_planes)
            cost = F.interpolate(cost, size=depth_prob.shape[1:], mode="trilinear", align_corners=True)
            depth_prob = self.depth_fusion(torch.softmax(-cost.squeeze(1), dim=1), depth_prob)
        return depth_prob, context

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        self._check_batch(batch)
        img = batch["img"]
        cur = slice(-1, None)
        T_velo_cam = torch.linalg.inv(batch["T_cam_velo"][:, cur].float())
        img_feats = self.image_encoder(img[:, -1])
        feature_hw = tuple(img_feats.shape[-2:])
        depth_prob, context = self.depth_and_context(batch, img_feats, T_velo_cam)
        frustum = make_frustum(img.shape[-2:], feature_hw, self.depth_bins)
        index = voxel_index(frustum_to_lidar(frustum, batch["P2"][:, cur], batch["post_rot"][:, cur],
                                             batch["post_tran"][:, cur], T_velo_cam), self.work_grid)
        volume = splat(lift(depth_prob.unsqueeze(1), context.unsqueeze(1)), index, self.work_grid)
        fused = self.voxel_neck(self.voxel_encoder(volume.to(context.dtype)))
        out: dict[str, torch.Tensor] = {"depth_prob": depth_prob}
        temporal_voxel = None
        if self.temporal is not None:
            cams = camera2_poses(batch["T_cam_velo"], batch["P2"])
            T_hist_cur = cams[:, :-1] @ torch.linalg.inv(cams[:, -1:])
            frustum_volume = self.temporal.frustum_volume(img, batch["K"][:, -1], T_hist_cur, self.depth_bins,
                                                          feature_hw)
            splatted = splat(frustum_volume.permute(0, 2, 3, 4, 1).unsqueeze(1), index, self.work_grid)
            temporal_voxel = self.temporal.voxel(splatted.to(fused.dtype))
            fused = fused + self.alpha * self.attention(fused, temporal_voxel)
        out["ssc_logits"] = self.occ_head(fused, self.grid.dims)
        if self.training:
            if temporal_voxel is not None and self.temporal_aux:
                out["temporal_logits"] = self.occ_head(temporal_voxel, self.grid.dims)
            points = batch.get("labelled_points")
            if self.point_head is not None and points is not None:
                img_samples = sample_image(img_feats, points, (int(img.shape[-2]), int(img.shape[-1])))
                out["point_logits"] = self.point_head(sample_voxels(fused, points, self.work_grid), img_samples)
                if "temporal_logits" in out:
                    out["temporal_point_logits"] = self.point_head(
                        sample_voxels(temporal_voxel, points, self.work_grid), img_samples)
        return out

    # ------------------------------------------------------------------------------------------ losses
    def depth_loss(self, depth_prob: torch.Tensor, lidar_depth: torch.Tensor) -> torch.Tensor:
        """BCE of (B, D, h, w) depth probabilities against the one-hot nearest bin of the (B, H, W) LiDAR depth
        min-pooled over (H/h x W/w) patches (zeros = no point); summed over bins, mean over pixels with a depth
        inside the bins."""
        b, d, h, w = depth_prob.shape
        H, W = lidar_depth.shape[-2:]
        if H % h or W % w or H // h != W // w:
            raise DataFormatError(f"lidar_depth {H} x {W} is not a whole multiple of the depth map {h} x {w}")
        f = H // h
        with torch.autocast(depth_prob.device.type, enabled=False):
            gt = lidar_depth.float().view(b, h, f, w, f)
            gt = torch.where(gt > 0, gt, torch.full_like(gt, float("inf"))).amin(dim=(2, 4))
            step = float(self.depth_bins[1] - self.depth_bins[0])
            idx = torch.round((gt - self.depth_bins[0]) / step)
            valid = torch.isfinite(gt) & (idx >= 0) & (idx < d)
            prob = depth_prob.float().permute(0, 2, 3, 1)[valid]
            target = F.one_hot(idx[valid].long(), d).float()
            return F.binary_cross_entropy(prob, target, reduction="sum") / max(1, int(valid.sum()))

    def _voxel_terms(self, logits: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"voxel_ce": weighted_ce_loss(logits, target, self.class_weights, normalize=True),
                "voxel_sem_scal": sem_scal_loss(logits, target), "voxel_geo_scal": geo_scal_loss(logits, target)}

    @staticmethod
    def _point_terms(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"point_ce": weighted_ce_loss(logits, labels, ignore_index=0),
                "point_lovasz": lovasz_softmax_loss(logits, labels, ignore_index=0)}

    def losses(self, outputs: dict, batch: dict) -> dict[str, torch.Tensor]:
        """HTCL's weighted terms (see the module docstring); a weight of 0 drops a term (and the batch key it
        needs). Needs ``target``; ``lidar_depth`` for loss_depth (data.lidar_depth), ``labelled_points`` for the
        point terms (data.labelled_points)."""
        target = scene_target(batch, outputs["ssc_logits"], "HTCL")
        if self.temporal is not None and self.temporal_aux and "temporal_logits" not in outputs:
            raise DataFormatError("HTCL losses need outputs made in training mode (temporal_logits are missing)")
        terms: dict[str, torch.Tensor] = {}
        if self.loss_weights["depth"]:
            if "lidar_depth" not in batch:
                raise DataFormatError("HTCL's loss_depth needs batch['lidar_depth']: set data.lidar_depth: true "
                                      "(or model.loss_weights.depth: 0)")
            terms["depth"] = self.depth_loss(outputs["depth_prob"], batch["lidar_depth"])
        heads = ["ssc_logits"] + (["temporal_logits"] if "temporal_logits" in outputs else [])
        for key in heads:
            for name, value in self._voxel_terms(outputs[key], target).items():
                terms[name] = terms[name] + value if name in terms else value
        wants_points = self.point_head is not None and (self.loss_weights["point_ce"] or
                                                        self.loss_weights["point_lovasz"])
        if wants_points:
            if "point_logits" not in outputs:
                raise DataFormatError("HTCL's point losses need batch['labelled_points']: set data.labelled_points: "
                                      "true (or model.head.point_branch: false)")
            labels = batch["labelled_points"][:, 6].long()
            for key in ("point_logits", "temporal_point_logits"):
                if key in outputs:
                    for name, value in self._point_terms(outputs[key], labels).items():
                        terms[name] = terms[name] + value if name in terms else value
        return {f"loss_{k}": self.loss_weights[k] * v for k, v in terms.items() if self.loss_weights[k] != 0}
