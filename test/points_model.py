"""A tiny registered model for tests of the ROS/bag pipeline: it labels every voxel holding a point of the batch
(current and history scans, in the current LiDAR frame) as car and everything else empty, so a test knows the
exact prediction an input gives. A learnable scale makes it a real checkpointable module. Not a test module
(no ``test_`` prefix): test files import it."""

from __future__ import annotations

import torch
from torch import nn

from ssc_core.data.label_maps import SEMANTIC_KITTI
from ssc_core.models.registry import register_model
from ssc_core.types import GridSpec

POINTS_MODEL_NAME = "test_points_model"
CAR = 1


@register_model(POINTS_MODEL_NAME)
class PointsModel(nn.Module):
    """cfg: a whole config (``data.grid`` read). forward(batch) -> {"ssc_logits": (1, K, X, Y, Z)}."""

    def __init__(self, cfg: dict) -> None:
        super().__init__()
        self.grid = GridSpec.from_dict(cfg["data"]["grid"])
        self.scale = nn.Parameter(torch.tensor(4.0))

    def forward(self, batch):
        grid = self.grid
        points = batch["points"][:, 1:4].double()
        idx = torch.floor((points - torch.tensor(grid.origin, dtype=torch.float64)) / grid.voxel_size).long()
        inside = ((idx >= 0) & (idx < torch.tensor(grid.dims))).all(dim=1)
        occupied = torch.zeros(grid.dims, dtype=torch.bool)
        occupied[tuple(idx[inside].T)] = True
        logits = torch.zeros(1, SEMANTIC_KITTI.num_classes, *grid.dims)
        logits[0, CAR] = self.scale * occupied
        logits[0, 0] = self.scale * ~occupied
        return {"ssc_logits": logits}

    def losses(self, outputs, batch):
        return {"loss": outputs["ssc_logits"].sum() * 0}


LIDAR_POINTS_MODEL_NAME = "test_lidar_points_model"


@register_model(LIDAR_POINTS_MODEL_NAME)
class LidarPointsModel(PointsModel):
    """PointsModel declaring that it reads the LiDAR scan alone (as L2COcc-L does): live, no camera is waited for."""

    @classmethod
    def sensor_inputs(cls, cfg: dict) -> frozenset[str]:
        return frozenset({"points"})
