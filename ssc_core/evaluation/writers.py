"""Prediction files in the layouts ``ssc-eval`` / the official tools read, and the CodaLab submission zip.

- SemanticKITTI: ``<root>/sequences/XX/predictions/NNNNNN.label``, RAW ids (train ids through the inverse map),
  uint16 little-endian, 256 x 256 x 32 in [x][y][z] C order.
- SSCBench-KITTI-360: ``<root>/data_2d_raw/<drive>/predictions/NNNNNN.label``, same encoding with its own map.
- NYU: ``<root>/predictions/<id or scene name>.label``, uint16 train ids 0..11, 60 x 36 x 60 C order.

The submission zip follows ``validate_submission.py --task completion``: directory entries ``sequences/``,
``sequences/XX/``, ``sequences/XX/predictions/`` for XX = 11..21, one prediction per ``voxels/*.bin`` of the test
sequences with exactly 2,097,152 uint16 values, an optional top-level ``description.txt`` and nothing else.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ssc_core.data.kitti360 import KITTI360, Kitti360Paths
from ssc_core.data.label_maps import SEMANTIC_KITTI, ClassSet
from ssc_core.data.nyu import NYU, NYU_DIMS
from ssc_core.data.semantic_kitti import VOXEL_DIMS, SequencePaths
from ssc_core.errors import DataFormatError, SSCError
from ssc_core.evaluation.official import SEMANTIC_KITTI_SPLITS, eval_lut, nyu_prediction_path

PathLike = str | Path
_LAYOUTS = {SEMANTIC_KITTI.name: "semantic_kitti", KITTI360.name: "kitti360", NYU.name: "nyu"}
DESCRIPTION_KEYS = ("name", "pdf url", "code url")


class SubmissionError(SSCError):
    """A submission zip (or the predictions it is built from) breaks a rule of the benchmark server."""


def prediction_path(
    root: PathLike, sequence: str | int, frame: int | str, class_set: ClassSet = SEMANTIC_KITTI
) -> Path:
    """Path of one prediction file for the class set's dataset (sequence = drive for KITTI-360, unused for NYU;
    frame = the frame number, or the scene id/name for NYU)."""
    layout = _LAYOUTS.get(class_set.name, "semantic_kitti")
    if layout == "kitti360":
        return Kitti360Paths.of(root, sequence).prediction(int(frame))
    if layout == "nyu":
        return nyu_prediction_path(root, str(frame))
    return SequencePaths.of(root, sequence).prediction(int(frame))


def train_to_raw(labels: np.ndarray, class_set: ClassSet = SEMANTIC_KITTI) -> np.ndarray:
    """Train ids (any shape, 0..C-1) -> raw ids (uint16) through the class set's inverse map."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= class_set.num_classes):
        bad = int(labels.max() if labels.max() >= class_set.num_classes else labels.min())
        top = class_set.num_classes - 1
        raise DataFormatError(f"prediction holds train id {bad}; {class_set.name} has ids 0..{top}")
    return class_set.inverse_lut()[labels.astype(np.int64)]


def write_prediction(
    root: PathLike, sequence: str | int, frame: int | str, labels: np.ndarray, class_set: ClassSet = SEMANTIC_KITTI
) -> Path:
    """Write (X, Y, Z) train-id predictions of one frame in the official layout (raw ids, uint16); returns the
    path. The shape must be the benchmark's grid (256x256x32, or 60x36x60 for NYU)."""
    dims = NYU_DIMS if _LAYOUTS.get(class_set.name) == "nyu" else VOXEL_DIMS
    labels = np.asarray(labels)
    if labels.shape != dims:
        raise DataFormatError(f"{class_set.name} predictions must have shape {dims}, got {labels.shape}")
    path = prediction_path(root, sequence, frame, class_set)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.ascontiguousarray(train_to_raw(labels, class_set)).astype("<u2").tofile(path)
    return path


def _required_frames(dataset: PathLike, sequences: tuple[str, ...]) -> dict[str, list[str]]:
    """{sequence: prediction names} = one ``NNNNNN.label`` per ``voxels/*.bin`` of each test sequence."""
    frames = {}
    for seq in sequences:
        voxel_dir = SequencePaths.of(dataset, seq).dir / "voxels"
        if not voxel_dir.is_dir():
            raise SubmissionError(f"{voxel_dir}: test input folder not found (needed to list the frames)")
        frames[seq] = sorted(p.stem + ".label" for p in voxel_dir.iterdir() if p.name.endswith(".bin"))
    return frames


def _description_text(description: dict[str, str]) -> str:
    unknown = set(description) - set(DESCRIPTION_KEYS)
    if unknown:
        raise SubmissionError(f"description keys {sorted(unknown)} are not allowed; use {DESCRIPTION_KEYS}")
    return "".join(f"{key}: {description[key]}\n" for key in DESCRIPTION_KEYS if key in description)


def build_submission_zip(
    predictions: PathLike,
    dataset: PathLike,
    zip_path: PathLike,
    description: dict[str, str] | None = None,
    sequences: tuple[str, ...] = SEMANTIC_KITTI_SPLITS["test"],
) -> Path:
    """Zip ``<predictions>/sequences/XX/predictions/*.label`` for the test sequences into a CodaLab SSC
    submission, checking first that every test frame (``<dataset>/sequences/XX/voxels/*.bin``) has a prediction
    of exactly 4,194,304 bytes holding only raw ids the benchmark scores (their train id is not 255).
    ``description`` may give 'name', 'pdf url', 'code url'. Returns the zip path; raises SubmissionError."""
    zip_path = Path(zip_path)
    if zip_path.suffix != ".zip":
        raise SubmissionError(f"{zip_path}: a submission bundle must end with .zip")
    lut = eval_lut(SEMANTIC_KITTI)
    count = int(np.prod(VOXEL_DIMS))
    frames = _required_frames(dataset, sequences)
    problems = []
    for seq, names in frames.items():
        for name in names:
            path = SequencePaths.of(predictions, seq).dir / "predictions" / name
            if not path.is_file():
                problems.append(f"{path}: missing")
                continue
            if path.stat().st_size != 2 * count:
                problems.append(f"{path}: {path.stat().st_size} bytes, expected {2 * count}")
                continue
            values = np.fromfile(path, dtype="<u2")
            unscored = np.unique(values[lut[values] >= SEMANTIC_KITTI.num_classes])
            if unscored.size:
                problems.append(f"{path}: raw ids {unscored[:10].tolist()} are not scored classes")
    if problems:
        shown = "\n  ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise SubmissionError(f"{len(problems)} problem(s) with the predictions:\n  {shown}")
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("sequences/", b"")
        for seq, names in frames.items():
            bundle.writestr(f"sequences/{seq}/", b"")
            bundle.writestr(f"sequences/{seq}/predictions/", b"")
            for name in names:
                source = SequencePaths.of(predictions, seq).dir / "predictions" / name
                bundle.write(source, f"sequences/{seq}/predictions/{name}")
        if description:
            bundle.writestr("description.txt", _description_text(description))
    return zip_path


def validate_submission_zip(
    zip_path: PathLike, dataset: PathLike, sequences: tuple[str, ...] = SEMANTIC_KITTI_SPLITS["test"]
) -> int:
    """Check a submission zip by the rules of ``validate_submission.py --task completion``: directory entries,
    one prediction of 2,097,152 uint16 values per test ``voxels/*.bin``, no other file but ``description.txt``.
    Returns the number of predictions; raises SubmissionError naming the first broken rule."""
    zip_path = Path(zip_path)
    if zip_path.suffix != ".zip":
        raise SubmissionError(f"{zip_path}: a submission bundle must end with .zip")
    if not zip_path.is_file():
        raise SubmissionError(f"{zip_path}: file not found")
    frames = _required_frames(dataset, sequences)
    with zipfile.ZipFile(zip_path) as bundle:
        infos = bundle.infolist()
    directories = {i.filename for i in infos if i.filename.endswith("/")}
    files = {i.filename: i for i in infos if not i.filename.endswith("/") and i.filename != "description.txt"}
    for needed in ["sequences/"] + [d for s in sequences for d in (f"sequences/{s}/", f"sequences/{s}/predictions/")]:
        if needed not in directories:
            raise SubmissionError(f"{zip_path}: directory entry {needed!r} missing")
    required = {f"sequences/{seq}/predictions/{name}" for seq, names in frames.items() for name in names}
    for name in sorted(required):
        if name not in files:
            raise SubmissionError(f"{zip_path}: {name!r} is missing")
        if files[name].file_size != 2 * int(np.prod(VOXEL_DIMS)):
            raise SubmissionError(
                f"{zip_path}: {name!r} has {files[name].file_size // 2} labels, expected {int(np.prod(VOXEL_DIMS))}"
            )
    extra = sorted(set(files) - required)
    if extra:
        raise SubmissionError(f"{zip_path}: unneeded files, e.g. {extra[:10]}")
    return len(required)
