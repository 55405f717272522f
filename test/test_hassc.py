"""HASSC as a training scheme: hard-point selection on a hand-made logit volume, LGA on a hand-made label grid, the
EMA momentum sequence, every loss term finite and non-zero, and on a small SGN: training through the Trainer, an
exported checkpoint that is the base model key for key (identical predictions through the Predictor), the EMA
teacher step by step and exact resume with it; on a small VoxFormer with the release's conv header: the same."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_sgn import IMAGE_HW, K_SMALL, SMALL_GRID, T_CAM_VELO, small_config, synthetic_scene
from torch import nn

from ssc_core.data.downsample import downsample_labels
from ssc_core.data.label_maps import SEMANTIC_KITTI
from ssc_core.data.transforms import collate
from ssc_core.errors import CheckpointMismatchError, ConfigError
from ssc_core.losses import weighted_ce_loss
from ssc_core.losses.hassc import (
    batch_miou,
    distill_kl_loss,
    hard_voxel_loss,
    lga_ce_loss,
    local_geometric_anisotropy,
)
from ssc_core.models import build_model
from ssc_core.training.hassc import HASSC, ema_momentum, hard_point_coords, nearest_points, sample_points
from ssc_core.training.hooks import TrainerHook
from ssc_core.training.schemes import apply_training_schemes
from ssc_core.training.trainer import Trainer, seed_everything
from ssc_core.types import GridSpec


# ------------------------------------------------------------------------------------------ hard voxel mining
def test_hard_points_are_the_smallest_margins_of_each_sample_of_a_hand_made_volume():
    """Sample 0 is hard (top-1 and top-2 logits 0.1 apart) where x < 4, sample 1 where x >= 4; elsewhere the margin
    is 8. Of 3 x 64 candidates the 48 hardest must lie deep in each sample's own hard half (the release's gather,
    written for batch 1, would hand sample 1 the candidates of sample 0), the last 16 are random."""
    logits = torch.zeros(2, 3, 8, 8, 4)
    logits[:, 0] = 8.0
    logits[0, 1, :4], logits[0, 0, :4] = 5.0, 5.1
    logits[1, 2, 4:], logits[1, 0, 4:] = 5.0, 5.1
    torch.manual_seed(0)
    coords = hard_point_coords(logits, points=64, oversample=3, importance=0.75)
    assert coords.shape == (2, 64, 3) and bool(((coords >= 0) & (coords <= 1)).all())
    assert bool((coords[0, :48, 0] < 3.5 / 8).all()) and bool((coords[1, :48, 0] > 4.5 / 8).all())
    # the kept candidates are those with the 48 smallest interpolated margins (ties may come in any order)
    torch.manual_seed(0)
    candidates = torch.rand(2, 192, 3)
    assert all(any(torch.equal(c, cand) for cand in candidates[b]) for b in range(2) for c in coords[b, :48])

    def margins(points: torch.Tensor) -> torch.Tensor:
        top2 = sample_points(logits.topk(2, dim=1).values, points)
        return top2[:, 0] - top2[:, 1]

    torch.testing.assert_close(margins(coords[:, :48]).sort(1).values, margins(candidates).sort(1).values[:, :48])


def test_point_sampling_reads_the_voxel_holding_each_point():
    volume = torch.arange(2 * 4 * 3 * 2, dtype=torch.float32).view(2, 4, 3, 2)  # (B, X, Y, Z)
    coords = torch.tensor([[[0.1, 0.1, 0.1], [0.99, 0.5, 0.8]], [[0.3, 0.7, 0.4], [0.0, 0.0, 0.99]]])
    values = nearest_points(volume, coords)
    assert values.tolist() == [[volume[0, 0, 0, 0].item(), volume[0, 3, 1, 1].item()],
                               [volume[1, 1, 2, 0].item(), volume[1, 0, 0, 1].item()]]
    # trilinear sampling at a voxel centre returns that voxel (channels kept)
    centre = torch.tensor([[[(1 + 0.5) / 4, (2 + 0.5) / 3, (0 + 0.5) / 2]]]).expand(2, 1, 3)
    sampled = sample_points(volume[:, None].expand(2, 2, 4, 3, 2), centre)
    assert sampled.shape == (2, 2, 1) and torch.equal(sampled[:, 0, 0], volume[:, 1, 2, 0])


# ------------------------------------------------------------------------------------------ LGA and losses
def test_lga_counts_differing_face_neighbours_on_a_hand_made_grid():
    labels = torch.zeros(3, 3, 3, dtype=torch.int64)
    labels[1, 1, 1] = 9                   # a road voxel in the middle of empty space
    labels[0, 0, 0] = 255                 # an unknown corner
    lga = local_geometric_anisotropy(labels)
    assert lga.dtype == torch.uint8
    assert lga[1, 1, 1] == 6              # all six neighbours differ
    for neighbour in ((0, 1, 1), (2, 1, 1), (1, 0, 1), (1, 2, 1), (1, 1, 0), (1, 1, 2)):
        assert lga[neighbour] == 1        # only the centre differs
    assert lga[2, 2, 2] == 0 and lga[0, 0, 0] == 0   # a plain corner; the ignored voxel itself
    assert lga[1, 0, 0] == 0              # its neighbour (0, 0, 0) is unknown: not counted
    batched = local_geometric_anisotropy(torch.stack([labels, torch.full_like(labels, 13)]))
    assert torch.equal(batched[0], lga) and int(batched[1].sum()) == 0


def test_loss_lga_completes_the_models_ce_to_the_lga_weighted_ce():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 20, 6, 6, 4, generator=gen)
    target = torch.randint(0, 20, (2, 6, 6, 4), generator=gen)
    target[0, 0] = 255
    weights = torch.rand(20, generator=gen) + 0.5
    lga = local_geometric_anisotropy(target)
    ce = torch.nn.functional.cross_entropy(logits, target.clamp_max(19), weight=weights, reduction="none")
    valid = target != 255
    paper = (ce * (1 + lga.float()))[valid].mean()
    total = weighted_ce_loss(logits, target, weights) + lga_ce_loss(logits, target, lga, weights)
    torch.testing.assert_close(total, paper)


def test_hard_voxel_loss_normalises_by_the_class_weights_of_the_labels():
    logits = torch.zeros(1, 3, 4)  # uniform: CE = ln 3 at every point
    labels = torch.tensor([[0, 2, 255, 2]])
    lga = torch.tensor([[1, 0, 6, 3]])
    weights = torch.tensor([0.5, 1.0, 2.0])
    loss = hard_voxel_loss(logits, labels, lga, weights, alpha=0.2, beta=1.0)
    expected = np.log(3) * ((0.2 + 1) + (0.2 + 0) + (0.2 + 3)) / (0.5 + 2.0 + 2.0)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_batch_miou_and_distillation_kl_on_hand_made_volumes():
    target = torch.tensor([[1, 1, 2, 0, 255], [3, 3, 3, 0, 0]])
    pred = torch.tensor([[1, 2, 2, 0, 7], [3, 3, 0, 0, 0]])
    miou = batch_miou(pred, target, num_classes=4)
    # sample 0: class 1 IoU 1/2, class 2 IoU 1/2, class 3 absent (0); sample 1: class 3 IoU 2/3, 1 and 2 absent
    torch.testing.assert_close(miou, torch.tensor([(0.5 + 0.5) / 3, (2 / 3) / 3]), rtol=1e-4, atol=1e-4)
    logits = torch.randn(2, 4, 5)
    assert torch.equal(distill_kl_loss(logits, logits, target), torch.zeros(2))
    teacher = logits.clone()
    teacher[0, :, 4] += torch.tensor([5.0, 0, 0, 0])  # differs only at the ignored voxel of sample 0
    teacher[1, :, 0] += torch.tensor([0, 0, 0, 5.0])
    kl = distill_kl_loss(logits, teacher, target)
    assert kl[0] == 0 and kl[1] > 0


def test_ema_momentum_sequence():
    assert [ema_momentum(t) for t in (0, 1, 2, 3)] == pytest.approx([0.0, 0.5, 2 / 3, 0.75])
    assert ema_momentum(98) == pytest.approx(0.98989899) and ema_momentum(99) == pytest.approx(0.99)
    assert ema_momentum(5000) == 0.99 and ema_momentum(10, ceiling=0.5) == 0.5


# ------------------------------------------------------------------------------------------ on a small SGN
def sgn_config(**train_extra) -> dict:
    """hassc_sgn_tiny shrunk to the 32 x 32 x 8 test grid (C = 16, ResNet-18), batch 2, a constant learning rate
    after one warm-up step (so a run of fewer epochs follows the same rates as a longer one)."""
    cfg = small_config("hassc_sgn_tiny")
    cfg["train"].update({"epochs": 2, "lr": 2e-3, "warmup_iters": 1, "val_interval": 2, "batch_size": 2,
                         "min_lr_ratio": 1.0})
    cfg["train"]["extra"]["hassc"].update({"points": 128, **train_extra})
    return cfg


class SceneData(torch.utils.data.Dataset):
    """Samples of test_sgn's synthetic scenes on the 32 x 32 x 8 grid, as the data layer makes them."""

    class_set = SEMANTIC_KITTI

    def __init__(self, seeds: list[int]) -> None:
        self.seeds = seeds

    def __len__(self) -> int:
        return len(self.seeds)

    def __getitem__(self, i: int) -> dict:
        grid = GridSpec.from_dict(SMALL_GRID)
        points, labels = synthetic_scene(grid, self.seeds[i])
        gen = torch.Generator().manual_seed(self.seeds[i])
        return {"img": torch.randn(1, 3, *IMAGE_HW, generator=gen), "K": K_SMALL[None].clone(),
                "T_cam_velo": T_CAM_VELO[None].clone(), "image_hw": torch.tensor(IMAGE_HW),
                "points": torch.from_numpy(points), "target": torch.from_numpy(labels),
                "target_1_2": torch.from_numpy(downsample_labels(labels, 2)).long()}


def test_every_hassc_loss_term_is_finite_and_non_zero_and_trains_its_parts(one_thread):
    cfg = sgn_config()
    seed_everything(0)
    wrapper, hooks = apply_training_schemes(build_model(cfg), cfg)
    assert isinstance(wrapper, HASSC) and len(hooks) == 1
    with torch.no_grad():  # a teacher that differs from the student, as after the first EMA updates
        for p in wrapper.teacher.parameters():
            p.add_(0.05 * torch.randn_like(p))
    batch = collate([SceneData([0, 1])[i] for i in range(2)])
    wrapper.train()
    outputs = wrapper(batch)
    assert outputs["hassc_refined"].shape == (2, 20, 128) and outputs["teacher_coords"].shape == (2, 128, 3)
    losses = wrapper.losses(outputs, batch)
    hassc_terms = ("loss_lga", "loss_hvm", "loss_distill", "loss_hvm_teacher")
    assert set(hassc_terms) < set(losses) and "loss_pts" in losses
    for name, value in losses.items():
        assert value.dim() == 0 and torch.isfinite(value) and value.item() > 0, name
    sum(losses.values()).backward()
    assert wrapper.refine.weight.grad.abs().sum() > 0
    assert wrapper.student.ssc_header.classifier.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in wrapper.teacher.parameters())
    wrapper.eval()
    assert set(wrapper(batch)) == set(wrapper.student(batch))  # inference: the student's outputs only


def test_hassc_needs_the_coarse_output_interface_and_known_options():
    with pytest.raises(ConfigError, match="coarse-output interface"):
        HASSC(nn.Linear(2, 2))
    with pytest.raises(ConfigError, match="unknown train.extra.hassc"):
        apply_training_schemes(build_model(sgn_config()), sgn_config(pointz=3))


class Recorder(TrainerHook):
    """Keeps a copy of the student's and the teacher's parameters after every step."""

    def __init__(self, wrapper: HASSC) -> None:
        self.wrapper, self.student, self.teacher = wrapper, [], []

    def after_step(self, trainer, losses):
        self.student.append([p.detach().clone() for p in self.wrapper.student.parameters()])
        self.teacher.append([p.detach().clone() for p in self.wrapper.teacher.parameters()])


def assert_teacher_is_the_ema_of_the_student(initial: list[torch.Tensor], recorder: Recorder) -> None:
    """T0 = S0 (``initial``), then T_t = m_t T_(t-1) + (1 - m_t) S_t with m = 1/2, 2/3, ... after every step."""
    teacher = initial
    for step, (student_t, teacher_t) in enumerate(zip(recorder.student, recorder.teacher), start=1):
        m = ema_momentum(step)
        for t, expected_prev, s in zip(teacher_t, teacher, student_t):
            torch.testing.assert_close(t, m * expected_prev + (1 - m) * s)
        teacher = teacher_t


def assert_export_is_the_base_model(cfg: dict, wrapper: HASSC, work_dir, batch: dict) -> nn.Module:
    """best.pt and last.pt of a HASSC run hold exactly the base model's keys (the teacher and the refinement layer
    only under last.pt's ``training_model``); the Predictor loads best.pt as the base model, whose logits equal the
    trained student's. Returns the Predictor's model."""
    from ssc_core.inference.predictor import Predictor
    from ssc_core.training.checkpoint import load_checkpoint, load_model_state

    base = build_model(cfg)
    for name in ("best.pt", "last.pt"):
        assert set(load_checkpoint(work_dir / name)["model"]) == set(base.state_dict()), name
    assert {k.split(".")[0] for k in load_checkpoint(work_dir / "last.pt")["training_model"]} == {"teacher", "refine"}
    predictor = Predictor.from_checkpoint(work_dir / "best.pt")
    assert type(predictor.model) is type(base)
    assert sum(p.numel() for p in predictor.model.parameters()) == sum(p.numel() for p in base.parameters())
    load_model_state(base, wrapper.student.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(predictor.model(batch)["ssc_logits"], base.eval()(batch)["ssc_logits"],
                                   rtol=0, atol=0)
    return predictor.model


def train_then_resume(short_cfg: dict, cfg: dict, data, work_dir) -> tuple[HASSC, list[TrainerHook], Trainer]:
    """Trains ``short_cfg`` from seed 0 in ``work_dir``, then resumes its last.pt under ``cfg`` (more epochs) and
    trains on. Returns the resumed wrapper, its hooks and its Trainer."""
    seed_everything(0)
    first, hooks = apply_training_schemes(build_model(short_cfg), short_cfg)
    Trainer(first, short_cfg, data, work_dir=work_dir, device="cpu", hooks=hooks, progress=False).fit()
    seed_everything(0)
    resumed, hooks = apply_training_schemes(build_model(cfg), cfg)
    trainer = Trainer(resumed, cfg, data, work_dir=work_dir, device="cpu", hooks=hooks, progress=False)
    trainer.resume(work_dir / "last.pt")
    assert trainer.step == len(data) // cfg["train"]["batch_size"] * short_cfg["train"]["epochs"]
    trainer.fit()
    return resumed, hooks, trainer


@pytest.mark.slow
def test_hassc_on_small_sgn_trains_resumes_exactly_and_exports_the_base_model(tmp_path, one_thread):
    data = SceneData([0, 1])
    cfg = sgn_config()
    cfg["train"].update(epochs=4, val_interval=4)  # validation only after the last step: it draws from the RNG
    seed_everything(0)
    wrapper, hooks = apply_training_schemes(build_model(cfg), cfg)
    initial = [p.detach().clone() for p in wrapper.student.parameters()]
    recorder = Recorder(wrapper)
    straight = Trainer(wrapper, cfg, data, data, work_dir=tmp_path / "a", device="cpu", hooks=[*hooks, recorder],
                       progress=False)
    history = straight.fit()
    assert history[-1]["train"]["total"] < history[0]["train"]["total"]
    assert len(recorder.teacher) == 4
    assert_teacher_is_the_ema_of_the_student(initial, recorder)
    assert_export_is_the_base_model(cfg, wrapper, tmp_path / "a", collate([data[1]]))

    # resume: 3 epochs, then 1 more from last.pt, equals 4 straight (losses and teacher)
    cfg1 = sgn_config()
    cfg1["train"]["epochs"] = 3
    resumed, _, trainer = train_then_resume(cfg1, cfg, data, tmp_path / "b")
    assert trainer.step_losses[-1] == straight.step_losses[-1]
    for a, b in zip(resumed.teacher.parameters(), wrapper.teacher.parameters()):
        assert torch.equal(a, b)

    # a plain SGN run cannot be resumed as a HASSC run: the teacher is missing from its last.pt
    plain_cfg = small_config("sgn_tiny")
    plain_cfg["train"].update({"epochs": 1, "batch_size": 2})
    Trainer(build_model(plain_cfg), plain_cfg, data, work_dir=tmp_path / "c", device="cpu", progress=False).fit()
    with pytest.raises(CheckpointMismatchError, match="training wrapper"):
        Trainer(resumed, cfg, data, work_dir=tmp_path / "d", device="cpu", progress=False).resume(
            tmp_path / "c" / "last.pt")


# ------------------------------------------------------------------------------------------ on a small VoxFormer
class VoxFormerSceneData(torch.utils.data.Dataset):
    """Uncollated samples of test_voxformer's batches (sweep occupancy = the scene's voxelised points)."""

    class_set = SEMANTIC_KITTI

    def __init__(self, cfg: dict, seeds: list[int]) -> None:
        self.cfg, self.seeds = cfg, seeds

    def __len__(self) -> int:
        return len(self.seeds)

    def __getitem__(self, i: int) -> dict:
        from test_voxformer import make_batch

        return {k: v[0] for k, v in make_batch(self.cfg, 1, seeds=[self.seeds[i]]).items()}


def voxformer_config(epochs: int) -> dict:
    """hassc_voxformer_tiny shrunk to the 32 x 32 x 8 test grid (C = 16, ResNet-18), batch 1, a constant learning
    rate after one warm-up step (so a shorter run follows the same rates as a longer one), 64 points per sample."""
    from test_voxformer import TINY

    cfg = small_config("hassc_voxformer_tiny", **{**TINY, "conv_header_hidden": 16})
    cfg["train"].update({"epochs": epochs, "lr": 5e-3, "warmup_iters": 1, "val_interval": 3, "min_lr_ratio": 1.0})
    cfg["train"]["extra"]["hassc"]["points"] = 64
    return cfg


@pytest.mark.slow
def test_hassc_on_small_voxformer_trains_resumes_exactly_and_exports_the_base_model(tmp_path, one_thread):
    """hassc_voxformer_tiny (the release's conv header) at the 32 x 32 x 8 test grid: every HASSC term trains the
    VoxFormer through its coarse-output interface, the teacher is the EMA of the student step by step, 2 epochs +
    resume equals 3 (losses, teacher, refinement layer, EMA step and momentum), and the exported checkpoint is the
    base VoxFormer key for key."""
    from ssc_core.models.blocks.heads import ConvHeader
    from ssc_core.models.voxformer import VoxFormer

    cfg = voxformer_config(epochs=3)  # validation only after the last step (val_interval 3): it draws from the RNG
    data = VoxFormerSceneData(cfg, [0, 1])
    seed_everything(0)
    wrapper, hooks = apply_training_schemes(build_model(cfg), cfg)
    assert isinstance(wrapper, HASSC) and isinstance(wrapper.student, VoxFormer)
    assert isinstance(wrapper.student.ssc_header, ConvHeader)
    initial = [p.detach().clone() for p in wrapper.student.parameters()]
    recorder = Recorder(wrapper)
    trainer = Trainer(wrapper, cfg, data, data, work_dir=tmp_path / "a", device="cpu", hooks=[*hooks, recorder],
                      progress=False)
    history = trainer.fit()
    for name in ("loss_lga", "loss_hvm", "loss_distill", "loss_hvm_teacher", "loss_qpn", "loss_ssc"):
        assert all(np.isfinite(h["train"][name]) and h["train"][name] > 0 for h in history), name
    # measured (seed 0, one thread): total 16.5 -> 12.9, loss_ssc 1.43 -> 1.25, loss_hvm 2.61 -> 1.34
    for name in ("total", "loss_ssc", "loss_hvm"):
        assert history[-1]["train"][name] < history[0]["train"][name], name
    assert len(recorder.teacher) == trainer.step == 6
    assert_teacher_is_the_ema_of_the_student(initial, recorder)
    assert type(assert_export_is_the_base_model(cfg, wrapper, tmp_path / "a", collate([data[1]]))) is VoxFormer

    # resume: 2 epochs, then 1 more from last.pt, equals 3 straight
    resumed, resumed_hooks, again = train_then_resume(voxformer_config(epochs=2), cfg, data, tmp_path / "b")
    assert again.step == trainer.step
    assert resumed_hooks[0].last_momentum == hooks[0].last_momentum == ema_momentum(6)
    assert again.step_losses[-1] == trainer.step_losses[-1]
    for part in ("teacher", "refine"):
        for a, b in zip(getattr(resumed, part).parameters(), getattr(wrapper, part).parameters()):
            assert torch.equal(a, b), part
