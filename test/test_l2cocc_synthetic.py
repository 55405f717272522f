"""L2COcc's tiny configs on the synthetic world: the LiDAR teacher and the camera model each overfit one labelled
frame of an ``ssc-make-synthetic`` street through the Trainer, reading it with the data path ``ssc-train`` uses
(the teacher the scan alone, the camera model the image pair with SGBM stereo depth and LiDAR depth targets)."""

from __future__ import annotations

import pytest
from htcl_street import SMALL_GRID
from torch.utils.data import Subset

from ssc_core.config import load_config
from ssc_core.data.datasets import SemanticKittiDataset
from ssc_core.models import build_model
from ssc_core.training.trainer import Trainer, seed_everything

EPOCHS = 60


def street_config(name: str, **data) -> dict:
    """``name`` (a shipped _tiny config, its one-cycle schedule kept) on the small street's 32 x 32 x 8 grid of
    1.6 m, trained EPOCHS epochs of one frame at a peak rate of 1e-2."""
    cfg = load_config(name, {"data": {"grid": SMALL_GRID, **data}})
    cfg["train"].update(epochs=EPOCHS, lr=1e-2, val_interval=EPOCHS, checkpoint_interval=EPOCHS,
                        log_interval=EPOCHS)
    return cfg


def fit_one_frame(cfg: dict, root, work_dir) -> list[dict]:
    """Train ``cfg`` on labelled frame 5 of the street's sequence 00 and validate on it; returns the history."""
    dataset = SemanticKittiDataset(root, sequences=["00"], cfg=cfg["data"])
    frame = Subset(dataset, [1])
    seed_everything(0)
    trainer = Trainer(build_model(cfg), cfg, frame, frame, work_dir=work_dir, device="cpu", progress=False)
    try:
        return trainer.fit()
    finally:
        trainer.close()


@pytest.mark.slow
def test_l2cocc_l_tiny_overfits_a_synthetic_frame(htcl_street, tmp_path, one_thread):
    """Measured (seed 0, one thread, 60 epochs of one frame): mean total loss 21.7 -> 7.4, completion IoU 0.73,
    mIoU 0.019 on that frame (over all 19 classes, most absent or thinner than the 3.2 m work voxels)."""
    history = fit_one_frame(street_config("l2cocc_l_tiny"), htcl_street, tmp_path)
    first, last, val = history[0]["train"], history[-1]["train"], history[-1]["val"]
    assert last["total"] < 0.4 * first["total"]
    assert val["iou"] > 0.6 and val["miou"] > 0.01, val


@pytest.mark.slow
def test_l2cocc_c_tiny_overfits_a_synthetic_frame(htcl_street, tmp_path, one_thread):
    """Measured (seed 0, one thread, 60 epochs of one frame): mean total loss 21.6 -> 7.3, completion IoU 0.77,
    mIoU 0.018 on that frame."""
    cfg = street_config("l2cocc_c_tiny", image_crop=[64, 160], stereo_depth={"source": "stereo_sgbm",
                                                                            "sgbm": {"num_disparities": 32}})
    history = fit_one_frame(cfg, htcl_street, tmp_path)
    first, last, val = history[0]["train"], history[-1]["train"], history[-1]["val"]
    assert last["total"] < 0.4 * first["total"]
    assert val["iou"] > 0.6 and val["miou"] > 0.01, val
