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
from torch import nn

from ssc_core.convert.keymap import KeyMap
from ssc_core.data.label_maps import get_class_set
from ssc_core.errors import CheckpointMismatchError, ConfigError
from ssc_core.training.checkpoint import load_model_state, make_checkpoint
from ssc_core.types import GridSpec


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


def load_converted(keymap: KeyMap, state: dict[str, torch.Tensor], model: nn.Module, method: str,
                   surplus_hint: str = "") -> dict[str, str]:
    """Map the official ``state`` with ``keymap`` and load it into ``model`` strictly; returns the keys dropped on
    purpose (key -> reason). CheckpointMismatchError naming, in official names: keys no rule knows, keys the model
    has no place for (``surplus_hint`` says which config key to check), keys of the model the file lacks; then any
    mis-shaped tensor (``load_model_state``). ``method`` names the release in the messages."""
    own = model.state_dict()
    mapped = keymap.to_ours(state)
    if mapped.unmatched:
        raise CheckpointMismatchError(f"{len(mapped.unmatched)} key(s) of the file are not keys of an official "
                                      f"{method} checkpoint: {mapped.unmatched[:10]}")
    surplus = keymap.to_official({k: v for k, v in mapped.state.items() if k not in own}).state
    if surplus:
        raise CheckpointMismatchError(f"the file has {len(surplus)} key(s) the config's model has no place for"
                                      f"{surplus_hint}: {sorted(surplus)[:10]}")
    missing = keymap.to_official({k: v for k, v in own.items() if k not in mapped.state}).state
    if missing:
        raise CheckpointMismatchError(f"the file lacks {len(missing)} key(s) of an official {method} checkpoint "
                                      f"for this config: {sorted(missing)[:10]}")
    load_model_state(model, mapped.state, source=f"the converted {method} checkpoint")
    return mapped.dropped


def ssc_conversion(model: nn.Module, config: dict, dropped: dict[str, str], default_class_set: str,
                   default_grid: dict | None = None) -> Conversion:
    """The Conversion of an SSC model: our normal checkpoint (model state, ``config``, the class map and grid of
    ``config['data']``, or the defaults given) and the ``dropped`` keys."""
    data = config.get("data") or {}
    class_set = get_class_set(data.get("class_set", default_class_set))
    grid = GridSpec.from_dict(data.get("grid") or default_grid or {})
    return Conversion(make_checkpoint(model.state_dict(), config, class_set, grid), dropped)


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
