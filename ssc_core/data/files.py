"""Small file helpers every dataset format module shares."""

from __future__ import annotations

from pathlib import Path

from ssc_core.errors import DataFormatError

PathLike = str | Path


def read_file_bytes(path: PathLike) -> bytes:
    """The whole file's bytes; DataFormatError naming the path when it is not a file."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found")
    return path.read_bytes()


def ensure_parent(path: PathLike) -> Path:
    """Create ``path``'s parent folders; returns ``path`` as a Path (ready to write)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
