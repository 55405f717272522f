"""CleanerS: the VoxelSSC network, its losses, the KD terms, the distillation hook, training and checkpoints.

Training tests use in-memory synthetic rooms on a coarse grid (24 x 12 x 24 voxels of 0.2 m) so that a step costs
about 0.25 s of CPU; the NYU-grid path through the files is exercised by the ssc-train test at the end.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from ssc_core.cli.train import main as train_main
from ssc_core.config import load_config
from ssc_core.data.nyu import NYU
from ssc_core.data.rgbd import rgbd_sample
from ssc_core.data.synthetic.indoor import IndoorOptions, make_indoor_frame
from ssc_core.data.transforms import collate
from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.geometry.tsdf import depth_volume
from ssc_core.inference.predictor import Predictor
from ssc_core.losses.distill import class_centre_kd_losses, feature_mse_loss
from ssc_core.models import build_model
from ssc_core.training.checkpoint import load_checkpoint, save_checkpoint
from ssc_core.training.distill import DistillationHook, build_distillation, build_terms, load_teacher
from ssc_core.training.trainer import Trainer
from ssc_core.types import GridSpec

COARSE = {"data": {"grid": {"dims": [24, 12, 24], "voxel_size": 0.2}, "image_size": [120, 160], "augment": False},
          "model": {"feature": 16, "tsdf_stem": [4, 8]}}
TERMS = [{"name": "kd_t", "kind": "feature_mse", "key": "tsdf_feat", "weight": 0.25},
         {"name": "kd_s", "kind": "class_centre_kd", "temperature": 1.0, "weight": 0.25}]


class Rooms(Dataset):
    """Samples of in-memory synthetic rooms, scored with the SSCNet protocol."""

    class_set = NYU
    eval_protocol = "sscnet"

    def __init__(self, samples: list[dict]) -> None:
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        return self.samples[index]


def coarse_cfg(**sections) -> dict:
    overrides = {k: dict(v) for k, v in COARSE.items()}
    for key, value in sections.items():
        overrides[key] = {**overrides.get(key, {}), **value}
    return load_config("cleaners_teacher_tiny", overrides)


@pytest.fixture(scope="module")
def room_samples() -> list[dict]:
    """Room 1 of seed 5 on the coarse grid, seen at 160 x 120 (every 4th pixel, intrinsics / 4): the noisy TSDF
    as tsdf, TSDF-CAD as tsdf_cad, the noisy depth's mapping and label weight."""
    frame = make_indoor_frame(5, 1, IndoorOptions(subdivision=1, grid_dims=(24, 12, 24), voxel_size=0.2))
    K = frame.K / np.array([[4.0], [4.0], [1.0]])
    noisy = depth_volume(frame.depth[::4, ::4], K, frame.T_room_cam, frame.grid, 2)
    clean = depth_volume(frame.depth_clean[::4, ::4], K, frame.T_room_cam, frame.grid, 2)
    sample = rgbd_sample(frame.rgb[::4, ::4], noisy.mapping, noisy.tsdf, COARSE["data"])
    sample["tsdf_cad"] = torch.from_numpy(clean.tsdf)[None]
    sample["target"] = torch.from_numpy(frame.labels.astype(np.int64))
    sample["label_weight"] = torch.from_numpy(noisy.label_weight * (frame.labels != 255))
    return [sample]


def present_class_miou(metrics: dict, sample: dict) -> float:
    """Mean SSC IoU over the classes with at least 5 evaluated voxels in the room."""
    used = sample["label_weight"] > 0
    classes = [c for c in range(1, 12) if int(((sample["target"] == c) & used).sum()) >= 5]
    return float(np.mean([metrics["iou_per_class"][c] for c in classes]))


def test_forward_shapes_frozen_encoder_and_eval_determinism(room_samples):
    model = build_model(coarse_cfg())
    batch = collate(room_samples)
    out = model.train()(batch)
    assert out["ssc_logits"].shape == (1, 12, 24, 12, 24) and out["tsdf_feat"].shape == (1, 16, 24, 12, 24)
    assert out["logits_2d"].shape == (1, 12, 120, 160)
    assert not any(p.requires_grad for p in model.encoder.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    model.eval()
    with torch.no_grad():
        a, b = model(batch)["ssc_logits"], model(batch)["ssc_logits"]
    assert torch.equal(a, b)


def test_training_flips_are_undone_on_the_logits(room_samples):
    """With a flip-equivariant completion (identity + 1x1x1 classifier), logits with the random training flips equal
    the unflipped ones: the model flips the fused volume and flips the logits back."""
    torch.manual_seed(0)
    model = build_model(coarse_cfg()).eval()
    model.completion = nn.Identity()
    model.classifier = nn.Conv3d(16, 12, 1)
    batch = collate(room_samples)
    with torch.no_grad():
        reference = model(batch)["ssc_logits"]
        model.training = True  # the flag the flips read; children stay in eval (BN, dropout fixed)
        for _ in range(4):
            torch.testing.assert_close(model(batch)["ssc_logits"], reference)


def test_losses_cover_weighted_voxels_and_mapped_pixels(room_samples):
    model = build_model(coarse_cfg()).eval()
    batch = collate(room_samples)
    with torch.no_grad():
        out = model(batch)
        losses = model.losses(out, batch)
    target, weight = batch["target"], batch["label_weight"]
    used = (weight > 0) & (target != 255)
    expected = F.cross_entropy(out["ssc_logits"].movedim(1, -1)[used], target[used], label_smoothing=0.2)
    torch.testing.assert_close(losses["loss_ssc"], expected)
    pixels = batch["mapping2d"] >= 0
    pixel_target = target.flatten(1)[0, batch["mapping2d"][pixels]]
    expected_2d = F.cross_entropy(out["logits_2d"].movedim(1, -1)[pixels], pixel_target, ignore_index=255,
                                  label_smoothing=0.2)
    torch.testing.assert_close(losses["loss_ssc_2d"], 0.25 * expected_2d)
    changed = dict(out, ssc_logits=out["ssc_logits"] + 5.0 * (~used)[:, None].float())
    torch.testing.assert_close(model.losses(changed, batch)["loss_ssc"], expected)  # free voxels do not count


def test_kd_terms_are_zero_when_student_equals_teacher_and_match_the_formulas():
    torch.manual_seed(0)
    logits = torch.randn(2, 12, 4, 3, 4)
    target = torch.randint(0, 4, (2, 4, 3, 4))
    weight = (torch.rand(2, 4, 3, 4) > 0.3).float()
    assert feature_mse_loss(logits, logits) == 0
    sc, sa = class_centre_kd_losses(logits, logits.clone(), target, weight)
    assert abs(float(sc)) < 1e-6 and float(sa) == 0
    other = logits + torch.randn_like(logits)
    sc, sa = class_centre_kd_losses(other, logits, target, weight)
    # by hand for sample 0: centres of classes 1..3 over the weighted voxels, KL(teacher || student), cosine MSE
    used = weight[0].flatten() > 0
    ys, yt, lab = other[0].flatten(1).t()[used], logits[0].flatten(1).t()[used], target[0].flatten()[used]
    classes = [c for c in (1, 2, 3) if (lab == c).any()]
    cs = torch.stack([ys[lab == c].mean(0) for c in classes])
    ct = torch.stack([yt[lab == c].mean(0) for c in classes])
    kl0 = F.kl_div(F.log_softmax(cs, 1), F.softmax(ct, 1), reduction="none").sum(1).mean()
    sa0 = ((F.cosine_similarity(yt[:, None], ct[None], dim=-1) - F.cosine_similarity(ys[:, None], cs[None], dim=-1))
           ** 2).mean()
    used1 = weight[1].flatten() > 0
    ys1, yt1, lab1 = other[1].flatten(1).t()[used1], logits[1].flatten(1).t()[used1], target[1].flatten()[used1]
    classes1 = [c for c in (1, 2, 3) if (lab1 == c).any()]
    cs1 = torch.stack([ys1[lab1 == c].mean(0) for c in classes1])
    ct1 = torch.stack([yt1[lab1 == c].mean(0) for c in classes1])
    kl1 = F.kl_div(F.log_softmax(cs1, 1), F.softmax(ct1, 1), reduction="none").sum(1).mean()
    sa1 = ((F.cosine_similarity(yt1[:, None], ct1[None], dim=-1)
            - F.cosine_similarity(ys1[:, None], cs1[None], dim=-1)) ** 2).mean()
    torch.testing.assert_close(sc, (kl0 + kl1) / 2)
    torch.testing.assert_close(sa, (sa0 + sa1) / 2)


def test_distillation_hook_keeps_the_teacher_frozen_and_out_of_the_student(room_samples, tmp_path):
    cfg = coarse_cfg()
    torch.manual_seed(0)
    teacher = build_model(cfg)
    student = build_model(cfg)
    student.load_state_dict(teacher.state_dict())
    seen = {}
    teacher.register_forward_pre_hook(lambda module, args: seen.update(tsdf=args[0]["tsdf"]))
    hook = DistillationHook(teacher, build_terms(TERMS), {"tsdf": "tsdf_cad"})
    batch = collate(room_samples)
    student.eval()  # same weights and mode: every KD term is zero
    with torch.no_grad():
        losses = hook.after_losses(None, student(dict(batch, tsdf=batch["tsdf_cad"])), batch, {"loss_ssc": 0})
    assert torch.equal(seen["tsdf"], batch["tsdf_cad"])
    assert set(losses) == {"loss_ssc", "loss_kd_t", "loss_kd_sc", "loss_kd_sa"}
    assert all(abs(float(losses[k])) < 1e-6 for k in ("loss_kd_t", "loss_kd_sc", "loss_kd_sa"))
    student.train()
    out = student(batch)
    kd = hook.kd_losses(out, batch)
    sum(kd.values()).backward()
    assert all(p.grad is None for p in teacher.parameters()) and not teacher.training
    assert any(p.grad is not None for p in student.parameters())
    assert float(kd["loss_kd_t"]) > 0
    with pytest.raises(DataFormatError, match="load_tsdf_cad"):
        hook.teacher_batch({k: v for k, v in batch.items() if k != "tsdf_cad"})


def test_distillation_config_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        build_distillation({"distill": {"teacher_checkpoint": str(tmp_path / "none.pt"), "terms": TERMS}})
    with pytest.raises(ConfigError, match="kind among"):
        build_terms([{"name": "x", "kind": "nope"}])
    with pytest.raises(ConfigError, match="unknown distill keys"):
        build_distillation({"distill": {"teacher": "x"}})


def train(cfg: dict, samples: list[dict], work_dir, hooks=()) -> Trainer:
    trainer = Trainer(build_model(cfg), cfg, Rooms(samples), Rooms(samples), work_dir=work_dir, class_set=NYU,
                      hooks=hooks, progress=False)
    trainer.fit()
    return trainer


@pytest.mark.slow
def test_tiny_teacher_and_distilled_student_overfit_a_room(room_samples, tmp_path):
    """One room (coarse grid, 160 x 120 view): the teacher on TSDF-CAD (150 steps), then a student on the noisy
    TSDF distilled from it (100 steps). Measured (seed 0): teacher SC IoU 0.XX, SSC mIoU of the room's classes
    0.XX; student 0.XX / 0.XX; about 55 s of CPU."""
    teacher_cfg = coarse_cfg(train={"epochs": 150, "lr": 2.0e-2, "val_interval": 1000, "seed": 0})
    teacher_samples = [dict(s, tsdf=s["tsdf_cad"]) for s in room_samples]
    teacher_run = train(teacher_cfg, teacher_samples, tmp_path / "teacher")
    losses = [h["train"]["total"] for h in teacher_run.history]
    assert losses[-1] < 0.6 * losses[0]
    metrics = teacher_run.validate()
    print("teacher", metrics["iou"], present_class_miou(metrics, room_samples[0]))
    assert metrics["protocol"].startswith("SSCNet")

    teacher, _ = load_teacher(tmp_path / "teacher" / "last.pt", NYU)
    hook = DistillationHook(teacher, build_terms(TERMS), {"tsdf": "tsdf_cad"})
    student_cfg = coarse_cfg(train={"epochs": 100, "lr": 2.0e-2, "val_interval": 1000, "seed": 0})
    student_run = train(student_cfg, room_samples, tmp_path / "student", hooks=[hook])
    kd = [h["train"]["loss_kd_t"] for h in student_run.history]
    assert kd[-1] < kd[0]
    metrics = student_run.validate()
    print("student", metrics["iou"], present_class_miou(metrics, room_samples[0]))
    saved = load_checkpoint(tmp_path / "student" / "last.pt")
    assert set(saved["model"]) == set(student_run.core_model.state_dict())  # the student only, no teacher


def test_checkpoint_round_trip_gives_the_same_logits(room_samples, tmp_path):
    cfg = coarse_cfg()
    model = build_model(cfg).eval()
    save_checkpoint(tmp_path / "m.pt", model, cfg, NYU, GridSpec.from_dict(cfg["data"]["grid"]))
    predictor = Predictor.from_checkpoint(tmp_path / "m.pt")
    batch = collate(room_samples)
    with torch.no_grad():
        torch.testing.assert_close(predictor.model(batch)["ssc_logits"], model(batch)["ssc_logits"])
    assert predictor.class_set.names == NYU.names


def test_ssc_train_trains_teacher_then_student_on_synthetic_nyu_files(synthetic_nyu_root, tmp_path, capsys):
    common = ["--data-root", str(synthetic_nyu_root), "--epochs", "1", "--no-progress", "--from-scratch",
              "--num-threads", "1", "--set", "train.val_interval=1"]
    assert train_main(["--config", "cleaners_teacher_tiny", "--work-dir", str(tmp_path / "t"), *common]) == 0
    teacher = tmp_path / "t" / "best.pt"
    assert train_main(["--config", "cleaners_student_tiny", "--work-dir", str(tmp_path / "s"), *common,
                       "--set", f"distill.teacher_checkpoint={teacher}"]) == 0
    out = capsys.readouterr().out
    assert "SSCNet" in out  # the summary names the protocol
    history = (tmp_path / "s" / "history.jsonl").read_text()
    assert "loss_kd_t" in history and "loss_kd_sc" in history
    student = load_checkpoint(tmp_path / "s" / "best.pt")
    assert student["config"]["distill"]["teacher_checkpoint"] == str(teacher)  # it names its teacher
    assert train_main(["--config", "cleaners_student_tiny", "--work-dir", str(tmp_path / "x"), *common,
                       "--set", f"distill.teacher_checkpoint={tmp_path / 'none.pt'}"]) == 2
