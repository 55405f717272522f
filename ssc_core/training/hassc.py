"""HASSC as a training scheme for any model with the coarse-output interface (docs/models.md): hard-voxel mining
with a training-only point refinement layer, LGA weighting and an EMA self-teacher (Wang et al., CVPR 2024).

``HASSC(model, options)`` wraps the model for training only. Its forward in training mode runs

1. the student (the wrapped model): ``ssc_logits`` and, through ``model.coarse_outputs``, the logits and voxel
   features at the work grid;
2. global hardness and dynamic selection (``hard_point_coords``): ``oversample * points`` uniform random points;
   hardness 1 / (top-1 - top-2) of the coarse logits (sorted over classes, then trilinearly interpolated); the
   ``importance * points`` hardest, plus fresh random points up to ``points``; per sample, without gradient;
3. the refinement layer (a Conv1d over [coarse logits, voxel features] trilinearly sampled at those points);
4. the teacher (an EMA copy of the model, no gradient, in the same train/eval mode as the student) on the same
   batch, and its own hard points.

``losses`` adds to the model's own terms: ``loss_lga`` (the LGA part of the main CE, so that with the model's
plain-mean ``loss_ssc`` the sum is mean(w * CE * (1 + LGA))), ``loss_hvm`` (refined points), ``loss_distill``
(KL to the teacher times ``distill_weight * exp(teacher batch mIoU)``) and ``loss_hvm_teacher`` (the student's
full-resolution logits at the teacher's points, times ``teacher_hvm_weight``): the complete loss of the paper.

The teacher follows the student by EMA after every optimizer step (``EMATeacherHook``), with momentum
m = min(1 - 1 / (t + 1), ``momentum``) for the update that precedes forward pass t: the release updates at the
start of iteration t, which is the same teacher. Only parameters are averaged (as in the release).

For inference nothing changes: ``inference_model`` is the wrapped model, which the Trainer validates and saves in
``best.pt`` / ``last.pt`` under ``model`` (exactly the base model's keys); the teacher and the refinement layer
travel in ``last.pt`` under ``training_model`` so a run resumes exactly.
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from ssc_core.config import reject_unknown_keys
from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.losses.hassc import (
    batch_miou,
    distill_kl_loss,
    hard_voxel_loss,
    lga_ce_loss,
    local_geometric_anisotropy,
)
from ssc_core.training.hooks import TrainerHook

if TYPE_CHECKING:
    from ssc_core.training.trainer import Trainer

HASSC_DEFAULTS: dict[str, float] = {
    "points": 4096,            # N: points per sample
    "oversample": 3,           # t: t * N random candidates
    "importance": 0.75,        # omega: the omega * N hardest candidates are kept, the rest is fresh random points
    "alpha": 0.2,              # local hardness of a point = alpha + beta * LGA
    "beta": 1.0,
    "lga_weight": 1.0,         # weight of loss_lga (1: the paper's (1 + LGA) weighting of the main CE)
    "hvm_weight": 1.0,         # weight of loss_hvm
    "distill_weight": 48.0,    # lambda: loss_distill = lambda * exp(teacher mIoU) * KL
    "teacher_hvm_weight": 0.1,  # delta
    "temperature": 1.0,        # KL temperature
    "momentum": 0.99,          # the EMA momentum's ceiling
}
INTERFACE = ("coarse_outputs", "num_classes", "class_weights", "voxel_feature_channels")


def sample_points(volume: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Trilinear samples of a (B, C, X, Y, Z) volume at normalised points (B, N, 3) = (x, y, z) in [0, 1]
    (``align_corners=False``: 0 and 1 are the outer faces of the grid). Returns (B, C, N); differentiable in the
    volume."""
    grid = (2 * coords - 1).flip(-1)[:, :, None, None, :].to(volume.dtype)  # (x, y, z) -> grid_sample's (W, H, D)
    return F.grid_sample(volume, grid, mode="bilinear", align_corners=False)[:, :, :, 0, 0]


def nearest_points(volume: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """The voxels of (B, ..., X, Y, Z) holding the normalised points (B, N, 3): (B, ..., N) (any dtype; gradients
    flow to the gathered values)."""
    dims = torch.tensor(volume.shape[-3:], device=coords.device)
    index = torch.minimum((coords * dims).long().clamp(min=0), dims - 1)
    flat = (index[..., 0] * dims[1] + index[..., 1]) * dims[2] + index[..., 2]  # (B, N)
    values = volume.flatten(-3)
    return torch.gather(values, -1, flat.view(flat.shape[0], *([1] * (values.dim() - 2)), -1)
                        .expand(*values.shape[:-1], -1))


@torch.no_grad()
def hard_point_coords(coarse_logits: torch.Tensor, points: int = 4096, oversample: int = 3,
                      importance: float = 0.75) -> torch.Tensor:
    """HASSC's global-hardness point selection on (B, K, X, Y, Z) logits. Returns (B, points, 3) normalised
    (x, y, z): per sample the int(importance * points) hardest of oversample * points uniform candidates (hardness
    1 / (z_(1) - z_(2)), the interpolated margin of the class-sorted logits), then uniform random points. Each
    sample picks among its own candidates (the release's gather assumes batch 1)."""
    b = coarse_logits.shape[0]
    device = coarse_logits.device
    top2 = coarse_logits.float().topk(2, dim=1).values  # sorted descending, as the release sorts before sampling
    candidates = torch.rand(b, oversample * points, 3, device=device)
    sampled = sample_points(top2, candidates)  # (B, 2, tN)
    margin = sampled[:, 0] - sampled[:, 1]  # hardness = 1 / margin: the hardest have the smallest margin
    keep = int(importance * points)
    index = (-margin).topk(keep, dim=1).indices
    hardest = torch.gather(candidates, 1, index[..., None].expand(-1, -1, 3))
    return torch.cat([hardest, torch.rand(b, points - keep, 3, device=device)], dim=1)


def ema_momentum(step: int, ceiling: float = 0.99) -> float:
    """The teacher momentum before forward pass ``step`` (0-based): min(1 - 1 / (step + 1), ceiling)."""
    return min(1.0 - 1.0 / (step + 1), ceiling)


class HASSC(nn.Module):
    """The training wrapper (see the module docstring). model: a registered model with the coarse-output
    interface; options: ``train.extra.hassc`` (keys and defaults in HASSC_DEFAULTS)."""

    def __init__(self, model: nn.Module, options: dict[str, Any] | None = None) -> None:
        super().__init__()
        missing = [name for name in INTERFACE if not hasattr(model, name)]
        if missing:
            raise ConfigError(f"HASSC needs a model with the coarse-output interface (docs/models.md); "
                              f"{type(model).__name__} lacks {missing}")
        reject_unknown_keys(options or {}, HASSC_DEFAULTS, "train.extra.hassc")
        self.options = {**HASSC_DEFAULTS, **{k: float(v) for k, v in (options or {}).items()}}
        if not 0 < self.options["importance"] <= 1 or self.options["points"] < 1 or self.options["oversample"] < 1:
            raise ConfigError(f"train.extra.hassc: need points >= 1, oversample >= 1, 0 < importance <= 1, got "
                              f"{self.options}")
        self.student = model
        self.refine = nn.Conv1d(model.num_classes + model.voxel_feature_channels, model.num_classes, 1)
        self.teacher = copy.deepcopy(model)
        for param in self.teacher.parameters():
            param.requires_grad_(False)

    @property
    def inference_model(self) -> nn.Module:
        """The model that is deployed: the student, without teacher and refinement layer."""
        return self.student

    def _hard_points(self, coarse: torch.Tensor) -> torch.Tensor:
        o = self.options
        return hard_point_coords(coarse, int(o["points"]), int(o["oversample"]), o["importance"])

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        outputs = self.student(batch)
        if not self.training:
            return outputs
        coarse, features = self.student.coarse_outputs(outputs)
        coords = self._hard_points(coarse.detach())
        sampled = torch.cat([sample_points(coarse, coords), sample_points(features, coords)], dim=1)
        with torch.no_grad():
            teacher_out = self.teacher(batch)
            teacher_coarse, _ = self.teacher.coarse_outputs(teacher_out)
            teacher_coords = self._hard_points(teacher_coarse)
        return {**outputs, "hassc_coords": coords, "hassc_refined": self.refine(sampled.to(self.refine.weight.dtype)),
                "teacher_ssc_logits": teacher_out["ssc_logits"], "teacher_coords": teacher_coords}

    def losses(self, outputs: dict, batch: dict) -> dict[str, torch.Tensor]:
        """The model's own loss terms plus loss_lga, loss_hvm, loss_distill and loss_hvm_teacher (each times its
        weight; a weight of 0 drops the term). LGA comes from batch['lga'] when the data layer reads it from
        files, else from the labels."""
        losses = dict(self.student.losses(outputs, batch))
        if "hassc_refined" not in outputs:
            raise DataFormatError("HASSC losses need a training-mode forward of the HASSC wrapper")
        o = self.options
        target = batch["target"].long()
        lga = batch["lga"].long() if "lga" in batch else local_geometric_anisotropy(target).long()
        logits = outputs["ssc_logits"]
        weights = self.student.class_weights
        coords, teacher_coords = outputs["hassc_coords"], outputs["teacher_coords"]
        terms = {
            "lga": (o["lga_weight"], lambda: lga_ce_loss(logits, target, lga, weights)),
            "hvm": (o["hvm_weight"], lambda: hard_voxel_loss(
                outputs["hassc_refined"], nearest_points(target, coords), nearest_points(lga, coords), weights,
                o["alpha"], o["beta"])),
            "distill": (o["distill_weight"], lambda: (
                torch.exp(batch_miou(outputs["teacher_ssc_logits"].argmax(1), target, logits.shape[1]))
                * distill_kl_loss(logits, outputs["teacher_ssc_logits"], target, o["temperature"])).mean()),
            "hvm_teacher": (o["teacher_hvm_weight"], lambda: hard_voxel_loss(
                nearest_points(logits, teacher_coords), nearest_points(target, teacher_coords),
                nearest_points(lga, teacher_coords), weights, o["alpha"], o["beta"])),
        }
        for name, (weight, term) in terms.items():
            if weight != 0:
                losses[f"loss_{name}"] = weight * term()
        return losses

    @torch.no_grad()
    def update_teacher(self, step: int) -> float:
        """EMA of the student's parameters into the teacher before forward pass ``step``; returns the momentum."""
        m = ema_momentum(step, self.options["momentum"])
        for teacher, student in zip(self.teacher.parameters(), self.student.parameters()):
            teacher.mul_(m).add_(student.detach(), alpha=1.0 - m)
        return m


class EMATeacherHook(TrainerHook):
    """Moves the HASSC teacher towards the student after every optimizer step (``HASSC.update_teacher`` for the
    next forward pass, ``trainer.step``). Its state lives in the wrapper, which the Trainer checkpoints."""

    def __init__(self, wrapper: HASSC) -> None:
        self.wrapper = wrapper
        self.last_momentum = math.nan

    def after_step(self, trainer: Trainer, losses: dict[str, float]) -> None:
        self.last_momentum = self.wrapper.update_teacher(trainer.step)
        if trainer.writer is not None and trainer.step % trainer.settings.log_interval == 0:
            trainer.writer.add_scalar("train/hassc_momentum", self.last_momentum, trainer.step)


def build_hassc(model: nn.Module, options: dict[str, Any] | None) -> tuple[nn.Module, list[TrainerHook]]:
    """The HASSC wrapper of ``model`` and the hook that keeps its teacher up to date."""
    wrapper = HASSC(model, options)
    return wrapper, [EMATeacherHook(wrapper)]
