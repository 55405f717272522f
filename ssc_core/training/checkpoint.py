"""Checkpoint files: save atomically, load safely (``torch.load(weights_only=True)``), check they fit.

A checkpoint is a plain mapping of tensors and plain data (no pickled classes), so it loads with
``weights_only=True``. Keys always present:

- ``format`` (int), ``version`` (ssc_core version that wrote it)
- ``config``: the whole parsed config the model was built from (plain dict)
- ``class_set``: the class map (see ``class_set_to_dict``), ``grid``: ``GridSpec.to_dict()``
- ``model``: the model's ``state_dict``

Training checkpoints add ``optimizer``, ``scheduler``, ``scaler``, ``epoch``, ``step``, ``rng``,
``best_metric`` and ``hooks`` (see ``ssc_core.training.trainer``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import ssc_core
from ssc_core.data.label_maps import ClassSet
from ssc_core.errors import CheckpointMismatchError, DataFormatError
from ssc_core.types import GridSpec

CHECKPOINT_FORMAT = 1
REQUIRED_KEYS = ("format", "version", "config", "class_set", "grid", "model")


def class_set_to_dict(class_set: ClassSet) -> dict[str, Any]:
    """Plain-data form of a ClassSet (names, colours, label maps, frequencies) for a checkpoint."""
    return {
        "name": class_set.name,
        "names": list(class_set.names),
        "colors_rgb": np.asarray(class_set.colors_rgb, dtype=np.int64).tolist(),
        "learning_map": {int(k): int(v) for k, v in class_set.learning_map.items()},
        "frequencies": None if class_set.frequencies is None else [float(f) for f in class_set.frequencies],
        "learning_map_inverse": None
        if class_set.learning_map_inverse is None
        else {int(k): int(v) for k, v in class_set.learning_map_inverse.items()},
    }


def class_set_from_dict(data: dict[str, Any]) -> ClassSet:
    """Rebuild the ClassSet stored by ``class_set_to_dict``."""
    try:
        return ClassSet(
            name=str(data["name"]),
            names=tuple(data["names"]),
            colors_rgb=np.asarray(data["colors_rgb"], dtype=np.uint8),
            learning_map=dict(data.get("learning_map") or {}),
            frequencies=None if data.get("frequencies") is None else tuple(data["frequencies"]),
            learning_map_inverse=None
            if data.get("learning_map_inverse") is None
            else dict(data["learning_map_inverse"]),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DataFormatError(f"checkpoint class_set entry is malformed: {exc!r}") from None


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file beside ``path`` then ``os.replace`` it into place, so a crash never
    leaves a truncated checkpoint. Returns the final path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def make_checkpoint(
    model_state: dict[str, torch.Tensor], config: dict, class_set: ClassSet, grid: GridSpec, **extra: Any
) -> dict[str, Any]:
    """The checkpoint mapping: model state (moved to CPU) + config + class map + grid + version + ``extra``."""
    ckpt: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "version": ssc_core.__version__,
        "config": config,
        "class_set": class_set_to_dict(class_set),
        "grid": grid.to_dict(),
        "model": {k: v.detach().cpu() for k, v in model_state.items()},
    }
    ckpt.update(extra)
    return ckpt


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    config: dict,
    class_set: ClassSet,
    grid: GridSpec,
    **extra: Any,
) -> Path:
    """Write ``model``'s weights with its config, class map and grid (plus ``extra`` training state) to
    ``path`` atomically. Returns the path."""
    return atomic_torch_save(make_checkpoint(model.state_dict(), config, class_set, grid, **extra), path)


def load_failure_reason(path: Path, exc: Exception) -> str:
    """What is wrong with a file ``torch.load`` refused, in one line (torch's own messages run to paragraphs
    and advise ``weights_only=False``, which is not the way out here)."""
    with path.open("rb") as handle:
        head = handle.read(4)
    text = str(exc)
    marker = "WeightsUnpickler error:"
    if marker in text:  # keep the specific reason, drop torch's advice around it
        text = text.split(marker, 1)[1].strip().split("\n")[0]
    detail = f"{type(exc).__name__}: {text.split('. ')[0].strip()}" if text.strip() else type(exc).__name__
    if not head:
        return "the file is empty"
    if head != b"PK\x03\x04":
        return f"not a torch.save file (no zip archive header; {detail})"
    if "WeightsUnpickler" in str(exc):
        return f"it holds objects other than tensors and plain data ({detail})"
    return f"corrupt or truncated archive ({detail})"


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)`` and check its required keys.
    Raises DataFormatError if the file is missing, unreadable, or not one of ours."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: checkpoint file not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types (UnpicklingError, RuntimeError, EOFError, ...)
        raise DataFormatError(f"{path}: cannot read checkpoint: {load_failure_reason(path, exc)}") from None
    if not isinstance(ckpt, dict):
        raise DataFormatError(f"{path}: checkpoint is a {type(ckpt).__name__}, expected a mapping")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise DataFormatError(f"{path}: not an ssc_core checkpoint (missing keys {missing})")
    if ckpt["format"] > CHECKPOINT_FORMAT:
        raise DataFormatError(
            f"{path}: checkpoint format {ckpt['format']} is newer than this ssc_core understands "
            f"({CHECKPOINT_FORMAT}); it was written by version {ckpt['version']}"
        )
    return ckpt


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: data}


# Config keys that change what a model computes; other keys (data roots, splits, train settings, where
# precomputed depth lives) may differ between the run that wrote a checkpoint and the one that loads it.
MODEL_DEFINING_KEYS = (
    "model", "data.grid", "data.history_offsets", "data.image_crop", "data.image_preprocess", "data.points.source",
    "data.use_right_image",
)


def config_differences(expected: dict, found: dict, keys: tuple[str, ...] = MODEL_DEFINING_KEYS) -> list[str]:
    """Human-readable differences between two configs under the given dotted key prefixes, one line per leaf:
    ``'<key>: checkpoint <found> vs config <expected>'`` (``found`` is the checkpoint's config)."""
    flat_exp, flat_found = _flatten(expected), _flatten(found)

    def selected(key: str) -> bool:
        return any(key == k or key.startswith(k + ".") for k in keys)

    diffs = []
    for key in sorted(k for k in set(flat_exp) | set(flat_found) if selected(k)):
        a, b = flat_found.get(key, "<absent>"), flat_exp.get(key, "<absent>")
        if a != b:
            diffs.append(f"{key}: checkpoint {a!r} vs config {b!r}")
    return diffs


def check_compatible(
    ckpt: dict[str, Any],
    config: dict | None = None,
    class_set: ClassSet | None = None,
    grid: GridSpec | None = None,
    source: str = "checkpoint",
) -> None:
    """Raise CheckpointMismatchError listing every difference between the checkpoint and the given config
    (its MODEL_DEFINING_KEYS), class set (names) and grid; None arguments are not checked."""
    diffs: list[str] = []
    if grid is not None and ckpt["grid"] != grid.to_dict():
        diffs.append(f"grid: checkpoint {ckpt['grid']} vs expected {grid.to_dict()}")
    if class_set is not None:
        stored = ckpt["class_set"]
        if list(stored["names"]) != list(class_set.names):
            diffs.append(
                f"class set: checkpoint {stored['name']!r} with {len(stored['names'])} classes "
                f"vs expected {class_set.name!r} with {class_set.num_classes} classes"
            )
    if config is not None:
        diffs += config_differences(config, ckpt["config"])
    if diffs:
        raise CheckpointMismatchError(f"{source} does not match:\n  " + "\n  ".join(diffs))


def load_model_state(model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> None:
    """Load ``state`` into ``model`` strictly. Raises CheckpointMismatchError naming missing, unexpected and
    wrongly shaped parameters instead of torch's RuntimeError."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing in checkpoint ({len(missing)}): {missing[:8]}")
        if unexpected:
            parts.append(f"not in model ({len(unexpected)}): {unexpected[:8]}")
        if shapes:
            parts.append(f"shape differs ({len(shapes)}): {shapes[:8]}")
        raise CheckpointMismatchError(f"{source} weights do not fit the model:\n  " + "\n  ".join(parts))
    model.load_state_dict(state, strict=True)
