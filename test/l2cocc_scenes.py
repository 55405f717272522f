"""L2COcc test scenes (not a test module: the L2COcc tests import it): configs shrunk to a 64 x 64 x 8 grid and
64 x 192 images, and samples of a road with a car seen by the LiDAR and a KITTI-like camera."""

from __future__ import annotations

import numpy as np
import torch

from ssc_core.config import load_config
from ssc_core.data.downsample import downsample_labels
from ssc_core.data.transforms import collate
from ssc_core.models.blocks.evt import project_to_image
from ssc_core.types import GridSpec

GRID = {"dims": [64, 64, 8], "voxel_size": 0.8, "origin": [0.0, -25.6, -2.0]}
IMAGE_HW = (64, 192)
# KITTI seq-08 calibration scaled to 192 x 64 images
P2 = torch.tensor([[110.7, 0.0, 94.2, 7.34], [0.0, 122.3, 31.7, 0.02], [0.0, 0.0, 1.0, 0.0062]])
T_CAM_VELO = torch.tensor([[-0.0019, -1.0, -0.008, -0.0048], [-0.0065, 0.008, -1.0, -0.0734],
                           [1.0, -0.0018, -0.0065, -0.334], [0.0, 0.0, 0.0, 1.0]])
SMALL_SWIN = {"embed_dim": 16, "depths": [1, 1, 1, 1], "num_heads": [1, 2, 2, 4], "drop_path_rate": 0.0}
CAMERA = {"backbone": {"name": "tf_efficientnet_b0", "out_indices": [1, 2, 3, 4], "with_head": True},
          "neck": {"out_channels": [8] * 5}, "depth_bins": [2.0, 58.0, 2.0], "depth_net": {"mid_channels": 16},
          "aggregation": {"channels": 8, "kernel": 3}, "evt": {"layers": 1, "heads": 4, "points": 4}}


def small_config(name: str, **model) -> dict:
    """A shipped config shrunk to a 64 x 64 x 8 grid, 64 x 192 images and C = 16."""
    overrides = {"dim": 16, "voxel_blocks": [1, 1, 1], "norm_groups": 4, "swin": SMALL_SWIN}
    if name != "l2cocc_l":
        overrides.update(CAMERA)
    overrides.update(model)
    return load_config(name, {"data": {"grid": GRID, "image_crop": list(IMAGE_HW)}, "model": overrides})


def scene(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Points (N, 4) of a road plane and a car-sized box in front of the camera, and the labels they imply (road
    9, car 1, empty 0, a stripe of 255)."""
    grid = GridSpec.from_dict(GRID)
    rng = np.random.default_rng(seed)
    ground = np.column_stack([rng.uniform(0, 51.2, 6000), rng.uniform(-25.6, 25.6, 6000), np.full(6000, -1.7)])
    cx, cy = rng.uniform(8, 25), rng.uniform(-6, 6)
    box = np.column_stack([rng.uniform(cx - 2, cx + 2, 1500), rng.uniform(cy - 1, cy + 1, 1500),
                           rng.uniform(-1.7, -0.2, 1500)])
    labels = np.zeros(grid.dims, dtype=np.int64)
    for pts, cls in ((ground, 9), (box, 1)):
        idx, inside = grid.points_to_indices(pts)
        labels[tuple(idx[inside].T)] = cls
    labels[:, -2:, :] = 255
    points = np.column_stack([np.vstack([ground, box]), rng.uniform(0, 1, 7500)]).astype(np.float32)
    return points, labels


def depth_image(points: np.ndarray) -> torch.Tensor:
    """(H, W) depth of the points seen by the camera, the nearest per pixel (0 elsewhere)."""
    uv, depth = project_to_image(torch.from_numpy(points[:, :3]), P2, T_CAM_VELO, torch.eye(3), torch.zeros(3))
    col, row = uv[:, 0].round().long(), uv[:, 1].round().long()
    keep = (depth > 0) & (col >= 0) & (col < IMAGE_HW[1]) & (row >= 0) & (row < IMAGE_HW[0])
    image = torch.full(IMAGE_HW, float("inf"))
    image.view(-1).scatter_reduce_(0, (row * IMAGE_HW[1] + col)[keep], depth[keep], reduce="amin")
    return torch.where(torch.isinf(image), torch.zeros_like(image), image)


def make_sample(seed: int) -> dict:
    """One sample as the data layer makes it for L2COcc (LiDAR points, camera tensors, depth maps, targets)."""
    points, labels = scene(seed)
    depth = depth_image(points)
    gen = torch.Generator().manual_seed(seed)
    return {
        "img": torch.randn(1, 3, *IMAGE_HW, generator=gen) + depth[None, None] / 20,
        "P2": P2[None].clone(), "T_cam_velo": T_CAM_VELO[None].clone(),
        "post_rot": torch.eye(3)[None].clone(), "post_tran": torch.zeros(1, 3),
        "stereo_depth": depth, "lidar_depth": depth, "points": torch.from_numpy(points),
        "target": torch.from_numpy(labels), "target_1_2": torch.from_numpy(downsample_labels(labels, 2)).long(),
        "frame_index": seed,
    }


def make_batch(seeds: list[int]) -> dict:
    """A collated batch of ``make_sample``s."""
    return collate([make_sample(seed) for seed in seeds])
