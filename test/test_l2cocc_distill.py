"""L2COcc-D's distillation through the shared Trainer hook: the four KD terms by name, a frozen teacher that gets no
gradient and does not change, the student's checkpoint without the teacher, and the two ssc-train stages."""

from __future__ import annotations

import pytest
import torch
from l2cocc_scenes import make_batch, make_sample, small_config
from torch.utils.data import Dataset

from ssc_core.cli.train import main as train_main
from ssc_core.config import load_config
from ssc_core.data.label_maps import SEMANTIC_KITTI
from ssc_core.errors import DataFormatError
from ssc_core.inference.predictor import Predictor
from ssc_core.models import build_model
from ssc_core.training.checkpoint import load_checkpoint
from ssc_core.training.distill import DistillationHook, build_terms
from ssc_core.training.trainer import Trainer

TERMS = load_config("l2cocc_d")["distill"]["terms"]
KD_LOSSES = {"loss_distill_logits", "loss_distill_feature_numeric", "loss_distill_feature_relation",
             "loss_distill_weights"}


class Scenes(Dataset):
    """The test scenes as dataset samples."""

    def __init__(self, seeds: list[int]) -> None:
        self.samples = [make_sample(seed) for seed in seeds]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        return self.samples[index]


def test_each_term_is_zero_for_the_teachers_own_outputs_and_positive_for_a_student(one_thread):
    torch.manual_seed(0)
    teacher = build_model(small_config("l2cocc_l")).eval()
    student = build_model(small_config("l2cocc_d")).eval()
    batch = make_batch([0, 1])
    hook = DistillationHook(teacher, build_terms(TERMS))
    with torch.no_grad():
        same = hook.kd_losses(teacher(batch), batch)
        other = hook.kd_losses(student(batch), batch)
    assert set(same) == set(other) == KD_LOSSES
    for key in KD_LOSSES:
        assert abs(float(same[key])) < 1e-5, key
        assert float(other[key]) > 1e-4, key
    other_swin = small_config("l2cocc_l", swin={"out_indices": [1, 2]})  # a teacher whose features do not pair up
    with pytest.raises(DataFormatError, match="student and teacher"):
        DistillationHook(build_model(other_swin).eval(), build_terms(TERMS)).kd_losses(student(batch), batch)


def test_the_student_learns_while_the_teacher_gets_no_gradient_and_stays_unchanged(tmp_path, one_thread):
    torch.manual_seed(0)
    teacher = build_model(small_config("l2cocc_l"))
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    hook = DistillationHook(teacher, build_terms(TERMS))
    cfg = small_config("l2cocc_d")
    cfg["train"].update(epochs=3, lr=2e-2, val_interval=100)
    student = build_model(cfg)
    start = {k: v.clone() for k, v in student.state_dict().items()}
    trainer = Trainer(student, cfg, Scenes([0, 1]), None, work_dir=tmp_path, class_set=SEMANTIC_KITTI,
                      hooks=[hook], progress=False)
    history = trainer.fit()
    assert KD_LOSSES <= set(history[-1]["train"])
    assert history[-1]["train"]["total"] < history[0]["train"]["total"]
    assert not teacher.training and all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())
    assert any(not torch.equal(v, start[k]) for k, v in student.state_dict().items())
    saved = load_checkpoint(tmp_path / "last.pt")
    assert set(saved["model"]) == set(student.state_dict())  # the student alone


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    from ssc_core.data.synthetic import SyntheticOptions, generate_sequence

    root = tmp_path_factory.mktemp("synth")
    generate_sequence(root, sequence="00", frames=6, seed=0, options=SyntheticOptions.small(label_scans=5))
    return root


def test_teacher_then_student_as_two_ssc_train_runs_on_the_synthetic_world(synthetic_root, tmp_path, capsys):
    common = ["--data-root", str(synthetic_root), "--train-sequences", "00", "--val-sequences", "00", "--epochs", "1",
              "--no-progress", "--from-scratch", "--num-threads", "1"]
    assert train_main(["--config", "l2cocc_l_tiny", "--work-dir", str(tmp_path / "l"), *common]) == 0
    teacher = tmp_path / "l" / "best.pt"
    assert train_main(["--config", "l2cocc_d_tiny", "--work-dir", str(tmp_path / "d"), *common]) == 2
    assert "distill.teacher_checkpoint is required" in capsys.readouterr().err
    assert train_main(["--config", "l2cocc_d_tiny", "--work-dir", str(tmp_path / "d"), *common,
                       "--set", f"distill.teacher_checkpoint={teacher}"]) == 0
    history = (tmp_path / "d" / "history.jsonl").read_text()
    assert all(key in history for key in KD_LOSSES) and "loss_depth" in history
    student = load_checkpoint(tmp_path / "d" / "best.pt")
    assert student["config"]["distill"]["teacher_checkpoint"] == str(teacher)  # it names its teacher
    assert not any(k.startswith(("lidar_encoder", "teacher")) for k in student["model"])
    predictor = Predictor.from_checkpoint(tmp_path / "d" / "best.pt")
    assert predictor.inputs == {"image", "image_right"}  # the student reads the camera pair, never the scan
