"""Lift-splat-shoot in pure PyTorch: the camera frustum of a feature map, its points in the LiDAR frame, and the
pooling of per-point features into a voxel grid by ``index_add_`` (no CUDA ``bev_pool``). Shared by HTCL and
L2COcc (and any LSS-style method).

Geometry (BEVDepth / HTCL ``get_geometry``): a feature map of size (h, w) over an image tensor of size (H, W)
has frustum points (u, v, d) with u = linspace(0, W - 1, w), v = linspace(0, H - 1, h) in image-tensor pixels
and d the depth bins. Each is taken back to the raw image with the inverse image transform
(``post_rot``, ``post_tran``: raw pixel -> tensor pixel, ``p_tensor = post_rot @ p_raw + post_tran``), lifted to
(u d, v d, d), shifted by minus the 4th column of the raw projection ``P`` (KITTI's P2 holds the camera-0 ->
camera-2 offset there; the release subtracts it, so points land in camera 0's frame), multiplied by K^-1 and
moved into the LiDAR frame by ``T_velo_cam`` (camera 0 -> LiDAR, the inverse of calib ``Tr``). An optional
(B, 4, 4) ``bda`` (bird's-eye augmentation) is applied last.

Pooling: voxel (i, j, k) = floor((p - origin) / voxel_size) on a ``GridSpec``; points outside the grid are dropped;
features of points in one voxel are summed (float32 accumulation). The output is (B, C, X, Y, Z), the project's
voxel layout ([x][y][z], x forward). The release truncates instead of flooring (``.long()``), which also keeps
points up to one voxel below the lower bound in the first voxel; flooring is the exact grid.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ssc_core.types import GridSpec


def depth_bins(start: float, stop: float, step: float) -> torch.Tensor:
    """Depth bin values (D,) float32 ``arange(start, stop, step)`` (HTCL's ``dbound [2, 58, 0.5]`` -> 112 bins,
    2.0 ... 57.5 m)."""
    if not step > 0 or not stop > start:
        raise ValueError(f"depth bins need start < stop and step > 0, got [{start}, {stop}, {step}]")
    return torch.arange(float(start), float(stop), float(step), dtype=torch.float32)


def make_frustum(image_hw: Sequence[int], feature_hw: Sequence[int], depths: torch.Tensor) -> torch.Tensor:
    """(D, h, w, 3) float32 frustum points (u, v, d) on ``depths``' device: u, v in image-tensor pixels of the
    (H, W) image whose feature map is (h, w) (``linspace(0, W - 1, w)``, ``linspace(0, H - 1, h)``), d = ``depths``
    (D,)."""
    (height, width), (h, w) = (int(v) for v in image_hw), (int(v) for v in feature_hw)
    d = depths.float().view(-1, 1, 1).expand(-1, h, w)
    xs = torch.linspace(0, width - 1, w, device=depths.device).view(1, 1, w).expand_as(d)
    ys = torch.linspace(0, height - 1, h, device=depths.device).view(1, h, 1).expand_as(d)
    return torch.stack([xs, ys, d], dim=-1)


def frustum_to_lidar(frustum: torch.Tensor, P: torch.Tensor, post_rot: torch.Tensor, post_tran: torch.Tensor,
                     T_velo_cam: torch.Tensor, bda: torch.Tensor | None = None) -> torch.Tensor:
    """Frustum points in the LiDAR frame.

    frustum (D, h, w, 3) from ``make_frustum``; P (B, N, 3, 4) raw projection matrices (K | shift); post_rot
    (B, N, 3, 3) and post_tran (B, N, 3) the raw -> tensor pixel transform; T_velo_cam (B, N, 4, 4) camera ->
    LiDAR; bda optional (B, 4, 4). Returns (B, N, D, h, w, 3) float32 x, y, z in the LiDAR frame. Computed in
    float32 whatever the autocast state (pixel-accurate geometry)."""
    with torch.autocast(frustum.device.type, enabled=False):
        b, n = P.shape[:2]
        pts = frustum.float().view(1, 1, *frustum.shape[:3], 3, 1) - post_tran.float().view(b, n, 1, 1, 1, 3, 1)
        pts = torch.linalg.inv(post_rot.float()).view(b, n, 1, 1, 1, 3, 3) @ pts
        pts = torch.cat([pts[..., :2, :] * pts[..., 2:3, :], pts[..., 2:3, :]], dim=-2)
        pts = pts - P[..., :3, 3].float().view(b, n, 1, 1, 1, 3, 1)
        T = T_velo_cam.float()
        combine = T[..., :3, :3] @ torch.linalg.inv(P[..., :3, :3].float())
        pts = (combine.view(b, n, 1, 1, 1, 3, 3) @ pts).squeeze(-1) + T[..., :3, 3].view(b, n, 1, 1, 1, 3)
        if bda is not None:
            bda = bda.float()
            pts = (bda[:, :3, :3].view(b, 1, 1, 1, 1, 3, 3) @ pts.unsqueeze(-1)).squeeze(-1)
            pts = pts + bda[:, :3, 3].view(b, 1, 1, 1, 1, 3)
        return pts


def voxel_index(points: torch.Tensor, grid: GridSpec) -> torch.Tensor:
    """Flat voxel index of every point, for ``splat``.

    points (B, *S, 3) in the grid's frame. Returns (B * prod(S),) int64: ``b * X*Y*Z + (i * Y + j) * Z + k`` for
    points inside the grid, and ``B * X*Y*Z`` (one past the last voxel, a discard slot) for the others."""
    b = points.shape[0]
    dims = torch.tensor(grid.dims, device=points.device)
    origin = torch.tensor(grid.origin, device=points.device, dtype=torch.float32)
    idx = torch.floor((points.reshape(b, -1, 3).float() - origin) / grid.voxel_size).long()
    inside = ((idx >= 0) & (idx < dims)).all(dim=-1)
    flat = (idx[..., 0] * dims[1] + idx[..., 1]) * dims[2] + idx[..., 2]
    flat = flat + torch.arange(b, device=points.device).view(b, 1) * grid.num_voxels
    return torch.where(inside, flat, torch.full_like(flat, b * grid.num_voxels)).reshape(-1)


def splat(feats: torch.Tensor, index: torch.Tensor, grid: GridSpec) -> torch.Tensor:
    """Sum point features into voxels.

    feats (B, *S, C) (e.g. (B, N, D, h, w, C)); index from ``voxel_index`` for points (B, *S, 3). Returns
    (B, C, X, Y, Z) float32, zero where no point landed."""
    b, c = feats.shape[0], feats.shape[-1]
    flat = feats.reshape(-1, c)
    if flat.shape[0] != index.shape[0]:
        raise ValueError(f"splat: {flat.shape[0]} feature rows for {index.shape[0]} voxel indices")
    out = torch.zeros(b * grid.num_voxels + 1, c, device=feats.device, dtype=torch.float32)
    out.index_add_(0, index, flat.float())
    return out[:-1].view(b, *grid.dims, c).permute(0, 4, 1, 2, 3)


def lift(depth_prob: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
    """Outer product of a depth distribution and context features per pixel.

    depth_prob (B, N, D, h, w), context (B, N, C, h, w) -> (B, N, D, h, w, C)."""
    return depth_prob.unsqueeze(-1) * context.permute(0, 1, 3, 4, 2).unsqueeze(2)


class LiftSplat(nn.Module):
    """A camera's frustum on a fixed image / feature size, splatting into ``grid``.

    ``geometry(P, post_rot, post_tran, T_velo_cam, bda=None)`` -> the voxel index of every frustum point (compute
    once per batch, reuse for several feature volumes); ``forward(feats (B, N, D, h, w, C), index)`` -> (B, C, X,
    Y, Z)."""

    def __init__(self, image_hw: Sequence[int], feature_hw: Sequence[int], depths: torch.Tensor,
                 grid: GridSpec) -> None:
        super().__init__()
        self.grid = grid
        self.register_buffer("frustum", make_frustum(image_hw, feature_hw, depths), persistent=False)

    @property
    def num_depths(self) -> int:
        """D, the number of depth bins."""
        return int(self.frustum.shape[0])

    def geometry(self, P: torch.Tensor, post_rot: torch.Tensor, post_tran: torch.Tensor, T_velo_cam: torch.Tensor,
                 bda: torch.Tensor | None = None) -> torch.Tensor:
        """(B * N * D * h * w,) int64 voxel indices of the frustum points (see ``voxel_index``)."""
        return voxel_index(frustum_to_lidar(self.frustum, P, post_rot, post_tran, T_velo_cam, bda), self.grid)

    def forward(self, feats: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return splat(feats, index, self.grid)
