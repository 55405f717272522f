"""Read a checkpoint published with a method's official code: mmcv / mmdet files (``{'meta': ..., 'state_dict':
...}``), plain ``torch.save`` mappings (``{'model': state_dict, 'epoch': ...}``, as MobileStereoNet saves them) or
a bare state dict; ``module.`` prefixes of (Distributed)DataParallel are removed.

Files are read with ``torch.load(weights_only=True)``, which rebuilds only tensors and plain data; numpy scalars
and dtypes (numbers in mmcv's ``meta``) are allowed too, since rebuilding them runs no code. Anything else is
refused with the names of the globals the file would import; ``trust_pickle=True`` (``--trust-pickle``) loads it
with full unpickling, which can run code from the file, so only for files from a source the user trusts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ssc_core.errors import DataFormatError
from ssc_core.training.checkpoint import load_failure_reason

_MULTIARRAY = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray  # numpy 2 / numpy 1.x
_NUMPY_SCALAR_GLOBALS = [
    _MULTIARRAY.scalar,
    (_MULTIARRAY.scalar, "numpy.core.multiarray.scalar"),  # as files written with numpy 1.x name it
    np.dtype,
    *{type(np.dtype(code)) for code in ("b1", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8")},
]
_STATE_KEYS = ("state_dict", "model")


def _unsafe_globals(path: Path) -> list[str]:
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # noqa: BLE001 - the listing is only for the message; the load error says the rest
        return []


def load_official_file(path: str | Path, trust_pickle: bool = False) -> Any:
    """The object stored in ``path`` (see the module docstring for what is unpickled). DataFormatError naming
    the file: missing, not a torch file, truncated, or holding objects that need ``trust_pickle``."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: checkpoint file not found")
    try:
        if trust_pickle:
            return torch.load(path, map_location="cpu", weights_only=False)
        with torch.serialization.safe_globals(_NUMPY_SCALAR_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types (UnpicklingError, RuntimeError, EOFError)
        unsafe = [] if trust_pickle else _unsafe_globals(path)
        reason = load_failure_reason(path, exc)
        if unsafe:
            reason = (f"refused to unpickle {unsafe}: the file holds Python objects besides tensors and plain data. "
                      "If you trust where the file comes from, rerun with --trust-pickle (full unpickling can run "
                      "code stored in the file)")
        raise DataFormatError(f"{path}: cannot read checkpoint: {reason}") from None


def extract_state_dict(obj: Any, source: str = "checkpoint") -> tuple[dict[str, torch.Tensor], dict]:
    """(flat state dict without ``module.`` prefixes, the file's ``meta`` mapping or {}) from a loaded file:
    the tensors under 'state_dict' or 'model', or the mapping itself when every value is a tensor.
    DataFormatError naming ``source`` and the top-level keys when there is no state dict."""
    if not isinstance(obj, dict):
        raise DataFormatError(f"{source}: holds a {type(obj).__name__}, expected a mapping with a state dict")
    state = next((obj[k] for k in _STATE_KEYS if isinstance(obj.get(k), dict)), None)
    if state is None and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        state = obj
    if state is None:
        raise DataFormatError(f"{source}: no state dict found (top-level keys {sorted(map(str, obj))[:12]}; "
                              f"expected one of {list(_STATE_KEYS)} or a bare mapping of tensors)")
    not_tensors = sorted(str(k) for k, v in state.items() if not isinstance(v, torch.Tensor))
    if not_tensors:
        raise DataFormatError(f"{source}: state dict entries that are not tensors: {not_tensors[:8]}")
    prefixed = [k for k in state if k.startswith("module.")]
    if prefixed and len(prefixed) != len(state):
        raise DataFormatError(f"{source}: only {len(prefixed)} of {len(state)} keys carry the 'module.' prefix")
    state = {k.removeprefix("module."): v for k, v in state.items()}
    meta = obj.get("meta") if isinstance(obj.get("meta"), dict) else {}
    return state, meta


def read_official_state(path: str | Path, trust_pickle: bool = False) -> tuple[dict[str, torch.Tensor], dict]:
    """``extract_state_dict(load_official_file(path))``: (flat state dict, meta) of an official checkpoint."""
    return extract_state_dict(load_official_file(path, trust_pickle), str(path))
