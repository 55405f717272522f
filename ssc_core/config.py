"""Config files: YAML mappings composed from small files.

A config may name ``_base_: [other.yaml, ...]`` (paths relative to itself); bases are merged first, in order,
then the file's own keys are deep-merged on top. Names without a path are looked up in the project's
``config/models`` folder (source tree or installed share/ssc_ros), so ``load_config("sgn_tiny")`` works.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml

from ssc_core.errors import ConfigError

_PACKAGE_CONFIG_DIRS = (
    Path(__file__).resolve().parents[1] / "config",
    Path(sys.prefix) / "share" / "ssc_ros" / "config",
)


def config_dirs() -> list[Path]:
    """Folders searched for configs given by bare name: <config>/models and <config> of source and install."""
    dirs = []
    for base in _PACKAGE_CONFIG_DIRS:
        dirs += [base / "models", base]
    return [d for d in dirs if d.is_dir()]


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A config path: the path itself if it exists, else ``<name>[.yaml]`` in the project's config folders."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    candidates = [path.name, f"{path.name}.yaml"] if path.suffix != ".yaml" else [path.name]
    for folder in config_dirs():
        for cand in candidates:
            if (folder / cand).is_file():
                return folder / cand
    known = sorted(p.stem for d in config_dirs() for p in d.glob("*.yaml"))
    raise ConfigError(f"config {str(name_or_path)!r} not found (not a file; known names: {known})")


def deep_merge(base: dict, override: dict) -> dict:
    """Recursively merge ``override`` into a copy of ``base`` (mappings merge, everything else replaces)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# The sections of a config and the keys of its data: section (model: and train: keys are checked by the model
# and TrainSettings, which know them). A misspelt key would otherwise be ignored without a word.
CONFIG_SECTIONS = ("model", "data", "train")
DATA_KEYS = (
    "class_set", "dataset", "frame_rate_hz", "grid", "history_offsets", "image_crop", "image_preprocess",
    "labelled_points", "lidar_depth", "points", "root", "splits", "stereo_depth", "use_left_image",
    "use_right_image",
)


def check_config_keys(cfg: dict, source: str = "config") -> None:
    """ConfigError naming ``source`` for a top-level key other than CONFIG_SECTIONS, a section that is not a
    mapping, or a ``data:`` key other than DATA_KEYS."""
    unknown = sorted(str(k) for k in set(cfg) - set(CONFIG_SECTIONS))
    if unknown:
        raise ConfigError(f"{source}: unknown top-level key(s) {unknown}; a config holds {list(CONFIG_SECTIONS)}")
    for section in CONFIG_SECTIONS:
        if cfg.get(section) is not None and not isinstance(cfg[section], dict):
            raise ConfigError(f"{source}: '{section}:' must be a mapping, got {type(cfg[section]).__name__}")
    unknown = sorted(str(k) for k in set(cfg.get("data") or {}) - set(DATA_KEYS))
    if unknown:
        raise ConfigError(f"{source}: unknown data key(s) {unknown}; known: {list(DATA_KEYS)}")


def load_config(name_or_path: str | Path, overrides: dict | None = None, *, check: bool = True) -> dict[str, Any]:
    """Load a YAML config with its ``_base_`` chain resolved; ``overrides`` are deep-merged last. With ``check``
    the result must pass ``check_config_keys`` (ConfigError naming the file otherwise)."""
    path = resolve_config_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    bases = data.pop("_base_", [])
    bases = [bases] if isinstance(bases, str) else bases
    merged: dict = {}
    for base in bases:
        base_path = (path.parent / base) if not Path(base).is_absolute() else Path(base)
        merged = deep_merge(merged, load_config(base_path if base_path.is_file() else base, check=False))
    merged = deep_merge(merged, data)
    merged = deep_merge(merged, overrides or {})
    if check:
        check_config_keys(merged, f"{path}{' with overrides' if overrides else ''}")
    return merged
