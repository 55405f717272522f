"""Config parsing shared by the model classes: the checked ``model:`` section with its grid, and the loss and
class weights every SSC model reads the same way."""

from __future__ import annotations

import torch

from ssc_core.errors import ConfigError
from ssc_core.losses import resolve_class_weights
from ssc_core.types import GridSpec


def model_section(cfg: dict, known: set[str], model: str, grid_multiple: int = 8) -> tuple[dict, dict, GridSpec]:
    """(the ``model:`` mapping, the ``data:`` mapping, the scene grid) of a whole parsed config. ConfigError for a
    model key not in ``known`` or grid dims not divisible by ``grid_multiple`` (the BEV U-Net pools 3 times and
    the models work on the 1:2 grid)."""
    m = dict(cfg.get("model") or {})
    data = cfg.get("data") or {}
    unknown = set(m) - known
    if unknown:
        raise ConfigError(f"unknown model keys {sorted(unknown)}; {model} knows {sorted(known)}")
    grid = GridSpec.from_dict(data.get("grid") or {})
    if any(d % grid_multiple for d in grid.dims):
        raise ConfigError(f"{model} needs data.grid.dims divisible by {grid_multiple} (BEV U-Net, 1:2 grid), got "
                          f"{grid.dims}")
    return m, data, grid


def loss_weights(m: dict, names: tuple[str, ...], model: str) -> dict[str, float]:
    """``model.loss_weights`` over the loss ``names`` (1.0 for each one not given). ConfigError for other keys."""
    given = m.get("loss_weights") or {}
    extra = set(given) - set(names)
    if extra:
        raise ConfigError(f"unknown model.loss_weights keys {sorted(extra)}; {model}'s losses are {names}")
    return {**dict.fromkeys(names, 1.0), **{k: float(v) for k, v in given.items()}}


def class_weights(m: dict, data: dict, num_classes: int) -> torch.Tensor:
    """(num_classes,) CE class weights from ``model.class_weights`` (default: the values SGN and VoxFormer
    hard-code for SemanticKITTI / KITTI-360, uniform for other class sets)."""
    class_set = data.get("class_set", "semantic_kitti")
    default = "sgn" if class_set in ("semantic_kitti", "kitti360") else None
    return resolve_class_weights(m.get("class_weights", default), class_set, num_classes)
