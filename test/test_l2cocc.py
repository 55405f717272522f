"""L2COcc's three models at a reduced size: shapes, the outputs distillation compares, finite non-zero losses,
gradients, the -C / -D equivalence, overfitting a scene, and checkpoint round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from l2cocc_scenes import GRID, IMAGE_HW, depth_image, make_batch, scene, small_config

from ssc_core.config import load_config
from ssc_core.data.label_maps import SEMANTIC_KITTI
from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.evaluation.metrics import SSCMetrics
from ssc_core.models import build_model, list_models
from ssc_core.training.checkpoint import load_checkpoint, load_model_state, save_checkpoint
from ssc_core.types import GridSpec


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
    camera = ["image_encoder.backbone", "image_encoder.neck", "depth_net", "depth", "evt"]
    parts += ["lidar_encoder"] if name == "l2cocc_l" else camera
    for part in parts:
        grads = [p.grad for n, p in model.named_parameters() if n.startswith(part + ".") and p.requires_grad]
        assert grads and any(g is not None and g.abs().sum() > 0 for g in grads), part
    if name == "l2cocc_c":
        assert out["depth_prob"].shape == (2, 28, 8, 24)
        assert torch.allclose(out["depth_prob"].sum(1), torch.ones(2, 8, 24), atol=1e-4)
        assert 0 < out["proposals"].sum() < out["proposals"].numel() // 4


@pytest.mark.parametrize("name,millions,classes", [
    ("l2cocc_l", 36.186, 20), ("l2cocc_c", 118.959, 20), ("l2cocc_d", 118.959, 20),
    ("l2cocc_l_kitti360", 36.186, 19), ("l2cocc_c_kitti360", 118.959, 19), ("l2cocc_d_kitti360", 118.959, 19),
    ("l2cocc_l_tiny", 0.726, 20), ("l2cocc_c_tiny", 5.606, 20), ("l2cocc_d_tiny", 5.606, 20)])
def test_every_shipped_config_builds_with_the_parameter_count_docs_models_gives(name, millions, classes):
    """The counts of docs/models.md (L2COcc, "Configs"): every parameter, built on the meta device."""
    with torch.device("meta"):
        model = build_model(load_config(name))
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(millions, abs=5e-4)
    assert model.num_classes == classes


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
