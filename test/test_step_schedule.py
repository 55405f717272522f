"""Step learning-rate decay (HTCL's mmcv ``step`` policy) and its train: keys."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ssc_core.errors import ConfigError
from ssc_core.training.schedule import WarmupStepSchedule, build_schedule
from ssc_core.training.settings import TrainSettings


def test_step_schedule_divides_by_ten_at_each_milestone_epoch_and_resumes():
    opt = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=1e-4)
    sched = WarmupStepSchedule(opt, total_steps=30 * 4, steps_per_epoch=4, milestones=[20, 25], gamma=0.1)
    lrs = []
    for _ in range(30 * 4):
        lrs.append(sched.get_last_lr()[0])
        sched.step()
    assert lrs[0] == lrs[20 * 4 - 1] == pytest.approx(1e-4)  # no warm-up, flat until epoch 20
    assert lrs[20 * 4] == lrs[25 * 4 - 1] == pytest.approx(1e-5)
    assert lrs[25 * 4] == lrs[-1] == pytest.approx(1e-6)
    restored = WarmupStepSchedule(opt, total_steps=120, steps_per_epoch=4, milestones=[20, 25])
    restored.load_state_dict(sched.state_dict())
    assert restored.get_last_lr() == sched.get_last_lr()


def test_step_schedule_by_step_with_a_warm_up():
    opt = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = WarmupStepSchedule(opt, total_steps=10, steps_per_epoch=10, milestones=[6], gamma=0.5, warmup_iters=2,
                               warmup_ratio=0.5, by_epoch=False)
    assert [sched.factor(t) for t in (0, 1, 2, 5, 6, 9)] == pytest.approx([0.5, 0.75, 1.0, 1.0, 0.5, 0.5])


def test_train_keys_choose_the_schedule_and_reject_bad_values():
    s = TrainSettings.from_config({"train": {"lr_schedule": "step", "lr_steps": [20, 25]}})
    assert s.lr_schedule == "step" and s.lr_steps == [20, 25] and s.lr_step_gamma == 0.1
    assert TrainSettings.from_config({}).lr_schedule == "cosine"
    with pytest.raises(ConfigError, match="lr_schedule must be"):
        TrainSettings.from_config({"train": {"lr_schedule": "poly"}})
    with pytest.raises(ConfigError, match="needs train.lr_steps"):
        TrainSettings.from_config({"train": {"lr_schedule": "step"}})
    opt = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ConfigError, match="increasing"):
        WarmupStepSchedule(opt, 10, 1, milestones=[5, 3])


def test_build_schedule_picks_the_step_schedule_from_the_settings():
    opt = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=1e-4)
    settings = TrainSettings.from_config({"train": {"lr_schedule": "step", "lr_steps": [2], "warmup_iters": 0}})
    sched = build_schedule(opt, settings, total_steps=12, steps_per_epoch=4)
    assert isinstance(sched, WarmupStepSchedule) and sched.milestones == [2]
    assert sched.factor(7) == 1.0 and sched.factor(8) == pytest.approx(0.1)
