"""Normalisation layers chosen by a small config mapping, as mmcv's ``norm_cfg`` does (so blocks shared by HTCL,
L2COcc and others take the norm their method uses as a parameter instead of hard-coding one).

Specs: ``{"type": "BN", "eps": 1e-5, "momentum": 0.1, "track_running_stats": True}`` (BatchNorm of the block's
dimensionality; ``track_running_stats: False`` normalises with the batch's statistics in evaluation too),
``{"type": "GN", "num_groups": 32, "eps": 1e-5}`` (GroupNorm), ``{"type": "LN"}`` is not offered (no block here
uses it on feature maps). A plain string ``"BN"`` / ``"GN"`` means the type with default arguments.
"""

from __future__ import annotations

from torch import nn

from ssc_core.errors import ConfigError

NormSpec = dict | str
_BATCH_NORMS = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


def build_norm(spec: NormSpec, channels: int, dims: int) -> nn.Module:
    """A normalisation layer over ``channels`` for ``dims``-dimensional feature maps (1, 2 or 3).

    ``spec``: see the module docstring. ConfigError for unknown types/keys or a group count that does not divide
    ``channels``."""
    cfg = {"type": spec} if isinstance(spec, str) else dict(spec or {})
    kind = cfg.pop("type", None)
    if kind == "BN":
        unknown = set(cfg) - {"eps", "momentum", "track_running_stats"}
        if unknown:
            raise ConfigError(f"BN norm takes eps, momentum and track_running_stats, got {sorted(unknown)}")
        if dims not in _BATCH_NORMS:
            raise ConfigError(f"BN norm needs 1, 2 or 3 spatial dims, got {dims}")
        return _BATCH_NORMS[dims](channels, eps=float(cfg.get("eps", 1e-5)), momentum=float(cfg.get("momentum", 0.1)),
                                  track_running_stats=bool(cfg.get("track_running_stats", True)))
    if kind == "GN":
        unknown = set(cfg) - {"num_groups", "eps"}
        if unknown:
            raise ConfigError(f"GN norm takes num_groups and eps, got {sorted(unknown)}")
        groups = int(cfg.get("num_groups", 32))
        if channels % groups:
            raise ConfigError(f"GN with {groups} groups cannot normalise {channels} channels")
        return nn.GroupNorm(groups, channels, eps=float(cfg.get("eps", 1e-5)))
    raise ConfigError(f"norm type must be 'BN' or 'GN', got {kind!r} (spec {spec!r})")
