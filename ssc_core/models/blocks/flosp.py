"""FLoSP (MonoScene/SGN): lift 2D features to 3D voxels by nearest-pixel lookup, averaged over the frames in
whose view a voxel lies."""

from __future__ import annotations

import torch


def project_voxels(centers_velo: torch.Tensor, K: torch.Tensor, T_cam_velo: torch.Tensor,
                   image_hw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Project voxel centres into each frame's camera with K @ (T_cam_velo @ p), pixels rounded (MonoScene).

    centers_velo: (N, 3) in the current LiDAR frame; K: (B, F, 3, 3); T_cam_velo: (B, F, 4, 4);
    image_hw: (B, 2) [H, W]. Returns (pixels (B, F, N, 2) int64 (u, v), in-view mask (B, F, N) bool:
    depth > 0 and 0 <= u < W, 0 <= v < H). Always computed in float32, also under autocast (bf16 would move
    pixels by several columns at KITTI widths)."""
    with torch.autocast(device_type=centers_velo.device.type, enabled=False):
        T = T_cam_velo.float()
        cam = torch.einsum("bfij,nj->bfni", T[..., :3, :3], centers_velo.float()) + T[..., None, :3, 3]
        uvw = torch.einsum("bfij,bfnj->bfni", K.float(), cam)
    depth = cam[..., 2]
    pix = torch.round(uvw[..., :2] / depth.clamp(min=1e-6)[..., None]).long()
    h = image_hw[:, 0].view(-1, 1, 1)
    w = image_hw[:, 1].view(-1, 1, 1)
    inside = (depth > 0) & (pix[..., 0] >= 0) & (pix[..., 0] < w) & (pix[..., 1] >= 0) & (pix[..., 1] < h)
    return pix, inside


def flosp(features: torch.Tensor, pix: torch.Tensor, inside: torch.Tensor, stride: int) -> torch.Tensor:
    """Gather per-voxel features from feature maps at stride ``stride``.

    features: (B, F, C, h, w); pix, inside from ``project_voxels``. Returns (B, C, N): the mean over the frames
    that see each voxel (divided by max(count, 1)); zeros where no frame does."""
    b, n_frames, c, h, w = features.shape
    u = torch.div(pix[..., 0], stride, rounding_mode="floor").clamp(0, w - 1)
    v = torch.div(pix[..., 1], stride, rounding_mode="floor").clamp(0, h - 1)
    index = v * w + u
    out = features.new_zeros((b, c, pix.shape[2]))
    for f in range(n_frames):
        idx = index[:, f].unsqueeze(1).expand(b, c, -1)
        gathered = torch.gather(features[:, f].flatten(2), 2, idx)
        out = out + gathered * inside[:, f].unsqueeze(1).to(features.dtype)
    count = inside.sum(dim=1).clamp(min=1).unsqueeze(1).to(features.dtype)
    return out / count
