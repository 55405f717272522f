"""Per-frame inputs precomputed to disk, in the formats of the original code bases, so either workflow works:
computed on the fly (the default) or read from files written once by ``ssc-precompute``.

- ``sweep_occupancy`` (X, Y, Z), ``data.sweeps.root``: ``<root>/<seq>/voxels/<frame>.pseudo``, bit-packed 0/1,
  MSB first, C order (VoxFormer's ``lidar2voxel``);
- ``proposal`` (X/2, Y/2, Z/2), ``data.proposals.root`` + ``.tag``: ``<root>/<seq>/queries/<frame>.query_<tag>``,
  the same packing (VoxFormer's stage-1 output);
- ``lga`` (X, Y, Z), ``data.lga.root``: ``<root>/<seq>/lgas/<frame>.npy``, uint8 0..6 (HASSC's ``kitti_lga``
  layout).

``<frame>`` is the six-digit frame number. All three are read as uint8 tensors; a missing or mis-sized file is a
DataFormatError naming it and the command that writes it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ssc_core.config import reject_unknown_keys
from ssc_core.data.semantic_kitti import read_packed_bits
from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.types import GridSpec

DEFAULT_PROPOSAL_TAG = "iou5203_pre7712_rec6153"  # the tag of VoxFormer's released stage-1 proposals


def sweep_file(root: str | Path, sequence: str, frame: int) -> Path:
    """``<root>/<seq>/voxels/<frame:06d>.pseudo``."""
    return Path(root) / sequence / "voxels" / f"{frame:06d}.pseudo"


def proposal_file(root: str | Path, sequence: str, frame: int, tag: str = DEFAULT_PROPOSAL_TAG) -> Path:
    """``<root>/<seq>/queries/<frame:06d>.query_<tag>``."""
    return Path(root) / sequence / "queries" / f"{frame:06d}.query_{tag}"


def lga_file(root: str | Path, sequence: str, frame: int) -> Path:
    """``<root>/<seq>/lgas/<frame:06d>.npy``."""
    return Path(root) / sequence / "lgas" / f"{frame:06d}.npy"


def _section(data_cfg: dict, key: str, known: set[str]) -> dict | None:
    section = data_cfg.get(key)
    if section is None:
        return None
    if not isinstance(section, dict) or not section.get("root"):
        raise ConfigError(f"data.{key} must be a mapping with a root folder, got {section!r}")
    reject_unknown_keys(section, known, f"data.{key}")
    return section


def _read_bits(path: Path, dims: tuple[int, int, int], command: str) -> torch.Tensor:
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found (write the cache with `{command}`, or drop the root "
                              "to compute the input on the fly)")
    return torch.from_numpy(read_packed_bits(path, dims))


def read_lga(path: Path, dims: tuple[int, int, int]) -> np.ndarray:
    """(X, Y, Z) uint8 LGA values 0..6 from a ``.npy`` (any integer dtype, flat or shaped). DataFormatError when
    missing, of the wrong size or out of range."""
    if not path.is_file():
        raise DataFormatError(f"{path}: file not found (write LGA files with `ssc-precompute lga`, or drop "
                              "data.lga to compute LGA from the labels on the fly)")
    try:
        values = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataFormatError(f"{path}: not a readable .npy file ({exc})") from None
    if values.size != int(np.prod(dims)) or not np.issubdtype(values.dtype, np.integer):
        raise DataFormatError(f"{path}: expected {int(np.prod(dims))} integers (grid {dims}), got "
                              f"{values.size} {values.dtype}")
    if values.min(initial=0) < 0 or values.max(initial=0) > 6:
        raise DataFormatError(f"{path}: LGA values must lie in 0..6, got {values.min()}..{values.max()}")
    return values.reshape(dims).astype(np.uint8)


def read_cached_inputs(data_cfg: dict, sequence: str, frame: int) -> dict[str, torch.Tensor]:
    """The cached inputs ``data_cfg`` asks for, for one frame: any of ``sweep_occupancy``, ``proposal`` and
    ``lga`` (uint8 tensors, shapes in the module docstring); {} when none is configured."""
    grid = GridSpec.from_dict(data_cfg.get("grid") or {})
    out: dict[str, torch.Tensor] = {}
    sweeps = data_cfg.get("sweeps")
    if isinstance(sweeps, dict) and sweeps.get("root"):
        out["sweep_occupancy"] = _read_bits(sweep_file(sweeps["root"], sequence, frame), grid.dims,
                                            "ssc-precompute sweeps")
    proposals = _section(data_cfg, "proposals", {"root", "tag"})
    if proposals is not None:
        path = proposal_file(proposals["root"], sequence, frame, str(proposals.get("tag", DEFAULT_PROPOSAL_TAG)))
        out["proposal"] = _read_bits(path, grid.downsample(2).dims, "ssc-precompute proposals")
    lga = _section(data_cfg, "lga", {"root"})
    if lga is not None:
        out["lga"] = torch.from_numpy(read_lga(lga_file(lga["root"], sequence, frame), grid.dims))
    return out
