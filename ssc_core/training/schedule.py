"""Learning-rate schedules, chosen by ``train.lr_schedule``.

``cosine`` (the SGN / VoxFormer recipe): the rate at optimiser step ``t`` (0-based) with ``T`` total steps
is ``base * warm(t) * (m + (1 - m) * (1 + cos(pi * p)) / 2)`` where ``m`` is ``min_lr_ratio``, ``p`` the progress
(``t / T``, or ``epoch / epochs`` when annealing by epoch, as mmcv's ``CosineAnnealing``), and
``warm(t) = 1 - (1 - t / warmup_iters) * (1 - warmup_ratio)`` for ``t < warmup_iters``, else 1.

``step`` (HTCL's mmcv ``step`` policy): the same warm-up, then ``base * gamma ** (number of milestones <= epoch)``
(``<= t`` when not by epoch).

``one_cycle`` (L2COcc's ``OneCycleLR``, cosine annealing, no momentum cycling): from ``base / div_factor`` up to
``base`` over the first ``pct_start * T - 1`` steps, then down to ``base / div_factor / final_div_factor`` at step
``T - 1``, each phase a half cosine; the same rates as ``torch.optim.lr_scheduler.OneCycleLR``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from torch.optim import Optimizer

from ssc_core.errors import ConfigError

if TYPE_CHECKING:
    from ssc_core.training.settings import TrainSettings


class WarmupCosineSchedule:
    """Sets the learning rate of every param group of ``optimizer`` before each step.

    Takes the optimiser (its groups' current ``lr`` are the base rates), ``total_steps``, ``steps_per_epoch``
    (used when ``by_epoch``), ``warmup_iters``, ``warmup_ratio`` (start factor), ``min_lr_ratio``.
    Call ``step()`` once after each ``optimizer.step()``; state is just the step counter.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        total_steps: int,
        steps_per_epoch: int,
        warmup_iters: int = 500,
        warmup_ratio: float = 1.0 / 3.0,
        min_lr_ratio: float = 1e-3,
        by_epoch: bool = True,
    ) -> None:
        if total_steps < 1 or steps_per_epoch < 1:
            raise ConfigError(f"schedule needs total_steps >= 1 and steps_per_epoch >= 1, got "
                              f"{total_steps}, {steps_per_epoch}")
        if not 0 < warmup_ratio <= 1 or not 0 <= min_lr_ratio <= 1 or warmup_iters < 0:
            raise ConfigError("train.warmup_ratio must be in (0, 1], train.min_lr_ratio in [0, 1], "
                              "train.warmup_iters >= 0")
        self.optimizer = optimizer
        self.base_lrs = [group.get("initial_lr", group["lr"]) for group in optimizer.param_groups]
        for group, base in zip(optimizer.param_groups, self.base_lrs):
            group["initial_lr"] = base
        self.total_steps = total_steps
        self.steps_per_epoch = steps_per_epoch
        self.warmup_iters = warmup_iters
        self.warmup_ratio = warmup_ratio
        self.min_lr_ratio = min_lr_ratio
        self.by_epoch = by_epoch
        self.last_step = 0
        self._apply()

    def decay(self, step: int) -> float:
        """The cosine factor at optimiser step ``step`` (without warm-up)."""
        if self.by_epoch:
            epochs = max(1, math.ceil(self.total_steps / self.steps_per_epoch))
            progress = min(1.0, (step // self.steps_per_epoch) / epochs)
        else:
            progress = min(1.0, step / self.total_steps)
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def factor(self, step: int) -> float:
        """The multiplier of the base rate at optimiser step ``step``."""
        value = self.decay(step)
        if step < self.warmup_iters:
            value *= 1.0 - (1.0 - step / self.warmup_iters) * (1.0 - self.warmup_ratio)
        return value

    def _apply(self) -> None:
        f = self.factor(self.last_step)
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * f

    def step(self) -> None:
        """Advance one optimiser step and set the new rates."""
        self.last_step += 1
        self._apply()

    def get_last_lr(self) -> list[float]:
        """Current learning rate of each param group."""
        return [group["lr"] for group in self.optimizer.param_groups]

    def state_dict(self) -> dict:
        """Plain state (for checkpoints)."""
        return {"last_step": self.last_step, "base_lrs": list(self.base_lrs)}

    def load_state_dict(self, state: dict) -> None:
        """Restore ``state_dict()`` output and re-apply the rates."""
        self.last_step = int(state["last_step"])
        self.base_lrs = [float(v) for v in state["base_lrs"]]
        self._apply()


class WarmupStepSchedule(WarmupCosineSchedule):
    """Warm-up then step decay: the rate is multiplied by ``gamma`` at each of ``milestones`` (epochs when
    ``by_epoch``, else optimiser steps), as mmcv's ``step`` policy (HTCL: milestones [20, 25], gamma 0.1, 30
    epochs, no warm-up). Other arguments as ``WarmupCosineSchedule`` (``min_lr_ratio`` unused)."""

    def __init__(self, optimizer: Optimizer, total_steps: int, steps_per_epoch: int, milestones: list[int],
                 gamma: float = 0.1, warmup_iters: int = 0, warmup_ratio: float = 1.0 / 3.0,
                 by_epoch: bool = True) -> None:
        if any(int(m) != m or m < 1 for m in milestones) or list(milestones) != sorted(milestones):
            raise ConfigError(f"train.lr_steps must be increasing positive integers, got {list(milestones)}")
        if not 0 < gamma <= 1:
            raise ConfigError(f"train.lr_step_gamma must be in (0, 1], got {gamma}")
        self.milestones, self.gamma = [int(m) for m in milestones], float(gamma)
        super().__init__(optimizer, total_steps, steps_per_epoch, warmup_iters, warmup_ratio, 1.0, by_epoch)

    def decay(self, step: int) -> float:
        """``gamma ** (milestones passed)`` at optimiser step ``step``."""
        position = step // self.steps_per_epoch if self.by_epoch else step
        return self.gamma ** sum(position >= m for m in self.milestones)


class OneCycleSchedule(WarmupCosineSchedule):
    """``torch.optim.lr_scheduler.OneCycleLR`` with cosine annealing and no momentum cycling, stepped like
    WarmupCosineSchedule (same ``step``/``state_dict`` interface, state = the step counter).

    Takes the optimiser (its groups' ``lr`` are the peak rates), ``total_steps``, ``pct_start`` (fraction of the
    steps rising), ``div_factor`` (start = peak / div_factor) and ``final_div_factor`` (end = start /
    final_div_factor). Steps beyond ``total_steps - 1`` keep the final rate."""

    def __init__(self, optimizer: Optimizer, total_steps: int, pct_start: float = 0.3, div_factor: float = 25.0,
                 final_div_factor: float = 1e4) -> None:
        if not 0 < pct_start < 1 or not div_factor > 0 or not final_div_factor > 0:
            raise ConfigError("train.pct_start must be in (0, 1), train.div_factor and train.final_div_factor > 0")
        if total_steps < 2:
            raise ConfigError(f"the one_cycle schedule needs at least 2 optimizer steps, got {total_steps}")
        self.pct_start = pct_start
        self.div_factor = div_factor
        self.final_div_factor = final_div_factor
        super().__init__(optimizer, total_steps, steps_per_epoch=1, warmup_iters=0, by_epoch=False)

    def factor(self, step: int) -> float:
        """The multiplier of the peak rate at optimiser step ``step``."""
        start = 1.0 / self.div_factor
        end = start / self.final_div_factor
        peak_step = float(self.pct_start * self.total_steps) - 1
        last_step = self.total_steps - 1
        step = min(step, last_step)
        if step <= peak_step:
            low, high, progress = start, 1.0, step / peak_step if peak_step > 0 else 1.0
        else:
            low, high, progress = 1.0, end, (step - peak_step) / (last_step - peak_step)
        return high + (low - high) / 2.0 * (math.cos(math.pi * progress) + 1.0)


LR_SCHEDULES = ("cosine", "step", "one_cycle")


def build_schedule(optimizer: Optimizer, settings: TrainSettings, total_steps: int,
                   steps_per_epoch: int) -> WarmupCosineSchedule:
    """The schedule ``settings.lr_schedule`` names (a TrainSettings), over ``total_steps`` optimizer steps."""
    if settings.lr_schedule == "one_cycle":
        return OneCycleSchedule(optimizer, total_steps, pct_start=settings.pct_start, div_factor=settings.div_factor,
                                final_div_factor=settings.final_div_factor)
    if settings.lr_schedule == "step":
        return WarmupStepSchedule(optimizer, total_steps, steps_per_epoch, milestones=settings.lr_steps,
                                  gamma=settings.lr_step_gamma, warmup_iters=settings.warmup_iters,
                                  warmup_ratio=settings.warmup_ratio, by_epoch=settings.schedule_by_epoch)
    if settings.lr_schedule != "cosine":
        raise ConfigError(f"train.lr_schedule must be one of {LR_SCHEDULES}, got {settings.lr_schedule!r}")
    return WarmupCosineSchedule(optimizer, total_steps=total_steps, steps_per_epoch=steps_per_epoch,
                                warmup_iters=settings.warmup_iters, warmup_ratio=settings.warmup_ratio,
                                min_lr_ratio=settings.min_lr_ratio, by_epoch=settings.schedule_by_epoch)
