"""Teacher -> student distillation as a Trainer hook, for any method that trains a student beside a frozen teacher
(CleanerS: TSDF-CAD teacher -> noisy-TSDF student; L2COcc: LiDAR teacher -> camera student).

``DistillationHook(teacher, terms, teacher_inputs)`` runs the teacher on every (micro-)batch after the student's own
losses and adds one loss per KD term. The teacher:

- is built from its own checkpoint and config (``load_teacher``), never from the student's;
- is in eval mode and frozen (``requires_grad`` off, forward under ``no_grad``): it never gets gradients and is not
  in the optimizer;
- is held by the hook, not by the student, so it is never saved into the student's checkpoints (``last.pt``,
  ``best.pt`` hold the student alone) and costs nothing at inference;
- reads the student's batch, with the keys ``teacher_inputs`` names replaced: ``{teacher key: batch key}``, e.g.
  ``{"tsdf": "tsdf_cad"}`` makes the teacher read TSDF-CAD where the student reads the noisy TSDF.

A KD term is a function ``fn(student_outputs, teacher_outputs, batch) -> tensor | {suffix: tensor}`` with a weight;
its losses are added as ``loss_<name>`` (or ``loss_<suffix>`` for a dict), each times the weight. Terms come from
the registry (``register_kd_term``) by name in the config's ``distill:`` section (``build_distillation``)::

    distill:
      teacher_checkpoint: work_dirs/cleaners_teacher_tiny/best.pt
      teacher_inputs: {tsdf: tsdf_cad}
      terms:
        - {name: kd_t, kind: feature_mse, key: tsdf_feat, weight: 0.25}
        - {name: kd_s, kind: class_centre_kd, temperature: 1.0, weight: 0.25}

Interface and the recipe for a new method: docs/training.md ("Distillation").
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ssc_core.config import reject_unknown_keys
from ssc_core.data.label_maps import ClassSet
from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.losses.distill import (
    aggregator_kl_loss,
    class_centre_kd_losses,
    feature_cosine_loss,
    feature_mse_loss,
    prediction_kl_loss,
    relation_loss,
)
from ssc_core.training.checkpoint import check_compatible, load_checkpoint, load_model_state
from ssc_core.training.hooks import TrainerHook

if TYPE_CHECKING:
    from ssc_core.training.trainer import Trainer

KDFunction = Callable[[dict, dict, dict], "torch.Tensor | dict[str, torch.Tensor]"]
DISTILL_KEYS = {"teacher_checkpoint", "teacher_inputs", "terms"}


@dataclass
class KDTerm:
    """One distillation loss: ``fn(student_outputs, teacher_outputs, batch)`` (a tensor, or a dict of named tensors)
    times ``weight``, logged as ``loss_<name>`` (``loss_<key>`` for each key of a dict)."""

    name: str
    fn: KDFunction
    weight: float = 1.0


class DistillationHook(TrainerHook):
    """Adds KD terms from a frozen ``teacher`` to the student's losses (see the module docstring)."""

    def __init__(self, teacher: nn.Module, terms: list[KDTerm], teacher_inputs: Mapping[str, str] | None = None
                 ) -> None:
        if not terms:
            raise ConfigError("distillation needs at least one KD term")
        self.teacher = teacher.eval()
        for param in self.teacher.parameters():
            param.requires_grad_(False)
        self.terms = list(terms)
        self.teacher_inputs = dict(teacher_inputs or {})

    def before_train(self, trainer: Trainer) -> None:
        """Move the teacher to the training device (it stays in eval mode)."""
        self.teacher.to(trainer.device).eval()

    def teacher_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        """The student's batch with the ``teacher_inputs`` keys replaced (DataFormatError when a source is missing)."""
        missing = sorted(src for src in self.teacher_inputs.values() if src not in batch)
        if missing:
            raise DataFormatError(f"distill.teacher_inputs reads {missing} but the batch has only {sorted(batch)} "
                                  "(for CleanerS set data.load_tsdf_cad: true)")
        return {**batch, **{dst: batch[src] for dst, src in self.teacher_inputs.items()}}

    @torch.no_grad()
    def teacher_outputs(self, batch: dict[str, Any], trainer: Trainer | None = None) -> dict[str, Any]:
        """The teacher's outputs on ``batch`` (eval mode, no gradients, under the trainer's autocast)."""
        self.teacher.eval()
        context = trainer.autocast() if trainer is not None else contextlib.nullcontext()
        with context:
            out = self.teacher(self.teacher_batch(batch))
        return {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in out.items()}

    def kd_losses(self, outputs: dict, batch: dict, trainer: Trainer | None = None) -> dict[str, torch.Tensor]:
        """The weighted KD losses of one batch given the student's ``outputs``."""
        teacher_out = self.teacher_outputs(batch, trainer)
        losses: dict[str, torch.Tensor] = {}
        for term in self.terms:
            value = term.fn(outputs, teacher_out, batch)
            named = value if isinstance(value, dict) else {term.name: value}
            for key, loss in named.items():
                losses[f"loss_{key}"] = term.weight * loss
        return losses

    def after_losses(self, trainer: Trainer, outputs: dict, batch: dict, losses: dict[str, torch.Tensor]
                     ) -> dict[str, torch.Tensor]:
        clash = sorted(set(losses) & {f"loss_{t.name}" for t in self.terms})
        if clash:
            raise ConfigError(f"KD loss names {clash} collide with the model's own losses")
        return {**losses, **self.kd_losses(outputs, batch, trainer)}


# ------------------------------------------------------------------------------------------ terms by name
_KD_TERMS: dict[str, Callable[..., KDFunction]] = {}


def register_kd_term(kind: str) -> Callable[[Callable[..., KDFunction]], Callable[..., KDFunction]]:
    """Register a factory ``factory(**params) -> fn(student_outputs, teacher_outputs, batch)`` under ``kind``, so
    configs can name it in ``distill.terms``."""

    def decorator(factory: Callable[..., KDFunction]) -> Callable[..., KDFunction]:
        _KD_TERMS[kind] = factory
        return factory

    return decorator


@register_kd_term("feature_mse")
def feature_mse_term(key: str) -> KDFunction:
    """MSE between the student's and the teacher's ``outputs[key]`` (CleanerS KD-T: key tsdf_feat)."""

    def fn(student: dict, teacher: dict, batch: dict) -> torch.Tensor:
        return feature_mse_loss(student[key], teacher[key])

    return fn


@register_kd_term("class_centre_kd")
def class_centre_term(temperature: float = 1.0, logits: str = "ssc_logits") -> KDFunction:
    """CleanerS KD-S on ``outputs[logits]`` with the batch's target and label_weight: {kd_sc, kd_sa}."""

    def fn(student: dict, teacher: dict, batch: dict) -> dict[str, torch.Tensor]:
        sc, sa = class_centre_kd_losses(student[logits], teacher[logits], batch["target"], batch["label_weight"],
                                        temperature)
        return {"kd_sc": sc, "kd_sa": sa}

    return fn


@register_kd_term("prediction_kl")
def prediction_kl_term(logits: str = "ssc_logits", include_empty: bool = False) -> KDFunction:
    """L2COcc PAD: KL(teacher || student) of ``outputs[logits]`` on the batch's non-empty labelled voxels
    (``prediction_kl_loss``; ``include_empty`` adds the empty ones, the release's ``distill_kl_empty``)."""

    def fn(student: dict, teacher: dict, batch: dict) -> torch.Tensor:
        return prediction_kl_loss(student[logits], teacher[logits], batch["target"], include_empty)

    return fn


def _tpv_planes(outputs: dict) -> list[list[torch.Tensor]]:
    """Per plane (xy, yz, zx) the Swin outputs then the FPN outputs of an L2COcc model's outputs."""
    return [[*backbone, *neck] for backbone, neck in zip(outputs["plane_backbone"], outputs["plane_neck"])]


@register_kd_term("tpv_feature_cosine")
def tpv_feature_cosine_term() -> KDFunction:
    """L2COcc's feature term: ``feature_cosine_loss`` over the TPV plane features (Swin and FPN outputs) and the
    voxel features (``fused_features``, ``voxel_features``), masked by ``batch['target_1_2']``: 17 terms."""

    def fn(student: dict, teacher: dict, batch: dict) -> torch.Tensor:
        volumes = ("fused_features", "voxel_features")
        return feature_cosine_loss(_tpv_planes(student), _tpv_planes(teacher), [student[k] for k in volumes],
                                   [teacher[k] for k in volumes], batch["target_1_2"])

    return fn


@register_kd_term("tpv_relation")
def tpv_relation_term(level: int = 0) -> KDFunction:
    """L2COcc's relation term: ``relation_loss`` on each plane's FPN output ``level`` (the release: the first)."""

    def fn(student: dict, teacher: dict, batch: dict) -> torch.Tensor:
        return relation_loss([neck[level] for neck in student["plane_neck"]],
                             [neck[level] for neck in teacher["plane_neck"]])

    return fn


@register_kd_term("aggregator_kl")
def aggregator_kl_term() -> KDFunction:
    """L2COcc's aggregator term: ``aggregator_kl_loss`` of the TPV aggregator's weight logits at the non-empty
    labelled voxels of ``batch['target_1_2']``."""

    def fn(student: dict, teacher: dict, batch: dict) -> torch.Tensor:
        return aggregator_kl_loss(student["aggregator_logits"], teacher["aggregator_logits"], batch["target_1_2"])

    return fn


def build_terms(specs: list[dict]) -> list[KDTerm]:
    """KDTerms from ``distill.terms`` entries {name, kind, weight, ...params of the kind}."""
    if not isinstance(specs, list) or not specs:
        raise ConfigError("distill.terms must be a non-empty list of {name, kind, weight, ...}")
    terms = []
    for spec in specs:
        spec = dict(spec)
        name, kind, weight = spec.pop("name", None), spec.pop("kind", None), float(spec.pop("weight", 1.0))
        if not name or kind not in _KD_TERMS:
            raise ConfigError(f"distill term {spec}: needs a name and a kind among {sorted(_KD_TERMS)}")
        try:
            terms.append(KDTerm(str(name), _KD_TERMS[kind](**spec), weight))
        except TypeError as exc:
            raise ConfigError(f"distill term {name!r} ({kind}): {exc}") from None
    return terms


def load_teacher(path: str | Path, class_set: ClassSet | None = None, device: str | torch.device = "cpu"
                 ) -> tuple[nn.Module, dict]:
    """Build a teacher from its own checkpoint (its config, its weights) in eval mode with gradients off. Returns
    (model, its config). CheckpointMismatchError when its class set differs from ``class_set`` (the student's)."""
    from ssc_core.models import build_model

    ckpt = load_checkpoint(path, map_location="cpu")
    if class_set is not None:
        check_compatible(ckpt, class_set=class_set, source=f"teacher checkpoint {path}")
    model = build_model(ckpt["config"])
    load_model_state(model, ckpt["model"], source=f"teacher checkpoint {path}")
    model.to(device).eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return model, ckpt["config"]


def build_distillation(cfg: dict, class_set: ClassSet | None = None) -> DistillationHook | None:
    """The hook a config's ``distill:`` section describes (None when there is none or it is null)."""
    section = cfg.get("distill")
    if section is None:
        return None
    if not isinstance(section, dict):
        raise ConfigError(f"distill: must be a mapping, got {type(section).__name__}")
    reject_unknown_keys(section, DISTILL_KEYS, "distill")
    if not section.get("teacher_checkpoint"):
        raise ConfigError("distill.teacher_checkpoint is required (a checkpoint written by ssc-train for the teacher)")
    path = Path(section["teacher_checkpoint"])
    if not path.is_file():
        last = path.with_name("last.pt")
        hint = (f"; {last} exists (a teacher trained with --no-val writes no best.pt): use it with --set "
                f"distill.teacher_checkpoint={last}" if path.name != "last.pt" and last.is_file() else "")
        raise ConfigError(f"distill.teacher_checkpoint {path} does not exist: train the teacher first{hint}")
    inputs = section.get("teacher_inputs") or {}
    if not isinstance(inputs, dict):
        raise ConfigError(f"distill.teacher_inputs must map teacher keys to batch keys, got {inputs!r}")
    teacher, _ = load_teacher(path, class_set)
    return DistillationHook(teacher, build_terms(section.get("terms")), inputs)
