"""OccHead: the occupancy codebases' voxel classifier."""

from __future__ import annotations

import torch
from torch import nn

from ssc_core.models.blocks.occ_head import OccHead


def test_occ_head_classifies_at_the_work_grid_and_upsamples_trilinearly():
    head = OccHead(64, 20)
    x = torch.randn(1, 64, 4, 4, 2)
    coarse = head.coarse(x)
    assert coarse.shape == (1, 20, 4, 4, 2)
    full = head(x, (8, 8, 4))
    assert full.shape == (1, 20, 8, 8, 4)
    expected = torch.nn.functional.interpolate(coarse, size=(8, 8, 4), mode="trilinear", align_corners=False)
    assert torch.allclose(full, expected)
    assert isinstance(head.conv[1], nn.GroupNorm) and head.conv[0].bias is None and head.conv[3].bias is None
