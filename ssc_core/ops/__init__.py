"""Operators shared by the models: sparse convolution (pure torch, spconv when usable), scatter, deformable
convolution (2D on torchvision, 3D with H/W offsets on grid_sample), multi-scale deformable attention (pure
torch)."""

from ssc_core.ops.deform import DeformConv2d
from ssc_core.ops.deform3d import DeformConv3dHW, deform_conv3d_hw
from ssc_core.ops.deform_attn import bilinear_corners, ms_deform_attn
from ssc_core.ops.scatter import delinearize_keys, linearize_coords, scatter_max, scatter_mean, unique_coords
from ssc_core.ops.sparse import BACKENDS, SparseVoxels, SubMConv3d, build_rulebook, enable_spconv, resolve_backend

__all__ = [
    "BACKENDS",
    "DeformConv2d",
    "DeformConv3dHW",
    "SparseVoxels",
    "SubMConv3d",
    "bilinear_corners",
    "build_rulebook",
    "deform_conv3d_hw",
    "delinearize_keys",
    "enable_spconv",
    "linearize_coords",
    "ms_deform_attn",
    "resolve_backend",
    "scatter_max",
    "scatter_mean",
    "unique_coords",
]
