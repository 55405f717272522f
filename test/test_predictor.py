"""Predictor: checkpoint -> predict(FrameWindow) -> Prediction, with no dataset involved."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ssc_core.data.label_maps import SEMANTIC_KITTI
from ssc_core.data.semantic_kitti import SequencePaths, read_calib, read_image, read_points
from ssc_core.errors import CheckpointMismatchError, ConfigError, DataFormatError
from ssc_core.geometry.projection import fov_mask, project_points
from ssc_core.inference.predictor import Predictor
from ssc_core.models import register_model
from ssc_core.training.checkpoint import save_checkpoint
from ssc_core.types import Calib, Frame, FrameWindow, GridSpec

C = SEMANTIC_KITTI.num_classes


@register_model("test_fov")
class FovModel(nn.Module):
    """Predicts class 1 (car) for voxels whose centre the current camera sees, else empty; uses K,
    T_cam_velo and image_hw of the batch as every real model must. Counts the points it is given."""

    def __init__(self, cfg: dict) -> None:
        super().__init__()
        self.grid = GridSpec.from_dict(cfg["data"]["grid"])
        self.register_buffer("centres", torch.from_numpy(self.grid.voxel_centers()).double())
        self.scale = nn.Parameter(torch.tensor(float(cfg["model"].get("scale", 3.0))))
        self.seen_points = 0

    def forward(self, batch):
        K, T = batch["K"][:, -1].double(), batch["T_cam_velo"][:, -1].double()
        h, w = (int(v) for v in batch["image_hw"][0])
        cam = torch.einsum("bij,nj->bni", T[:, :3, :3], self.centres) + T[:, None, :3, 3]
        uvw = torch.einsum("bij,bnj->bni", K, cam)
        z = cam[..., 2]
        u, v = uvw[..., 0] / z, uvw[..., 1] / z
        seen = (z > 0) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
        logits = torch.zeros(len(K), C, seen.shape[1], dtype=torch.float32, device=K.device)
        logits[:, 1] = self.scale * seen
        logits[:, 0] = self.scale * ~seen
        if "points" in batch:
            self.seen_points = len(batch["points"])
        return {"ssc_logits": logits.view(len(K), C, *self.grid.dims)}

    def losses(self, outputs, batch):
        return {"loss_ssc": F.cross_entropy(outputs["ssc_logits"], batch["target"], ignore_index=255)}


GRID = {"dims": [16, 16, 4], "voxel_size": 1.6, "origin": [0.0, -12.8, -2.0]}


def _cfg(**data) -> dict:
    return {"model": {"name": "test_fov", "scale": 3.0},
            "data": {"grid": dict(GRID), "image_crop": [96, 320], "history_offsets": [-6, -3],
                     "points": {"source": "none"}, **data}}


def _calib() -> Calib:
    P2 = np.array([[200.0, 0, 160, 10.0], [0, 200.0, 48, 0], [0, 0, 1, 0]])
    Tr = np.array([[0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]], dtype=np.float64)
    return Calib(P2=P2, T_cam0_velo=Tr, P3=P2 - np.array([[0, 0, 0, 108.0], [0] * 4, [0] * 4]))


def _window(n_points: int = 50) -> FrameWindow:
    rng = np.random.default_rng(0)
    frames = []
    for i, x in enumerate((0.0, 1.5, 3.0)):
        pose = np.eye(4)
        pose[0, 3] = x
        frames.append(Frame(stamp_ns=1_000_000_000 + i * 300_000_000,
                            image_left=rng.integers(0, 255, (100, 330, 3), dtype=np.uint8),
                            image_right=rng.integers(0, 255, (100, 330, 3), dtype=np.uint8),
                            calib=_calib(), T_odom_velo=pose,
                            points_velo=rng.normal(size=(n_points, 4)).astype(np.float32), index=10 + 3 * i))
    return FrameWindow.from_frames(frames[-1], frames[:-1])


def test_predict_on_a_window_built_without_a_dataset_gives_labels_and_confidence_on_the_grid():
    cfg = _cfg()
    predictor = Predictor(FovModel(cfg), cfg)
    window = _window()
    pred = predictor.predict(window)
    assert pred.labels.shape == (16, 16, 4) and pred.labels.dtype == np.uint8
    assert pred.confidence.dtype == np.float32 and pred.grid == GridSpec.from_dict(GRID)
    assert pred.stamp_ns == window.current.stamp_ns
    # Independent numpy check: labels are 1 exactly where voxel centres fall in the cropped current image.
    pix, depth = project_points(predictor.grid.voxel_centers(), _calib().K, _calib().T_cam0_velo)
    expected = fov_mask(pix, depth, (96, 320)).reshape(16, 16, 4)
    assert 0 < expected.sum() < expected.size
    np.testing.assert_array_equal(pred.labels, expected.astype(np.uint8))
    p_max = np.exp(3.0) / (np.exp(3.0) + C - 1)  # softmax of [3, 0, ..., 0]
    np.testing.assert_allclose(pred.confidence, p_max, rtol=1e-5)


def test_predictor_reports_what_the_model_needs_from_its_config():
    cfg = _cfg(points={"source": "lidar"}, frame_rate_hz=12.5)
    predictor = Predictor(FovModel(cfg), cfg)
    assert predictor.history_offsets == [-6, -3]
    assert predictor.frame_rate_hz == 12.5
    assert predictor.needs_points and not predictor.needs_right_image
    assert predictor.class_set is SEMANTIC_KITTI
    predictor.predict(_window(n_points=40))
    assert predictor.model.seen_points == 3 * 40  # every frame's scan reaches the model
    stereo = _cfg(points={"source": "stereo_sgbm"})
    stereo_predictor = Predictor(FovModel(stereo), stereo)
    assert stereo_predictor.needs_right_image and not stereo_predictor.needs_points
    # pseudo-points made from the images are the model's input, not a LiDAR stream to drop
    assert stereo_predictor.sample_cfg()["points"]["source"] == "stereo_sgbm"
    assert Predictor(FovModel(_cfg()), _cfg()).frame_rate_hz == 10.0
    with pytest.raises(ConfigError, match="history_offsets"):
        Predictor(FovModel(_cfg()), _cfg(history_offsets=[3]))


def test_from_checkpoint_rebuilds_the_model_and_predicts_identically(tmp_path):
    cfg = _cfg()
    model = FovModel(cfg)
    with torch.no_grad():
        model.scale.fill_(1.7)
    path = save_checkpoint(tmp_path / "best.pt", model, cfg, SEMANTIC_KITTI, GridSpec.from_dict(GRID))
    window = _window()
    direct = Predictor(model, cfg).predict(window)
    loaded = Predictor.from_checkpoint(path)
    assert loaded.model.scale.item() == pytest.approx(1.7)
    again = loaded.predict(window)
    np.testing.assert_array_equal(again.labels, direct.labels)
    np.testing.assert_array_equal(again.confidence, direct.confidence)
    assert loaded.class_set.names == SEMANTIC_KITTI.names
    # A config that only moves where data lives is accepted; one that changes the model is refused.
    moved = _cfg(root="/elsewhere", splits={"valid": ["99"]})
    assert Predictor.from_checkpoint(path, config=moved).cfg["data"]["root"] == "/elsewhere"
    with pytest.raises(CheckpointMismatchError, match="data.image_crop"):
        Predictor.from_checkpoint(path, config=_cfg(image_crop=[64, 320]))


def test_model_output_on_the_wrong_grid_and_malformed_windows_are_data_format_errors():
    cfg = _cfg()
    other = _cfg(grid={**GRID, "dims": [8, 8, 4]})
    predictor = Predictor(FovModel(other), cfg)
    with pytest.raises(DataFormatError, match="ssc_logits of shape"):
        predictor.predict(_window())
    good = Predictor(FovModel(cfg), cfg)
    window = _window()
    window.T_cur_hist = window.T_cur_hist[:1]
    with pytest.raises(DataFormatError, match="T_cur_hist"):
        good.predict(window)


def test_predict_on_the_real_kitti_frame(shared_data):
    paths = SequencePaths.of(shared_data / "kitti_real_frame", "00")
    calib = read_calib(paths.calib)
    frame = Frame(stamp_ns=0, image_left=read_image(paths.image(0)), calib=calib,
                  points_velo=read_points(paths.velodyne(0)), index=0)
    cfg = {"model": {"name": "test_fov"},
           "data": {"grid": GridSpec().to_dict(), "image_crop": [370, 1220], "points": {"source": "lidar"}}}
    predictor = Predictor(FovModel(cfg), cfg)
    pred = predictor.predict(FrameWindow(current=frame))
    assert pred.labels.shape == (256, 256, 32) and pred.labels.dtype == np.uint8
    assert pred.confidence.shape == (256, 256, 32) and pred.confidence.dtype == np.float32
    assert predictor.model.seen_points == len(frame.points_velo)
    seen = pred.labels.astype(bool)
    assert 0.05 < seen.mean() < 0.9  # the camera sees a wedge of the grid ahead of the car


def test_sgn_tiny_checkpoint_predicts_the_real_kitti_frame(shared_data, tmp_path):
    from ssc_core.config import load_config
    from ssc_core.models import build_model

    paths = SequencePaths.of(shared_data / "kitti_real_frame", "00")
    frame = Frame(stamp_ns=123, image_left=read_image(paths.image(0)), calib=read_calib(paths.calib),
                  points_velo=read_points(paths.velodyne(0)), index=0)
    cfg = load_config("sgn_tiny")
    torch.manual_seed(0)
    grid = GridSpec.from_dict(cfg["data"]["grid"])
    save_checkpoint(tmp_path / "sgn_tiny.pt", build_model(cfg), cfg, SEMANTIC_KITTI, grid)
    predictor = Predictor.from_checkpoint(tmp_path / "sgn_tiny.pt")
    assert predictor.needs_points and not predictor.needs_right_image and predictor.history_offsets == []
    pred = predictor.predict(FrameWindow(current=frame))
    assert pred.labels.shape == grid.dims and pred.labels.dtype == np.uint8 and pred.stamp_ns == 123
    assert pred.confidence.dtype == np.float32
    assert np.all(pred.confidence >= 1.0 / C - 1e-6) and np.all(pred.confidence <= 1.0)
    assert pred.labels.max() < C
