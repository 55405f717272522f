"""L2COcc's tiny configs on the synthetic world: the LiDAR teacher, the camera model and the distilled camera
student each overfit one labelled frame of an ``ssc-make-synthetic`` street through the Trainer, reading it with the
data path ``ssc-train`` uses (the teacher the scan alone, the camera models the image pair with SGBM stereo depth
and LiDAR depth targets) and with the distillation hook ``ssc-train`` builds from the config's ``distill:``."""

from __future__ import annotations

import pytest
import torch
from htcl_street import SMALL_GRID
from torch.utils.data import Subset

from ssc_core.config import load_config
from ssc_core.data.datasets import SemanticKittiDataset
from ssc_core.models import build_model
from ssc_core.training.checkpoint import load_checkpoint
from ssc_core.training.distill import build_distillation
from ssc_core.training.trainer import Trainer, seed_everything

EPOCHS = 60
CAMERA_DATA = {"image_crop": [64, 160], "stereo_depth": {"source": "stereo_sgbm", "sgbm": {"num_disparities": 32}}}


def street_config(name: str, **data) -> dict:
    """``name`` (a shipped _tiny config, its one-cycle schedule kept) on the small street's 32 x 32 x 8 grid of
    1.6 m, trained EPOCHS epochs of one frame at a peak rate of 1e-2."""
    cfg = load_config(name, {"data": {"grid": SMALL_GRID, **data}})
    cfg["train"].update(epochs=EPOCHS, lr=1e-2, val_interval=EPOCHS, checkpoint_interval=EPOCHS,
                        log_interval=EPOCHS)
    return cfg


def fit_one_frame(cfg: dict, root, work_dir) -> list[dict]:
    """Train ``cfg`` on labelled frame 5 of the street's sequence 00 and validate on it, with the distillation hook
    of ``cfg['distill']`` when it has one (as ``ssc-train`` builds it); returns the history. The work dir gets
    ``best.pt`` and ``last.pt``."""
    dataset = SemanticKittiDataset(root, sequences=["00"], cfg=cfg["data"])
    frame = Subset(dataset, [1])
    seed_everything(0)
    distillation = build_distillation(cfg, dataset.class_set)
    trainer = Trainer(build_model(cfg), cfg, frame, frame, work_dir=work_dir, device="cpu", progress=False,
                      hooks=[] if distillation is None else [distillation])
    try:
        return trainer.fit()
    finally:
        trainer.close()


@pytest.fixture(scope="module")
def l2cocc_l_teacher(htcl_street, tmp_path_factory) -> tuple[list[dict], str]:
    """``l2cocc_l_tiny`` overfit on the frame once for this module, on one torch thread: (its history, the path of
    its best.pt), the teacher of the -D test."""
    work_dir = tmp_path_factory.mktemp("l2cocc_l_teacher")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        history = fit_one_frame(street_config("l2cocc_l_tiny"), htcl_street, work_dir)
    finally:
        torch.set_num_threads(threads)
    return history, str(work_dir / "best.pt")


@pytest.mark.slow
def test_l2cocc_l_tiny_overfits_a_synthetic_frame(l2cocc_l_teacher):
    """Measured (seed 0, one thread, 60 epochs of one frame): mean total loss 21.7 -> 7.4, completion IoU 0.73,
    mIoU 0.019 on that frame (over all 19 classes, most absent or thinner than the 3.2 m work voxels)."""
    history, _ = l2cocc_l_teacher
    first, last, val = history[0]["train"], history[-1]["train"], history[-1]["val"]
    assert last["total"] < 0.4 * first["total"]
    assert val["iou"] > 0.6 and val["miou"] > 0.01, val


@pytest.mark.slow
def test_l2cocc_c_tiny_overfits_a_synthetic_frame(htcl_street, tmp_path, one_thread):
    """Measured (seed 0, one thread, 60 epochs of one frame): mean total loss 21.6 -> 7.3, completion IoU 0.77,
    mIoU 0.018 on that frame."""
    history = fit_one_frame(street_config("l2cocc_c_tiny", **CAMERA_DATA), htcl_street, tmp_path)
    first, last, val = history[0]["train"], history[-1]["train"], history[-1]["val"]
    assert last["total"] < 0.4 * first["total"]
    assert val["iou"] > 0.6 and val["miou"] > 0.01, val


KD_LOSSES = ("loss_distill_logits", "loss_distill_feature_numeric", "loss_distill_feature_relation",
             "loss_distill_weights")


@pytest.mark.slow
def test_l2cocc_d_tiny_overfits_a_synthetic_frame_distilled_from_the_trained_teacher(
        l2cocc_l_teacher, htcl_street, tmp_path, one_thread):
    """Measured (seed 0, one thread, 60 epochs of one frame at a peak rate of 2e-2, the teacher above): supervised
    loss (3 CE + 0.5 sem_scal + 1.5 geo_scal + 1e-4 depth) 19.5 -> 4.5, the four KD terms (weighted) 10.4 -> 1.3,
    completion IoU 0.74, mIoU 0.020 on that frame. The KD terms slow the supervised fit: at the other tests' 1e-2
    the student still predicts every voxel empty after 60 epochs (IoU 0; 0.73 after 90)."""
    _, teacher = l2cocc_l_teacher
    cfg = street_config("l2cocc_d_tiny", **CAMERA_DATA)
    cfg["train"]["lr"] = 2e-2
    cfg["distill"]["teacher_checkpoint"] = teacher
    history = fit_one_frame(cfg, htcl_street, tmp_path)
    first, last, val = history[0]["train"], history[-1]["train"], history[-1]["val"]
    for epoch in (first, last):
        assert set(KD_LOSSES) <= set(epoch) and all(epoch[k] > 0 for k in KD_LOSSES), epoch

    def supervised(epoch: dict) -> float:
        return epoch["total"] - sum(epoch[k] for k in KD_LOSSES)

    assert supervised(last) < 0.4 * supervised(first)
    assert val["iou"] > 0.6 and val["miou"] > 0.01, val
    student_keys = set(build_model(cfg).state_dict())
    teacher_only = set(load_checkpoint(teacher)["model"]) - student_keys
    assert teacher_only  # the LiDAR encoder
    for name in ("best.pt", "last.pt"):
        saved = load_checkpoint(tmp_path / name)
        assert set(saved["model"]) == student_keys  # the student alone
        assert not teacher_only & set(saved.get("training_model") or {})
