"""``NYUDataset``: NYUv2 SSC frames of the 3D-Sketch / CleanerS layout (real, or ``ssc-make-synthetic --layout nyu``)
as model samples.

Per frame, the keys of ``rgbd.rgbd_sample`` (``img``, ``mapping2d``, ``mapping``, ``tsdf``) plus:

- ``target`` int64 (60, 36, 60): labels 0..11, 255 = ignore;
- ``label_weight`` float32 (60, 36, 60): the file's non-free mask (arr_1 of the noisy ``TSDF/<id>.npz``, as
  CleanerS reads it for teacher and student alike);
- ``tsdf_cad`` float32 (1, 60, 36, 60) with ``data.load_tsdf_cad`` (the distilled student's teacher input);
- ``frame_id`` (str).

``data.tsdf_source``: ``noisy`` (default: ``TSDF/``) or ``cad`` (``NYUCAD/TSDF/``, the teacher's input) fills
``tsdf``. Training-split samples are augmented (``rgbd_augment``) when ``data.augment`` is true. The validation
protocol of the Trainer is ``data.eval_protocol`` (``sscnet`` or ``monoscene``, see ``evaluation.scorers``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ssc_core.data.label_maps import ClassSet, get_class_set
from ssc_core.data.nyu import (
    NYU_CAM_K,
    NYUTsdfPaths,
    find_nyu_root,
    mapping_to_pixel_map,
    nyu_id,
    read_nyu_label,
    read_nyu_mapping,
    read_nyu_tsdf,
)
from ssc_core.data.rgbd import rgbd_sample
from ssc_core.data.rgbd_augment import augment_rgbd
from ssc_core.data.semantic_kitti import read_image
from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.types import GridSpec

NYU_SPLITS = ("train", "test")
TSDF_SOURCES = ("noisy", "cad")


class NYUDataset(Dataset):
    """NYUv2 SSC frames as samples (see the module docstring).

    root: the NYU folder (holding ``Label/``) or a folder holding ``NYU/`` (and ``NYUCAD/`` beside it); split:
    'train' or 'test' ('valid'/'val' mean 'test': NYU has no separate validation set), or ``sequences`` an explicit
    list of frame ids ('0001' or 'NYU0001'); cfg: the ``data:`` section (tsdf_source, load_tsdf_cad, augment,
    image_size, cad_root, eval_protocol, class_set). ``with_labels=False`` leaves out target and label_weight."""

    def __init__(self, root: str | Path, split: str | None = None, cfg: dict | None = None, *,
                 sequences: Sequence[str] | None = None, with_labels: bool = True) -> None:
        self.cfg = dict(cfg or {})
        self.root = find_nyu_root(root)
        cad_root = self.cfg.get("cad_root")
        self.paths = NYUTsdfPaths(self.root, Path(cad_root) if cad_root else None)
        self.class_set: ClassSet = get_class_set(self.cfg.get("class_set", "nyu"))
        self.grid = GridSpec.from_dict(self.cfg.get("grid") or GridSpec.nyu().to_dict())
        self.tsdf_source = self.cfg.get("tsdf_source", "noisy")
        if self.tsdf_source not in TSDF_SOURCES:
            raise ConfigError(f"data.tsdf_source must be one of {TSDF_SOURCES}, got {self.tsdf_source!r}")
        self.load_cad = bool(self.cfg.get("load_tsdf_cad", False))
        self.with_labels = with_labels
        if sequences is not None:
            self.split = "train" if split is None else _split_name(split)
            self.frame_ids = [nyu_id(str(s)) for s in sequences]
        else:
            if split is None:
                raise ConfigError("give a split (train/test) or an explicit list of frame ids")
            self.split = _split_name(split)
            self.frame_ids = self.paths.frame_ids(self.split)
        if not self.frame_ids:
            raise DataFormatError(f"{self.root}: no frames in split {self.split!r}")
        self.augment = bool(self.cfg.get("augment", False)) and self.split == "train"
        self.eval_protocol = self.cfg.get("eval_protocol", "sscnet")
        self.K = NYU_CAM_K.copy()

    def __len__(self) -> int:
        return len(self.frame_ids)

    def tsdf_path(self, frame_id: str, cad: bool) -> Path:
        """The TSDF file of a frame (``cad``: NYUCAD's)."""
        return self.paths.tsdf(frame_id, cad=cad)

    def __getitem__(self, index: int) -> dict:
        frame_id = self.frame_ids[index]
        image = read_image(self.paths.rgb(frame_id, self.split))
        mapping = read_nyu_mapping(self.paths.mapping(frame_id))
        tsdf, weight = read_nyu_tsdf(self.tsdf_path(frame_id, cad=False))
        if self.tsdf_source == "cad":
            tsdf = read_nyu_tsdf(self.tsdf_path(frame_id, cad=True))[0]
        mapping2d = None
        if self.augment:
            rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, ()).item()))
            image, mapping2d = augment_rgbd(image, mapping_to_pixel_map(mapping, image.shape[:2]), rng)
        sample = rgbd_sample(image, mapping, tsdf, self.cfg, mapping2d)
        if self.load_cad:
            sample["tsdf_cad"] = torch.from_numpy(read_nyu_tsdf(self.tsdf_path(frame_id, cad=True))[0])[None]
        if self.with_labels:
            sample["target"] = torch.from_numpy(read_nyu_label(self.paths.label(frame_id)).astype(np.int64))
            sample["label_weight"] = torch.from_numpy(weight)
        sample["frame_id"] = frame_id
        return sample


def _split_name(split: str) -> str:
    name = "test" if split in ("valid", "val") else split
    if name not in NYU_SPLITS:
        raise ConfigError(f"NYU split must be one of {NYU_SPLITS} (or valid/val = test), got {split!r}")
    return name
