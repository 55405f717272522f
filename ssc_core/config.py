"""Config files: YAML mappings composed from small files.

A config may name ``_base_: [other.yaml, ...]`` (paths relative to itself); bases are merged first, in order,
then the file's own keys are deep-merged on top. Names without a path are looked up in the project's
``config/models`` and ``config`` folders (``config_dirs``: source tree, ament index, installed share/ssc_ros),
so ``load_config("sgn_tiny")`` works from a checkout, a pip install and a colcon install alike.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from ssc_core.errors import ConfigError

PACKAGE = "ssc_ros"  # the ROS package (and pip distribution) whose share/ folder holds the configs
AMENT_INDEX_MARKER = Path("share") / "ament_index" / "resource_index" / "packages" / PACKAGE


def package_config_roots() -> list[Path]:
    """Candidate ``config`` folders, first match wins: the source tree beside ``ssc_core`` (a checkout, an
    editable or a colcon --symlink-install), ``<prefix>/share/ssc_ros/config`` of every prefix on
    AMENT_PREFIX_PATH whose ament index lists ssc_ros (a sourced colcon install; the index read as files, the
    way ament_index_python does, so ssc_core needs no ROS), the prefix the installed package lives in
    (``<prefix>/lib/pythonX.Y/site-packages/ssc_core``: a colcon install not sourced, pip --prefix / --user) and
    ``sys.prefix`` (a pip install into an environment)."""
    package_dir = Path(__file__).resolve().parents[1]
    roots = [package_dir / "config"] if (package_dir / "package.xml").is_file() else []
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix and (Path(prefix) / AMENT_INDEX_MARKER).is_file():
            roots.append(Path(prefix) / "share" / PACKAGE / "config")
    roots += [parent / "share" / PACKAGE / "config" for parent in package_dir.parents[:3]]
    roots.append(Path(sys.prefix) / "share" / PACKAGE / "config")
    return list(dict.fromkeys(roots))


def config_dirs() -> list[Path]:
    """Existing folders searched for configs given by bare name: <config>/models then <config> of each root."""
    dirs = []
    for base in package_config_roots():
        dirs += [base / "models", base]
    return [d for d in dirs if d.is_dir()]


def resolve_config_path(name_or_path: str | Path) -> Path:
    """A config path: the path itself if it exists, else ``<name>[.yaml]`` in the project's config folders
    (a relative name such as ``data/kitti360`` is looked up below them too)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    names = dict.fromkeys([str(path), path.name])
    candidates = [c for n in names for c in ([n] if path.suffix == ".yaml" else [n, f"{n}.yaml"])]
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


# The sections of a config and the keys of its data: section (model:, train: and distill: keys are checked by the
# model, TrainSettings and ssc_core.training.distill, which know them). A misspelt key would otherwise be ignored
# without a word.
CONFIG_SECTIONS = ("model", "data", "train", "distill")
DATA_KEYS = (
    "class_set", "dataset", "frame_rate_hz", "grid", "history_offsets", "image_crop", "image_preprocess",
    "labelled_points", "lga", "lidar_depth", "points", "proposals", "root", "splits", "stereo_depth", "sweeps",
    "use_left_image", "use_right_image",
    # RGB-D (NYU) datasets: docs/datasets.md
    "augment", "cad_root", "eval_protocol", "image_size", "load_tsdf_cad", "tsdf_source",
)


def reject_unknown_keys(section: Mapping, known: Iterable[str], where: str, owner: str | None = None) -> None:
    """ConfigError naming the keys of ``section`` (the ``where`` mapping of a config, e.g. ``data.sweeps``) that
    are not in ``known``, and the known ones (as ``owner knows`` when an owner, e.g. a model name, is given)."""
    known = set(known)
    unknown = set(section) - known
    if unknown:
        lead = f"{owner} knows" if owner else "known:"
        raise ConfigError(f"unknown {where} keys {sorted(unknown)}; {lead} {sorted(known)}")


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
