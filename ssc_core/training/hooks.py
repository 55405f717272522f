"""Trainer hooks: the seams through which training schemes (HASSC hardness-aware sampling and EMA teacher,
L2COcc / CleanerS distillation) extend the Trainer without copying it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from ssc_core.training.trainer import Trainer


class TrainerHook:
    """Base class; every method is optional. Called by the Trainer in this order each step:
    ``before_step`` (may return a changed batch) -> forward -> ``model.losses`` -> ``after_losses`` (may
    return changed/added loss terms, e.g. a distillation term from a teacher) -> backward/step ->
    ``after_step``. With gradient accumulation (``train.effective_batch_size``) an optimizer step takes
    ``trainer.accumulate_steps`` micro-batches: ``before_step``, forward, ``after_losses`` and backward run for
    each of them, then the optimizer step and ``after_step`` once. ``state_dict``/``load_state_dict`` go into
    the training checkpoint (key ``hooks``), so an EMA teacher resumes exactly; they must hold tensors and plain
    data only."""

    def before_train(self, trainer: Trainer) -> None:
        """Once, before the first epoch (after a resume has been applied)."""

    def before_step(self, trainer: Trainer, batch: dict[str, Any]) -> dict[str, Any] | None:
        """Before the forward pass of every (micro-)batch; return a replacement batch or None to keep it."""
        return None

    def after_losses(
        self, trainer: Trainer, outputs: dict[str, Any], batch: dict[str, Any], losses: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor] | None:
        """After the model's losses of every (micro-)batch, unscaled (the Trainer divides their sum by the number
        of micro-batches in the step for the backward pass); return a replacement loss dict or None to keep it."""
        return None

    def after_step(self, trainer: Trainer, losses: dict[str, float]) -> None:
        """After each optimiser step (once per ``accumulate_steps`` micro-batches; not after a skipped step), with
        the step's loss terms as floats (means over its micro-batches)."""

    def after_epoch(self, trainer: Trainer, epoch: int) -> None:
        """After each training epoch (``epoch`` is 0-based), before validation."""

    def after_validation(self, trainer: Trainer, metrics: dict[str, Any]) -> None:
        """After validation (on every rank, with the metrics of the whole validation set)."""

    def state_dict(self) -> dict[str, Any]:
        """State to checkpoint (tensors and plain data only)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict()`` output."""
