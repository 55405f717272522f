"""The NYUv2 layout of the synthetic indoor world (``ssc-make-synthetic --layout nyu``): seeded rooms written as the
3D-Sketch / CleanerS files, NYUCAD's clean TSDF beside them and the MonoScene ``.bin`` of every frame::

    ROOT/NYU/Label/<id>.npz                 labels (60, 36, 60), SSC x4 rule from 240 x 144 x 240
    ROOT/NYU/TSDF/<id>.npz                  TSDF of the noisy depth (arr_0) and its label_weight (arr_1)
    ROOT/NYU/Mapping/<id>.npz               voxel -> pixel of the noisy depth, 307200 = none
    ROOT/NYU/<split>/RGB/NYU<id>_rgb.png    640 x 480 colour
    ROOT/NYU/<split>/depth/NYU<id>_0000.png noisy depth with holes (uint16, metres * 8000)
    ROOT/NYU/<split>.txt                    frame names of the split (NYU<id>_0000)
    ROOT/NYU/NYU<split>/NYU<id>_0000.bin    MonoScene flavour: grid origin, camera pose, RLE labels (37 classes)
    ROOT/NYU/NYU<split>/NYU<id>_0000_color.jpg
    ROOT/NYUCAD/TSDF/<id>.npz               TSDF and label_weight of the perfect depth (TSDF-CAD)
    ROOT/NYUCAD/<split>/depth/NYU<id>_0000.png

Training frames get ids 1..frames, test frames the next ``test_frames`` ids; every id is its own room (seeded by
the run seed and the id), so test rooms are never seen in training.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ssc_core.data.nyu import (
    NYU_CLASS_TO_NYU37,
    NYU_DIMS,
    NYUTsdfPaths,
    write_nyu_bin,
    write_nyu_depth,
    write_nyu_label,
    write_nyu_mapping,
    write_nyu_tsdf,
)
from ssc_core.data.semantic_kitti import write_image
from ssc_core.data.synthetic.generate import claim_output
from ssc_core.data.synthetic.indoor import NYU_VOXEL_M, IndoorFrame, IndoorOptions, make_indoor_frame
from ssc_core.errors import ConfigError
from ssc_core.types import IGNORE_LABEL

MAX_FRAMES = 9999  # ids are 4 digits


@dataclass(frozen=True)
class SyntheticNYU:
    """Where a synthetic NYU run went: ``root`` (ROOT/NYU), ``cad_root`` (ROOT/NYUCAD) and the frame ids of each
    split."""

    root: Path
    cad_root: Path
    train_ids: tuple[str, ...]
    test_ids: tuple[str, ...]

    @property
    def paths(self) -> NYUTsdfPaths:
        """The reader's paths of this folder."""
        return NYUTsdfPaths(self.root, self.cad_root)


def frame_name(frame_id: str) -> str:
    """'0001' -> 'NYU0001_0000' (the name in split lists, depth PNGs and .bin files)."""
    return f"NYU{frame_id}_0000"


def labels_nyu37(frame: IndoorFrame) -> np.ndarray:
    """The frame's sub-voxel labels at 240 x 144 x 240 in 37-class NYU ids (255 kept) for the ``.bin`` file;
    coarser sub-voxels (subdivision 1 or 2) are repeated, which the x4 rule downsamples to the same target."""
    repeat = 240 // frame.labels_full.shape[0]
    full = frame.labels_full
    if repeat > 1:
        full = full.repeat(repeat, 0).repeat(repeat, 1).repeat(repeat, 2)
    lut = np.full(256, IGNORE_LABEL, dtype=np.uint8)
    lut[: len(NYU_CLASS_TO_NYU37)] = NYU_CLASS_TO_NYU37
    return lut[full]


def write_frame(out: SyntheticNYU, frame_id: str, split: str, frame: IndoorFrame) -> None:
    """Write every file of one frame (see the module docstring)."""
    paths = out.paths
    name = frame_name(frame_id)
    write_nyu_label(paths.label(frame_id), frame.labels)
    write_nyu_tsdf(paths.tsdf(frame_id), frame.noisy.tsdf, frame.label_weight())
    write_nyu_tsdf(paths.tsdf(frame_id, cad=True), frame.clean.tsdf, frame.label_weight(cad=True))
    write_nyu_mapping(paths.mapping(frame_id), frame.noisy.mapping)
    write_image(paths.rgb(frame_id, split), frame.rgb)
    write_nyu_depth(paths.depth(frame_id, split), frame.depth)
    write_nyu_depth(out.cad_root / split / "depth" / f"{name}.png", frame.depth_clean)
    monoscene = out.root / f"NYU{split}"
    write_nyu_bin(monoscene / f"{name}.bin", np.asarray(frame.grid.origin), frame.T_room_cam, labels_nyu37(frame))
    write_image(monoscene / f"{name}_color.jpg", frame.rgb)


def remove_stale(out: SyntheticNYU) -> list[Path]:
    """Delete the per-frame files of an earlier run that this run does not write (other ids, or ids now in the
    other split); returns the deleted paths."""
    every = set(out.train_ids) | set(out.test_ids)
    keep = {folder: every for folder in (out.root / "Label", out.root / "TSDF", out.root / "Mapping",
                                         out.cad_root / "TSDF")}
    for split, ids in (("train", set(out.train_ids)), ("test", set(out.test_ids))):
        for folder in (out.root / split / "RGB", out.root / split / "depth", out.cad_root / split / "depth",
                       out.root / f"NYU{split}"):
            keep[folder] = ids
    removed = []
    for folder, ids in keep.items():
        for path in sorted(folder.glob("*")):
            match = re.search(r"(\d{4})", path.name)
            if path.is_file() and match and match.group(1) not in ids:
                path.unlink()
                removed.append(path)
    return removed


def generate_nyu(output_root: str | Path, frames: int = 20, seed: int = 0, test_frames: int = 0,
                 options: IndoorOptions | None = None, progress: bool = False) -> SyntheticNYU:
    """Write ``frames`` training and ``test_frames`` test rooms to ``output_root`` (layout: module docstring).
    Same seed and options give identical bytes. A folder that an earlier synthetic run did not write is never
    touched (ConfigError); an earlier run's frames this run does not write are removed."""
    options = options or IndoorOptions()
    if frames < 1 or test_frames < 0 or frames + test_frames > MAX_FRAMES:
        raise ConfigError(f"need frames >= 1, test frames >= 0 and at most {MAX_FRAMES} in all, got {frames} "
                          f"and {test_frames}")
    if tuple(options.grid_dims) != NYU_DIMS or options.voxel_size != NYU_VOXEL_M:
        raise ConfigError(f"the NYU files hold a {NYU_DIMS} grid of {NYU_VOXEL_M} m, not {options.grid_dims} of "
                          f"{options.voxel_size} m")
    if options.subdivision not in (1, 2, 4):
        raise ConfigError(f"subdivision must be 1, 2 or 4 (of the 240 x 144 x 240 label grid), got "
                          f"{options.subdivision}")
    root = Path(output_root)
    out = SyntheticNYU(root / "NYU", root / "NYUCAD", tuple(f"{i:04d}" for i in range(1, frames + 1)),
                       tuple(f"{i:04d}" for i in range(frames + 1, frames + test_frames + 1)))
    claim_output(root, [out.root, out.cad_root])
    remove_stale(out)
    out.root.mkdir(parents=True, exist_ok=True)
    for split, ids in (("train", out.train_ids), ("test", out.test_ids)):
        (out.root / f"{split}.txt").write_text("".join(f"{frame_name(i)}\n" for i in ids))
    jobs = [("train", i) for i in out.train_ids] + [("test", i) for i in out.test_ids]
    for split, frame_id in tqdm(jobs, desc="synthetic NYU", unit="room", disable=not progress):
        write_frame(out, frame_id, split, make_indoor_frame(seed, int(frame_id), options))
    return out
