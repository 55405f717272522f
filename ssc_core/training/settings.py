"""The ``train:`` section of a config, parsed and validated (every key documented in docs/training.md)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from ssc_core.errors import ConfigError
from ssc_core.evaluation.eval_range import check_eval_range
from ssc_core.training.schedule import LR_SCHEDULES

AMP_MODES = ("none", "bf16", "fp16")


@dataclass
class TrainSettings:
    """Training hyper-parameters. Defaults follow SGN's recipe (AdamW 2e-4, wd 0.01, clip 35, 500-iteration
    warm-up from lr/3, cosine by epoch to 1e-3 of the rate, 48 epochs, validation every epoch)."""

    epochs: int = 48
    batch_size: int = 1
    effective_batch_size: int | None = None
    num_workers: int = 0
    lr: float = 2e-4
    weight_decay: float = 0.01
    no_weight_decay_1d: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float | None = 35.0
    warmup_iters: int = 500
    warmup_ratio: float = 1.0 / 3.0
    min_lr_ratio: float = 1e-3
    schedule_by_epoch: bool = True
    lr_schedule: str = "cosine"
    lr_steps: list[int] = field(default_factory=list)
    lr_step_gamma: float = 0.1
    pct_start: float = 0.3
    div_factor: float = 25.0
    final_div_factor: float = 1e4
    amp: str = "none"
    val_interval: int = 1
    log_interval: int = 10
    checkpoint_interval: int = 1
    seed: int = 0
    deterministic: bool | str = "auto"
    max_iters_per_epoch: int | None = None
    best_metric: str = "miou"
    eval_ranges: list[float] = field(default_factory=list)
    find_unused_parameters: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, cfg: dict) -> TrainSettings:
        """Parse the whole config's ``train`` section (missing section -> defaults). Unknown keys raise
        ConfigError, except under ``train.extra`` which is free-form for hooks (HASSC, distillation)."""
        section = dict(cfg.get("train") or {})
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(section) - names)
        if unknown:
            raise ConfigError(f"unknown train keys {unknown}; known: {sorted(names)}")
        settings = cls(**section)
        settings.validate()
        return settings

    def deterministic_on(self, device_type: str) -> bool:
        """Whether to use torch's deterministic algorithms on ``device_type``: ``auto`` means on CPU only (where
        they make multi-threaded runs reproducible at no measured cost), true/false everywhere."""
        return self.deterministic is True or (self.deterministic == "auto" and device_type == "cpu")

    def validate(self) -> None:
        """Raise ConfigError naming the first ``train.<key>`` with an unusable value."""
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "val_interval": self.val_interval,
                    "log_interval": self.log_interval, "checkpoint_interval": self.checkpoint_interval}
        for key, value in positive.items():
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"train.{key} must be an integer >= 1, got {value!r}")
        effective = self.effective_batch_size
        if effective is not None and (not isinstance(effective, int) or isinstance(effective, bool) or effective < 1):
            raise ConfigError(f"train.effective_batch_size must be an integer >= 1 or null, got {effective!r}")
        if not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise ConfigError(f"train.num_workers must be an integer >= 0, got {self.num_workers!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ConfigError(f"train.lr must be a number > 0, got {self.lr!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ConfigError(f"train.grad_clip must be > 0 or null, got {self.grad_clip!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"train.lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.lr_schedule == "step" and not self.lr_steps:
            raise ConfigError("train.lr_schedule: step needs train.lr_steps (e.g. [20, 25])")
        if not 0 < self.pct_start < 1:
            raise ConfigError(f"train.pct_start must be in (0, 1), got {self.pct_start!r}")
        if not (self.div_factor > 0 and self.final_div_factor > 0):
            raise ConfigError(f"train.div_factor and train.final_div_factor must be > 0, got {self.div_factor!r}, "
                              f"{self.final_div_factor!r}")
        if self.amp not in AMP_MODES:
            raise ConfigError(f"train.amp must be one of {AMP_MODES}, got {self.amp!r}")
        if self.deterministic not in (True, False, "auto"):
            raise ConfigError(f"train.deterministic must be true, false or auto, got {self.deterministic!r}")
        if self.max_iters_per_epoch is not None and self.max_iters_per_epoch < 1:
            raise ConfigError(f"train.max_iters_per_epoch must be >= 1 or null, got {self.max_iters_per_epoch!r}")
        if len(self.betas) != 2:
            raise ConfigError(f"train.betas must be two numbers, got {self.betas!r}")
        self.betas = (float(self.betas[0]), float(self.betas[1]))
        if not isinstance(self.eval_ranges, list | tuple):
            raise ConfigError(f"train.eval_ranges must be a list such as [25.6, 12.8], got {self.eval_ranges!r}")
        self.eval_ranges = [check_eval_range(r, "train.eval_ranges entries") for r in self.eval_ranges]
        self.lr = float(self.lr)
        self.weight_decay = float(self.weight_decay)
