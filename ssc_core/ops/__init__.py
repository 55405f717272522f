"""Operators shared by the models: sparse convolution (pure torch, spconv when usable), scatter, deformable
convolution (torchvision), multi-scale deformable attention (pure torch)."""

from ssc_core.ops.deform import DeformConv2d
from ssc_core.ops.deform_attn import bilinear_corners, ms_deform_attn
from ssc_core.ops.scatter import delinearize_keys, linearize_coords, scatter_max, scatter_mean, unique_coords
from ssc_core.ops.sparse import BACKENDS, SparseVoxels, SubMConv3d, build_rulebook, enable_spconv, resolve_backend

__all__ = [
    "BACKENDS",
    "DeformConv2d",
    "SparseVoxels",
    "SubMConv3d",
    "bilinear_corners",
    "build_rulebook",
    "delinearize_keys",
    "enable_spconv",
    "linearize_coords",
    "ms_deform_attn",
    "resolve_backend",
    "scatter_max",
    "scatter_mean",
    "unique_coords",
]
