"""Model registry: classes register under a name; ``build_model(cfg)`` builds the one ``cfg['model']['name']``
names. A registered class is constructed as ``cls(cfg)`` with the whole parsed config. Every module directly in
``ssc_core/models/`` is imported before lookup, so a new method file only needs ``@register_model("name")``."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

import torch
from torch import nn

from ssc_core.config import reject_unknown_keys
from ssc_core.errors import ConfigError
from ssc_core.losses import resolve_class_weights
from ssc_core.types import GridSpec

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


SENSOR_INPUTS = ("image", "image_right", "points")


def data_sensor_inputs(data_cfg: dict) -> frozenset[str]:
    """The sensor streams a ``data:`` section makes samples from: 'image' unless ``use_left_image`` is false,
    'image_right' for ``use_right_image`` or a point / stereo-depth source reading the right image, 'points' for
    a point source (or the sweeps' source, VoxFormer's stage 1) reading the LiDAR scan."""
    from ssc_core.data.point_sources import point_source_name, point_source_requires
    from ssc_core.data.stereo_depth import stereo_depth_requires
    from ssc_core.data.sweeps import sweep_source_name
    from ssc_core.data.transforms import uses_left_image

    sweep_source = sweep_source_name(data_cfg)
    reads = point_source_requires(point_source_name(data_cfg)) + stereo_depth_requires(data_cfg)
    if sweep_source is not None:
        reads = reads + point_source_requires(sweep_source)
    inputs = {"image"} if uses_left_image(data_cfg) else set()
    if data_cfg.get("use_right_image") or "image_right" in reads:
        inputs.add("image_right")
    if "points_velo" in reads:
        inputs.add("points")
    return frozenset(inputs)


def model_inputs(cfg: dict) -> frozenset[str]:
    """The sensor streams (subset of SENSOR_INPUTS) the model of ``cfg`` reads at inference: its class's
    ``sensor_inputs(cfg)`` when it declares one (a model may read less than its training data holds, e.g. a
    distilled camera student whose data also feeds a LiDAR teacher), else ``data_sensor_inputs(cfg['data'])``."""
    model_cfg = cfg.get("model") or {}
    _import_builtin_models()
    declared = getattr(_MODELS.get(model_cfg.get("name")), "sensor_inputs", None)
    inputs = declared(cfg) if declared is not None else data_sensor_inputs(cfg.get("data") or {})
    unknown = set(inputs) - set(SENSOR_INPUTS)
    if unknown or not inputs:
        raise ConfigError(f"model {model_cfg.get('name')!r} declares sensor inputs {sorted(inputs)}; they must be a "
                          f"non-empty subset of {SENSOR_INPUTS}")
    return frozenset(inputs)


def _import_builtin_models() -> None:
    """Import every module of ssc_core.models (one file per method), so their @register_model runs."""
    import ssc_core.models as package

    for info in pkgutil.iter_modules(package.__path__):
        if not info.ispkg and info.name != "registry" and not info.name.startswith("_"):
            importlib.import_module(f"{package.__name__}.{info.name}")


def model_sections(cfg: dict, known_keys: set[str], model: str) -> tuple[dict, dict]:
    """(``model:``, ``data:``) of a whole config for a model's constructor; ConfigError naming ``model`` for
    ``model:`` keys outside ``known_keys``."""
    m = dict(cfg.get("model") or {})
    reject_unknown_keys(m, known_keys, "model", owner=model)
    return m, dict(cfg.get("data") or {})


def scene_grids(data: dict, model: str, reason: str) -> tuple[GridSpec, GridSpec]:
    """(scene grid ``data.grid``, its 1:2 work grid) for models that need dims divisible by 8 (``reason`` says
    why in the ConfigError)."""
    grid = GridSpec.from_dict(data.get("grid") or {})
    if any(d % 8 for d in grid.dims):
        raise ConfigError(f"{model} needs data.grid.dims divisible by 8 ({reason}), got {grid.dims}")
    return grid, grid.downsample(2)


def loss_weights(model_cfg: dict, names: tuple[str, ...], model: str) -> dict[str, float]:
    """``model.loss_weights`` over defaults of 1 for each of a model's loss ``names``; ConfigError for others."""
    given = dict(model_cfg.get("loss_weights") or {})
    extra = set(given) - set(names)
    if extra:
        raise ConfigError(f"unknown model.loss_weights keys {sorted(extra)}; {model}'s losses are {names}")
    return {**dict.fromkeys(names, 1.0), **{k: float(v) for k, v in given.items()}}


def model_class_weights(model_cfg: dict, data: dict, num_classes: int) -> torch.Tensor:
    """(num_classes,) CE class weights from ``model.class_weights`` (default: the values SGN and VoxFormer
    hard-code for SemanticKITTI / KITTI-360, uniform for other class sets)."""
    class_set = data.get("class_set", "semantic_kitti")
    default = "sgn" if class_set in ("semantic_kitti", "kitti360") else None
    return resolve_class_weights(model_cfg.get("class_weights", default), class_set, num_classes)
