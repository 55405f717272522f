"""L2COcc's three models at a reduced size: shapes, the outputs distillation compares, finite non-zero losses,
gradients, the -C / -D equivalence, overfitting a scene, and checkpoint round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ssc_core.config import load_config
from ssc_core.data.downsample import downsample_labels
from ssc_core.data.label_maps import SEMANTIC_KITTI
from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.evaluation.metrics import SSCMetrics
from ssc_core.models import build_model, list_models
from ssc_core.models.blocks.evt import project_to_image
from ssc_core.training.checkpoint import load_checkpoint, load_model_state, save_checkpoint
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


def make_batch(seeds: list[int]) -> dict:
    """A collated batch as the data layer makes it for L2COcc (LiDAR points, camera tensors, depth maps, targets)."""
    points, targets, depths = [], [], []
    for b, seed in enumerate(seeds):
        pts, labels = scene(seed)
        points.append(np.column_stack([np.full(len(pts), b, np.float32), pts]))
        targets.append(labels)
        depths.append(depth_image(pts))
    n = len(seeds)
    gen = torch.Generator().manual_seed(sum(seeds))
    depth = torch.stack(depths)
    return {
        "img": torch.randn(n, 1, 3, *IMAGE_HW, generator=gen) + depth[:, None, None] / 20,
        "P2": P2.expand(n, 1, 3, 4).clone(), "T_cam_velo": T_CAM_VELO.expand(n, 1, 4, 4).clone(),
        "post_rot": torch.eye(3).expand(n, 1, 3, 3).clone(), "post_tran": torch.zeros(n, 1, 3),
        "stereo_depth": depth, "lidar_depth": depth,
        "points": torch.from_numpy(np.vstack(points)),
        "target": torch.from_numpy(np.stack(targets)),
        "target_1_2": torch.from_numpy(np.stack([downsample_labels(t, 2) for t in targets])).long(),
        "frame_index": list(range(n)),
    }


@pytest.fixture
def one_thread():
    """One thread: these loops of small ops are slower with two threads on a loaded 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_the_three_models_are_registered():
    assert {"l2cocc_l", "l2cocc_c", "l2cocc_d"} <= set(list_models())


@pytest.mark.parametrize("name", ["l2cocc_l", "l2cocc_c"])
def test_shapes_distillation_outputs_losses_and_gradients(name, one_thread):
    torch.manual_seed(0)
    model = build_model(small_config(name)).train()
    batch = make_batch([0, 1])
    out = model(batch)
    assert out["ssc_logits"].shape == (2, 20, 64, 64, 8)
    assert out["voxel_features"].shape == out["fused_features"].shape == (2, 16, 32, 32, 4)
    assert out["aggregator_logits"].shape == (2, 4, 32, 32, 4)
    assert [tuple(f.shape[2:]) for f in out["plane_backbone"][0]] == [(16, 16), (8, 8), (4, 4)]
    assert [tuple(f.shape[2:]) for f in out["plane_neck"][1]] == [(16, 2), (8, 1)]
    losses = model.losses(out, batch)
    expected = {"loss_ce", "loss_sem_scal", "loss_geo_scal"} | ({"loss_depth"} if name != "l2cocc_l" else set())
    assert set(losses) == expected
    assert all(v.dim() == 0 and torch.isfinite(v) and v.item() > 0 for v in losses.values())
    sum(losses.values()).backward()
    parts = ["voxel_encoder", "tpv.pooler", "tpv.swin", "tpv.neck", "tpv.aggregator", "head"]
    parts += ["lidar_encoder"] if name == "l2cocc_l" else ["backbone", "neck", "depth_net", "depth", "evt"]
    for part in parts:
        grads = [p.grad for n, p in model.named_parameters() if n.startswith(part + ".") and p.requires_grad]
        assert grads and any(g is not None and g.abs().sum() > 0 for g in grads), part
    if name == "l2cocc_c":
        assert out["depth_prob"].shape == (2, 28, 8, 24)
        assert torch.allclose(out["depth_prob"].sum(1), torch.ones(2, 8, 24), atol=1e-4)
        assert 0 < out["proposals"].sum() < out["proposals"].numel() // 4


def test_student_is_the_camera_network_with_the_student_loss_weights():
    torch.manual_seed(0)
    camera, student = build_model(small_config("l2cocc_c")), build_model(small_config("l2cocc_d"))
    assert camera.state_dict().keys() == student.state_dict().keys()
    assert camera.loss_weights == {"ce": 3.0, "sem_scal": 1.0, "geo_scal": 1.0, "depth": 1e-4}
    assert student.loss_weights == {"ce": 3.0, "sem_scal": 0.5, "geo_scal": 1.5, "depth": 1e-4}


def test_camera_inputs_are_checked():
    model = build_model(small_config("l2cocc_c"))
    batch = make_batch([0])
    del batch["stereo_depth"]
    with pytest.raises(DataFormatError, match="stereo_depth"):
        model(batch)
    out_l = build_model(small_config("l2cocc_l"))
    with pytest.raises(DataFormatError, match="points"):
        out_l({k: v for k, v in make_batch([0]).items() if k != "points"})
    with pytest.raises(ConfigError, match="depth_bins"):
        build_model(small_config("l2cocc_c", depth_bins=[2.0, 58.0, 4.0]))  # 14 bins: not a multiple of 4
    with pytest.raises(ConfigError, match="unknown model keys"):
        build_model(small_config("l2cocc_l", evt={"layers": 1}))


def _fit(model: torch.nn.Module, batch: dict, steps: int, lr: float) -> tuple[float, float, dict]:
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.01)
    first = last = None
    for _ in range(steps):
        total = sum(model.losses(model(batch), batch).values())
        first = total.item() if first is None else first
        last = total.item()
        opt.zero_grad()
        total.backward()
        opt.step()
    with torch.no_grad():
        pred = model.eval()(batch)["ssc_logits"].argmax(1)
    metrics = SSCMetrics(SEMANTIC_KITTI.num_classes)
    for p, t in zip(pred.numpy(), batch["target"].numpy()):
        metrics.add(p, t)
    return first, last, metrics.compute()


def test_lidar_teacher_overfits_a_scene(one_thread):
    """Measured (seed 0, 30 AdamW steps at 2e-2): loss 22.1 -> 3.7, completion IoU 0.75, road IoU 0.76,
    car IoU 0.27 (scored in eval mode on the scene it trained on)."""
    torch.manual_seed(0)
    first, last, scores = _fit(build_model(small_config("l2cocc_l")).train(), make_batch([0]), 30, 2e-2)
    assert last < 0.25 * first
    assert scores["iou"] > 0.65 and scores["iou_per_class"][9] > 0.65 and scores["iou_per_class"][1] > 0.15


def test_camera_model_overfits_a_scene(one_thread):
    """Measured (seed 0, 30 AdamW steps at 2e-2): loss 22.0 -> 4.2, completion IoU 0.70, road IoU 0.74."""
    torch.manual_seed(0)
    first, last, scores = _fit(build_model(small_config("l2cocc_c")).train(), make_batch([0]), 30, 2e-2)
    assert last < 0.25 * first
    assert scores["iou"] > 0.6 and scores["iou_per_class"][9] > 0.6


@pytest.mark.parametrize("name", ["l2cocc_l", "l2cocc_d"])
def test_checkpoint_round_trip_gives_identical_outputs(name, tmp_path, one_thread):
    torch.manual_seed(0)
    cfg = small_config(name)
    model = build_model(cfg).eval()
    path = save_checkpoint(tmp_path / "m.pt", model, cfg, SEMANTIC_KITTI, GridSpec.from_dict(GRID))
    ckpt = load_checkpoint(path)
    restored = build_model(ckpt["config"]).eval()
    load_model_state(restored, ckpt["model"], source=str(path))
    batch = make_batch([3])
    with torch.no_grad():
        assert torch.equal(model(batch)["ssc_logits"], restored(batch)["ssc_logits"])


def test_predictor_runs_each_model_on_only_the_streams_it_reads(one_thread):
    from ssc_core.data.synthetic.options import default_calib, scale_calib
    from ssc_core.inference.predictor import Predictor
    from ssc_core.types import Frame, FrameWindow

    points, _ = scene(0)
    lidar_only = Frame(stamp_ns=5, image_left=None, calib=None, points_velo=points, index=0)
    teacher = Predictor(build_model(small_config("l2cocc_l")), small_config("l2cocc_l"))
    assert (teacher.needs_image, teacher.needs_points, teacher.needs_right_image) == (False, True, False)
    pred = teacher.predict(FrameWindow(current=lidar_only))
    assert pred.labels.shape == (64, 64, 8) and pred.stamp_ns == 5

    cfg = small_config("l2cocc_d")
    cfg["data"]["stereo_depth"] = {"source": "precomputed"}  # the frame carries its depth map
    student = Predictor(build_model(cfg), cfg)
    assert (student.needs_image, student.needs_points, student.needs_right_image) == (True, False, False)
    calib = scale_calib(default_calib(), (1226, 370), (IMAGE_HW[1], IMAGE_HW[0]))
    camera_only = Frame(stamp_ns=6, image_left=np.zeros((*IMAGE_HW, 3), np.uint8), calib=calib,
                        depth=depth_image(points).numpy(), index=0)
    assert student.sample_cfg()["points"]["source"] == "none"  # the teacher's points are not built
    assert student.predict(FrameWindow(current=camera_only)).labels.shape == (64, 64, 8)
