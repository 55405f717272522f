"""Which voxel grid a sequence's ``voxels/`` files are on.

SemanticKITTI's files are always 256 x 256 x 32 voxels of 0.2 m, but nothing in a ``.label`` file says so, and
the synthetic sequences can be written on other grids (``--small``: 128 x 128 x 16 of 0.4 m). So
``ssc-make-synthetic`` records its grid in ``voxels/grid.yaml``, and tools that read voxel files take the grid
from there; without a record the grid comes from the user's flags (SemanticKITTI's by default) and is checked
against the size of a label file, so a wrong grid is an error naming the flags, not a silently wrong picture.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from ssc_core.data.semantic_kitti import SequencePaths
from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.types import GridSpec

GRID_RECORD = "grid.yaml"


def grid_record_path(paths: SequencePaths) -> Path:
    """``<sequence>/voxels/grid.yaml``: where a sequence records the grid of its voxel files."""
    return paths.dir / "voxels" / GRID_RECORD


def write_grid_record(paths: SequencePaths, grid: GridSpec) -> None:
    """Record ``grid`` as the grid of the sequence's voxel files (``voxels/grid.yaml``)."""
    path = grid_record_path(paths)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# the voxel grid of the files in this folder (dims in voxels, metres, LiDAR frame)\n"
                    + yaml.safe_dump(grid.to_dict(), default_flow_style=None, sort_keys=False))


def read_grid_record(paths: SequencePaths) -> GridSpec | None:
    """The grid recorded in ``voxels/grid.yaml``, or None when the sequence has no record (real KITTI data).
    DataFormatError naming the file when it cannot be read."""
    path = grid_record_path(paths)
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text())
        if not isinstance(data, dict):
            raise ConfigError(f"expected a mapping with dims, voxel_size, origin, got {type(data).__name__}")
        return GridSpec.from_dict(data)
    except (OSError, yaml.YAMLError, ConfigError, TypeError, ValueError) as exc:
        raise DataFormatError(f"{path}: not a grid record ({exc})") from None


def sequence_grid(
    paths: SequencePaths,
    dims: tuple[int, int, int] | list[int] | None = None,
    voxel_size: float | None = None,
    origin: tuple[float, float, float] | list[float] | None = None,
    flags: tuple[str, str | None, str | None] = ("--grid-dims", "--voxel-size", "--grid-origin"),
) -> GridSpec:
    """The grid of the sequence's voxel files, from its record or from the user's ``dims`` / ``voxel_size`` /
    ``origin`` (None = not given; ``flags`` names the options they came from, for the messages; None for a
    value the user cannot give).

    With a record, given values must agree with it (ConfigError otherwise). Without one: ``dims`` default to
    SemanticKITTI's; other ``dims`` need ``voxel_size`` (ConfigError: the size cannot be guessed); ``origin``
    defaults to SemanticKITTI's convention (0, -Y * size / 2, -2). Either way the first ``.label`` file must
    hold exactly one value per voxel (DataFormatError naming the file and the flags otherwise)."""
    dims_flag, size_flag, origin_flag = flags
    record = read_grid_record(paths)
    if record is not None:
        given = [(dims_flag, dims, record.dims), (size_flag, voxel_size, record.voxel_size),
                 (origin_flag, origin, record.origin)]
        for flag, value, recorded in given:
            if flag is not None and value is not None and not np.allclose(np.asarray(value, float), recorded):
                raise ConfigError(f"{flag} {_show(value)} disagrees with the grid recorded in "
                                  f"{grid_record_path(paths)} ({_show(recorded)}); leave the grid flags out")
        grid = record
    else:
        default = GridSpec.semantic_kitti()
        dims = tuple(int(d) for d in dims) if dims is not None else default.dims
        if voxel_size is None and dims != default.dims:
            raise ConfigError(f"{dims_flag} {_show(dims)} needs {size_flag} (the voxel size the labels were made "
                              f"with, e.g. {default.voxel_size * default.dims[0] / dims[0]:g} for a grid over "
                              f"SemanticKITTI's {default.voxel_size * default.dims[0]:g} m): {paths.dir} records no "
                              f"grid in voxels/{GRID_RECORD}")
        size = float(voxel_size) if voxel_size is not None else default.voxel_size
        origin = tuple(origin) if origin is not None else (0.0, -dims[1] * size / 2, default.origin[2])
        grid = GridSpec(dims=dims, voxel_size=size, origin=origin)
    _check_label_size(paths, grid, record is not None, flags)
    return grid


def _check_label_size(paths: SequencePaths, grid: GridSpec, recorded: bool,
                      flags: tuple[str, str | None, str | None]) -> None:
    frames = paths.labelled_frames()
    if not frames:
        return
    label = paths.voxel(frames[0], "label")
    voxels = label.stat().st_size // 2
    if voxels == grid.num_voxels:
        return
    if recorded:
        raise DataFormatError(f"{label} holds {voxels} voxels but the grid recorded in {grid_record_path(paths)} "
                              f"has {grid.num_voxels}: the record or the label file is damaged")
    raise DataFormatError(f"{label} holds {voxels} voxels but the grid {_show(grid.dims)} has {grid.num_voxels}: "
                          f"pass the grid the labels were made with ({flags[0]} X Y Z"
                          f"{f' and {flags[1]} S' if flags[1] else ''})")


def _show(value) -> str:
    return " ".join(f"{float(v):g}" for v in np.atleast_1d(np.asarray(value, dtype=float)))
