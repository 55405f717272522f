"""Depth maps against depth bins: the patch min-pooling and binning that LSS models (CGFormer / L2COcc / HTCL) use
to turn a sparse (LiDAR) or dense (stereo) depth map at image resolution into per-feature-pixel targets, and
L2COcc's depth loss.

Bins follow the ``dbound`` convention [start, stop, step): D = (stop - start) / step bins with centres
start + k * step (L2COcc / HTCL: [2, 58, 0.5] -> 112 bins, 2.0 ... 57.5 m); bin k covers the depths within half a
step of its centre. Depth 0 (or non-finite) means "no measurement".
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ssc_core.errors import DataFormatError


def num_bins(bins: Sequence[float]) -> int:
    """D of a [start, stop, step] bin spec."""
    start, stop, step = (float(v) for v in bins)
    if not step > 0 or not stop > start:
        raise DataFormatError(f"depth bins need start < stop and step > 0, got {list(bins)}")
    return int(round((stop - start) / step))


def min_pool_depth(depth: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, H, W) metric depth (0 / non-finite = none) -> (B, H / patch, W / patch): the smallest valid depth of each
    patch x patch block, 0 where the block has none. H and W must be multiples of ``patch``."""
    if depth.dim() != 3 or depth.shape[1] % patch or depth.shape[2] % patch:
        raise DataFormatError(f"depth map must be (B, H, W) with H, W multiples of {patch}, got {tuple(depth.shape)}")
    valid = torch.isfinite(depth) & (depth > 0)
    filled = torch.where(valid, depth.float(), torch.full_like(depth, float("inf"), dtype=torch.float32))
    pooled = -F.max_pool2d(-filled.unsqueeze(1), patch).squeeze(1)
    return torch.where(torch.isinf(pooled), torch.zeros_like(pooled), pooled)


def depth_bin_index(depth: torch.Tensor, bins: Sequence[float]) -> torch.Tensor:
    """Index (same shape, int64) of the bin whose centre is nearest to each depth; -1 for no depth or a depth
    outside [start - step / 2, stop - step / 2)."""
    start, _, step = (float(v) for v in bins)
    index = torch.floor((depth.float() - start) / step + 0.5).long()
    inside = (depth > 0) & (index >= 0) & (index < num_bins(bins))
    return torch.where(inside, index, torch.full_like(index, -1))


def depth_one_hot(depth: torch.Tensor, bins: Sequence[float]) -> torch.Tensor:
    """(B, h, w) depths -> (B, D, h, w) float32 one-hot of ``depth_bin_index`` (all zeros where -1)."""
    index = depth_bin_index(depth, bins)
    one_hot = F.one_hot(index.clamp(min=0), num_bins(bins)).float() * (index >= 0).unsqueeze(-1).float()
    return one_hot.permute(0, 3, 1, 2)


def gaussian_depth_target(depth: torch.Tensor, bins: Sequence[float], std: float = 0.5) -> torch.Tensor:
    """(B, h, w) depths -> (B, D, h, w): the mass of N(depth, std^2) (metres) falling in each bin, bin k spanning
    [start + (k - 1/2) step, start + (k + 1/2) step). CGFormer / L2COcc's target with std 0.5 m. (Their release
    evaluates a normal in bin units at edges in metres, which centres the target at twice the depth; the depth
    here is the measured one.)"""
    start, _, step = (float(v) for v in bins)
    count = num_bins(bins)
    edges = start - step / 2 + step * torch.arange(count + 1, device=depth.device, dtype=torch.float32)
    z = (edges.view(1, -1, 1, 1) - depth.float().unsqueeze(1)) / (std * 2 ** 0.5)
    cdf = 0.5 * (1 + torch.erf(z))
    return cdf[:, 1:] - cdf[:, :-1]


def depth_kl_loss(depth_prob: torch.Tensor, depth_map: torch.Tensor, bins: Sequence[float], std: float = 0.5,
                  eps: float = 1e-4) -> torch.Tensor:
    """L2COcc's depth loss: KL(target || predicted) per feature pixel, summed over bins and averaged over the pixels
    with a valid target (``F.kl_div(log(p + eps), target, reduction='batchmean')`` over those pixels).

    depth_prob (B, D, h, w) probabilities; depth_map (B, H, W) metric depth in image pixels (LiDAR, 0 = none), min
    pooled to the feature size; pixels whose pooled depth lies within [start, stop - step] are supervised with
    ``gaussian_depth_target``. 0 (connected to the graph) when no pixel is."""
    b, count, h, w = depth_prob.shape
    if count != num_bins(bins):
        raise DataFormatError(f"depth_prob has {count} bins, the bin spec {list(bins)} gives {num_bins(bins)}")
    if depth_map.shape[0] != b or depth_map.shape[1] % h or depth_map.shape[2] % w or (
            depth_map.shape[1] // h != depth_map.shape[2] // w):
        raise DataFormatError(f"depth map {tuple(depth_map.shape)} is not an integer multiple of the depth "
                              f"distribution {tuple(depth_prob.shape)}")
    pooled = min_pool_depth(depth_map, depth_map.shape[1] // h)
    start, stop, step = (float(v) for v in bins)
    valid = (pooled >= start) & (pooled <= stop - step)
    if not bool(valid.any()):
        return depth_prob.sum() * 0.0
    target = gaussian_depth_target(pooled, bins, std).permute(0, 2, 3, 1)[valid]
    pred = depth_prob.float().permute(0, 2, 3, 1)[valid]
    return F.kl_div(torch.log(pred + eps), target, reduction="batchmean")
