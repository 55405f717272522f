"""Converter registry: one converter per method that publishes checkpoints (``@register_converter``).

A converter turns the flat state dict of an official file (prefixes such as ``module.`` already removed by
``ssc_core.convert.official``) into a checkpoint of this project. Every module directly in ``ssc_core/convert/``
is imported before a lookup, so a new method only adds its file.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from ssc_core.errors import ConfigError


@dataclass
class Conversion:
    """The result of a conversion: ``checkpoint`` (the mapping to ``torch.save``: for SSC models the normal
    checkpoint of ``ssc_core.training.checkpoint``) and ``dropped`` (official key -> why it was left out:
    layers the official model builds but never runs)."""

    checkpoint: dict[str, Any]
    dropped: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Converter:
    """A registered converter: ``method`` (the --method name), ``summary`` (one line for --help), whether it
    needs a config (``needs_config``: the architecture is read from it), ``convert(state, config)`` and whether
    the model takes its points from a configurable depth source (``depth_source``: --depth-weights /
    --depth-files apply)."""

    method: str
    summary: str
    needs_config: bool
    convert: Callable[[dict[str, torch.Tensor], dict | None], Conversion]
    depth_source: bool = False


_CONVERTERS: dict[str, Converter] = {}
_SKIP = {"registry", "official", "keymap"}


def register_converter(method: str, summary: str, needs_config: bool = True, depth_source: bool = False):
    """Function decorator: register ``fn(state, config) -> Conversion`` as the converter of ``method``."""

    def decorator(fn: Callable[[dict[str, torch.Tensor], dict | None], Conversion]):
        if method in _CONVERTERS and _CONVERTERS[method].convert is not fn:
            raise ValueError(f"a converter for {method!r} is already registered")
        _CONVERTERS[method] = Converter(method, summary, needs_config, fn, depth_source)
        return fn

    return decorator


def _import_builtin() -> None:
    import ssc_core.convert as package

    for info in pkgutil.iter_modules(package.__path__):
        if not info.ispkg and info.name not in _SKIP and not info.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{info.name}")


def list_converters() -> list[Converter]:
    """Every registered converter, sorted by method name."""
    _import_builtin()
    return [_CONVERTERS[name] for name in sorted(_CONVERTERS)]


def get_converter(method: str) -> Converter:
    """The converter of ``method``; ConfigError listing the known methods otherwise."""
    _import_builtin()
    if method not in _CONVERTERS:
        raise ConfigError(f"no checkpoint converter for method {method!r}; known: {sorted(_CONVERTERS)}")
    return _CONVERTERS[method]
