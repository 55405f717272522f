"""Learning-rate schedules: linear warm-up then cosine annealing (the SGN / VoxFormer recipe) or step decay
(HTCL's mmcv ``step`` policy).

The rate at optimiser step ``t`` (0-based) with ``T`` total steps is ``base * warm(t) * decay(t)`` with
``warm(t) = 1 - (1 - t / warmup_iters) * (1 - warmup_ratio)`` for ``t < warmup_iters``, else 1, and

- cosine: ``decay = m + (1 - m) * (1 + cos(pi * p)) / 2`` where ``m`` is ``min_lr_ratio``, ``p`` the progress
  (``t / T``, or ``epoch / epochs`` when annealing by epoch, as mmcv's ``CosineAnnealing``);
- step: ``decay = gamma ** (number of milestones <= epoch)`` (or ``<= t`` when not by epoch), as mmcv's ``step``.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer

from ssc_core.errors import ConfigError


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
