"""The one_cycle schedule: PyTorch OneCycleLR's rates, config checks, resume, and the Trainer picking it."""

from __future__ import annotations

import pytest
import torch

from ssc_core.errors import ConfigError
from ssc_core.training.schedule import OneCycleSchedule, WarmupCosineSchedule, build_schedule
from ssc_core.training.settings import TrainSettings


def _optimizer(lr: float = 2e-4) -> torch.optim.Optimizer:
    return torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=lr)


@pytest.mark.parametrize("pct_start", [0.05, 0.1, 0.3])
def test_rates_equal_pytorch_one_cycle_lr(pct_start):
    total = 60
    ours = OneCycleSchedule(_optimizer(), total, pct_start=pct_start)
    ref_opt = _optimizer()
    ref = torch.optim.lr_scheduler.OneCycleLR(ref_opt, max_lr=2e-4, total_steps=total, pct_start=pct_start,
                                              cycle_momentum=False, anneal_strategy="cos")
    for _ in range(total):
        assert ours.get_last_lr()[0] == pytest.approx(ref.get_last_lr()[0], rel=1e-9, abs=1e-15)
        ours.step()
        ref_opt.step()
        ref.step()


def test_start_peak_and_end_rates():
    sched = OneCycleSchedule(_optimizer(1.0), total_steps=100, pct_start=0.1)
    assert sched.factor(0) == pytest.approx(1 / 25)
    assert sched.factor(9) == pytest.approx(1.0)  # the peak at step pct_start * T - 1
    assert sched.factor(99) == pytest.approx(1 / 25 / 1e4)
    assert sched.factor(500) == sched.factor(99)  # past the end: the final rate


def test_resume_restores_the_rate():
    opt = _optimizer()
    sched = OneCycleSchedule(opt, 40, pct_start=0.1)
    for _ in range(7):
        sched.step()
    restored = OneCycleSchedule(_optimizer(), 40, pct_start=0.1)
    restored.load_state_dict(sched.state_dict())
    assert restored.get_last_lr() == sched.get_last_lr()


def test_settings_pick_the_schedule_and_reject_bad_values():
    s = TrainSettings.from_config({"train": {"lr_schedule": "one_cycle", "pct_start": 0.05}})
    assert isinstance(build_schedule(_optimizer(), s, 100, 10), OneCycleSchedule)
    plain = build_schedule(_optimizer(), TrainSettings.from_config({}), 100, 10)
    assert type(plain) is WarmupCosineSchedule
    for bad in ({"lr_schedule": "linear"}, {"pct_start": 1.5}, {"div_factor": 0}):
        with pytest.raises(ConfigError, match="train."):
            TrainSettings.from_config({"train": bad})
