"""Model registry: classes register under a name; ``build_model(cfg)`` builds the one ``cfg['model']['name']``
names. A registered class is constructed as ``cls(cfg)`` with the whole parsed config. Every module directly in
``ssc_core/models/`` is imported before lookup, so a new method file only needs ``@register_model("name")``."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

from torch import nn

from ssc_core.errors import ConfigError

_MODELS: dict[str, type[nn.Module]] = {}


def register_model(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: make ``cls`` buildable as ``model: {name: <name>}``."""

    def decorator(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _MODELS and _MODELS[name] is not cls:
            raise ValueError(f"model name {name!r} is already registered by {_MODELS[name].__name__}")
        _MODELS[name] = cls
        return cls

    return decorator


def list_models() -> list[str]:
    """Names of the registered models."""
    _import_builtin_models()
    return sorted(_MODELS)


def build_model(cfg: dict) -> nn.Module:
    """Build the model a parsed config describes (``cfg['model']['name']`` picks the class)."""
    model_cfg = cfg.get("model") if isinstance(cfg, dict) else None
    if not isinstance(model_cfg, dict) or "name" not in model_cfg:
        raise ConfigError("config has no model.name (expected a 'model:' section naming a registered model)")
    _import_builtin_models()
    name = model_cfg["name"]
    if name not in _MODELS:
        raise ConfigError(f"unknown model.name {name!r}; registered: {sorted(_MODELS)}")
    return _MODELS[name](cfg)


def _import_builtin_models() -> None:
    """Import every module of ssc_core.models (one file per method), so their @register_model runs."""
    import ssc_core.models as package

    for info in pkgutil.iter_modules(package.__path__):
        if not info.ispkg and info.name != "registry" and not info.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{info.name}")
