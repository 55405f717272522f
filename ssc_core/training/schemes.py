"""Training schemes chosen in a config: ``train.extra.<scheme>`` wraps the model for training and adds the
hooks the scheme needs. Known: ``hassc`` (``ssc_core.training.hassc``). The model section stays the deployed
model, so a scheme's run exports exactly what the base model's run would (see docs/training.md)."""

from __future__ import annotations

from torch import nn

from ssc_core.errors import ConfigError
from ssc_core.training.hooks import TrainerHook


def training_schemes(cfg: dict) -> list[str]:
    """The schemes ``cfg`` asks for (keys of ``train.extra`` that name a scheme)."""
    extra = (cfg.get("train") or {}).get("extra") or {}
    if not isinstance(extra, dict):
        raise ConfigError(f"train.extra must be a mapping, got {extra!r}")
    return [name for name in ("hassc",) if name in extra]


def apply_training_schemes(model: nn.Module, cfg: dict) -> tuple[nn.Module, list[TrainerHook]]:
    """(the module to train, its hooks) for ``model`` under the schemes of ``cfg``; (model, []) without one."""
    schemes = training_schemes(cfg)
    if not schemes:
        return model, []
    from ssc_core.training.hassc import build_hassc

    options = cfg["train"]["extra"]["hassc"]
    if options is not None and not isinstance(options, dict):
        raise ConfigError(f"train.extra.hassc must be a mapping of options (or empty), got {options!r}")
    return build_hassc(model, options)
