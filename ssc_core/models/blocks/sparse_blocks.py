"""Sparse voxel blocks of SGN (from SSC-RS): residual SubM blocks (SFE) and multi-scale pooled geometry
feature enhancement (SGFE). All take and return ``SparseVoxels`` with (N, C) features on the same sites."""

from __future__ import annotations

import torch
from torch import nn

from ssc_core.ops import SparseVoxels, SubMConv3d, linearize_coords, scatter_mean


class SparseBasicBlock(nn.Module):
    """LeakyReLU(identity + main): identity = SubM 1x1x1 + BN; main = SubM 3x3x3 + BN + LeakyReLU(0.1) +
    SubM 3x3x3 + BN (convs without bias; BatchNorm1d sees active sites only)."""

    def __init__(self, in_channels: int, out_channels: int, backend: str = "auto") -> None:
        super().__init__()
        self.identity_conv = SubMConv3d(in_channels, out_channels, 1, bias=False, backend=backend)
        self.identity_bn = nn.BatchNorm1d(out_channels)
        self.conv1 = SubMConv3d(in_channels, out_channels, 3, bias=False, backend=backend)
        self.bn1 = nn.BatchNorm1d(out_channels)
        self.conv2 = SubMConv3d(out_channels, out_channels, 3, bias=False, backend=backend)
        self.bn2 = nn.BatchNorm1d(out_channels)
        self.act = nn.LeakyReLU(0.1)

    def forward(self, x: SparseVoxels) -> SparseVoxels:
        identity = self.identity_bn(self.identity_conv(x).features)
        y = self.act(self.bn1(self.conv1(x).features))
        y = self.bn2(self.conv2(x.replace_features(y)).features)
        return x.replace_features(self.act(y + identity))


class SFE(nn.Sequential):
    """``layers`` SparseBasicBlocks, the first mapping in_channels -> out_channels."""

    def __init__(self, in_channels: int, out_channels: int, layers: int = 1, backend: str = "auto") -> None:
        super().__init__(*[SparseBasicBlock(in_channels if i == 0 else out_channels, out_channels, backend)
                           for i in range(layers)])


class SGFE(nn.Module):
    """Multi-scale sparse geometry feature enhancement.

    r = ReLU(Linear(in -> reduce)); for each pooling scale s the mean of r over coords // s (per batch), mapped
    by Linear(reduce -> reduce/2) + ReLU and broadcast back; scales are fused with per-scale sigmoid gates
    computed from their sum; output Linear(2*reduce -> reduce, no bias) -> ReLU -> Linear(reduce -> out)
    on cat[r, fused]. (N, in) -> (N, out)."""

    def __init__(self, in_channels: int, out_channels: int, reduce_channels: int,
                 pool_scales: tuple[int, ...] = (2, 4, 6, 8)) -> None:
        super().__init__()
        half = reduce_channels // 2
        self.pool_scales = tuple(pool_scales)
        self.feature_reduce = nn.Linear(in_channels, reduce_channels)
        self.pool_linears = nn.ModuleList(nn.Linear(reduce_channels, half) for _ in self.pool_scales)
        self.fc = nn.Linear(half, half, bias=False)
        self.gates = nn.ModuleList(nn.Linear(half, half) for _ in self.pool_scales)
        self.out_fc = nn.Linear(half, reduce_channels, bias=False)
        self.out = nn.Sequential(nn.Linear(2 * reduce_channels, reduce_channels, bias=False), nn.ReLU(inplace=True),
                                 nn.Linear(reduce_channels, out_channels))

    def forward(self, x: SparseVoxels) -> SparseVoxels:
        r = torch.relu(self.feature_reduce(x.features))
        pooled = []
        for scale, linear in zip(self.pool_scales, self.pool_linears):
            key = ("pool", scale)
            if key not in x.cache:
                coarse = torch.cat([x.coords[:, :1], torch.div(x.coords[:, 1:], scale, rounding_mode="floor")], 1)
                shape = tuple(-(-s // scale) for s in x.spatial_shape)
                _, inverse = torch.unique(linearize_coords(coarse, shape), return_inverse=True)
                x.cache[key] = (inverse, int(inverse.max()) + 1 if inverse.numel() else 0)
            inverse, groups = x.cache[key]
            pooled.append(torch.relu(linear(scatter_mean(r, inverse, groups)))[inverse])
        z = torch.relu(self.fc(sum(pooled)))
        fused = sum(torch.sigmoid(gate(z)) * feat for gate, feat in zip(self.gates, pooled))
        return x.replace_features(self.out(torch.cat([r, self.out_fc(fused)], dim=1)))
