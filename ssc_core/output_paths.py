"""Output locations given on the command line: create them up front, fail with a ConfigError naming the option
and the path (a file where a folder is wanted, a folder that cannot be created or written) instead of an
OSError traceback halfway through a run."""

from __future__ import annotations

import os
from pathlib import Path

from ssc_core.errors import ConfigError


def ensure_output_dir(path: str | Path, what: str = "--output") -> Path:
    """Create the folder ``path`` (and its parents) for writing and return it. ConfigError (naming ``what``, the
    option it came from) when it is an existing file, sits below a file, or cannot be created or written."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what} {path}: exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot create the folder ({exc.strerror or exc})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"{what} {path}: the folder is not writable")
    return path


def ensure_output_file(path: str | Path, what: str = "--output", suffixes: tuple[str, ...] = ()) -> Path:
    """Check that the file ``path`` can be written: not an existing folder, suffix in ``suffixes`` (lower case,
    with the dot; any when empty), parent folder created (see ``ensure_output_dir``). Returns ``path``."""
    path = Path(path)
    if suffixes and path.suffix.lower() not in suffixes:
        raise ConfigError(f"{what} {path}: expected a file name ending in {' or '.join(suffixes)}")
    if path.is_dir():
        raise ConfigError(f"{what} {path}: is a folder, expected a file name")
    ensure_output_dir(path.parent, what=f"{what} {path}: parent folder")
    return path
