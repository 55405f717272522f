"""Dataset-level SSC evaluation: a dataset folder + a prediction folder -> the official numbers.

SemanticKITTI follows ``evaluate_completion.py`` of semantic-kitti-api exactly: every ``*.label`` in
``sequences/XX/voxels/`` of the split's sequences is evaluated against ``<pred>/sequences/XX/predictions/<same
name>``; ground truth AND predictions are RAW ids read as uint16 and remapped through the 359-entry LUT; the mask
is (remapped GT != 255) and (.invalid bit == 0); one 20x20 int64 confusion over the split. Differences from the
script are only in failure modes: a missing prediction, a wrong file size, a raw id beyond the LUT or a
prediction that remaps to 255 at a kept voxel raise ``EvaluationError`` naming the file (the script crashes).

SSCBench-KITTI-360 uses the same procedure on ``data_2d_raw/<drive>/voxels`` with its own LUT, one-byte
``.invalid`` and the SSCBench rule that labelled voxels are never invalid. NYU uses the SSCNet/CleanerS protocol
on the npz flavour and the MonoScene protocol (every voxel with label != 255) on the RLE ``.bin`` flavour.
Every file is read once; the confusion is built with ``np.bincount``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml
from tqdm import tqdm

from ssc_core.data.kitti360 import KITTI360, KITTI360_SPLITS, Kitti360Paths
from ssc_core.data.label_maps import SEMANTIC_KITTI, ClassSet, _bgr_to_rgb
from ssc_core.data.nyu import (
    NYU,
    NYU_DIMS,
    NYUMonoScenePaths,
    NYUTsdfPaths,
    nyu_target,
    read_nyu_bin,
    read_nyu_label,
    read_nyu_mapping,
    read_nyu_tsdf,
)
from ssc_core.data.semantic_kitti import VOXEL_DIMS, SequencePaths
from ssc_core.errors import ConfigError, SSCError
from ssc_core.evaluation.eval_range import (
    FULL_RANGE,
    benchmark_grid,
    check_eval_range,
    eval_range_mask,
    range_suffix,
)
from ssc_core.evaluation.metrics import NYUMetrics, SSCMetrics
from ssc_core.output_paths import ensure_output_dir
from ssc_core.types import IGNORE_LABEL

PathLike = str | Path

SEMANTIC_KITTI_SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("00", "01", "02", "03", "04", "05", "06", "07", "09", "10"),
    "valid": ("08",),
    "test": tuple(f"{s:02d}" for s in range(11, 22)),
}
DATASET_KINDS = ("semantic_kitti", "kitti360", "nyu")
_BEYOND_LUT = 254  # marks raw ids past the official LUT (the official script raises IndexError on them)


class EvaluationError(SSCError):
    """The dataset or prediction folder cannot be evaluated; the message names the files and the problem."""


@dataclass
class EvaluationResult:
    """Outcome of a dataset evaluation: ``metrics`` (see SSCMetrics.compute), the int64 ``confusion``
    (rows = prediction), the class set, the number of frames, the dataset kind, the protocol in words and
    the evaluated frame names."""

    metrics: dict
    confusion: np.ndarray
    class_set: ClassSet
    num_frames: int
    kind: str
    protocol: str = ""
    frames: list[str] = field(default_factory=list)
    eval_range: float = FULL_RANGE

    def scores(self) -> dict[str, float]:
        """The ``scores.txt`` mapping: ``iou_completion``, ``iou_mean`` and ``iou_<class name>`` for classes
        1..C-1 (the official keys); KITTI-360 and NYU add ``precision_completion`` and ``recall_completion``.
        At a short ``eval_range`` every name ends in the range (``iou_mean_25.6m``)."""
        out = {"iou_completion": self.metrics["iou"], "iou_mean": self.metrics["miou"]}
        for i, name in enumerate(self.class_set.names[1:], start=1):
            out[f"iou_{name}"] = self.metrics["iou_per_class"][i]
        if self.kind != "semantic_kitti":
            out["precision_completion"] = self.metrics["precision"]
            out["recall_completion"] = self.metrics["recall"]
        suffix = range_suffix(self.eval_range)
        return {f"{k}{suffix}": v for k, v in out.items()}


def write_scores(result: EvaluationResult, output_dir: PathLike) -> Path:
    """Write ``<output_dir>/scores.txt`` as YAML (keys sorted, block style, like the official tool)."""
    output_dir = ensure_output_dir(output_dir, "scores folder")
    path = output_dir / "scores.txt"
    with path.open("w") as handle:
        yaml.dump({k: float(v) for k, v in result.scores().items()}, handle, default_flow_style=False)
    return path


def class_set_from_datacfg(path: PathLike) -> tuple[ClassSet, dict[str, tuple[str, ...]]]:
    """Read an official-style data config (semantic-kitti.yaml: labels, color_map, learning_map,
    learning_map_inv, split): returns (ClassSet, {split: two-digit sequence ids})."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: data config not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    for key in ("labels", "learning_map", "learning_map_inv", "split"):
        if not isinstance(data, dict) or key not in data:
            raise ConfigError(f"{path}: missing '{key}' (an official semantic-kitti.yaml style config is needed)")
    inv = {int(k): int(v) for k, v in data["learning_map_inv"].items()}
    if sorted(inv) != list(range(len(inv))):
        raise ConfigError(f"{path}: learning_map_inv keys must be 0..N-1, got {sorted(inv)}")
    labels = {int(k): str(v) for k, v in data["labels"].items()}
    names = tuple("empty" if i == 0 else labels.get(inv[i], f"class_{i}") for i in range(len(inv)))
    color_map = {int(k): list(v) for k, v in data.get("color_map", {}).items()}
    colors = (
        _bgr_to_rgb(color_map, inv, len(inv))
        if all(inv[i] in color_map for i in inv)
        else np.zeros((len(inv), 3), dtype=np.uint8)
    )
    class_set = ClassSet(
        name=f"datacfg:{path.name}",
        names=names,
        colors_rgb=colors,
        learning_map={int(k): int(v) for k, v in data["learning_map"].items()},
        learning_map_inverse=inv,
    )
    splits = {name: tuple(f"{int(s):02d}" for s in seqs) for name, seqs in data["split"].items()}
    return class_set, splits


def eval_lut(class_set: ClassSet) -> np.ndarray:
    """(65536,) uint8 raw id -> train id: the official LUT (255 = ignore), and 254 for ids beyond its length."""
    official = class_set.remap_lut()
    lut = np.full(65536, _BEYOND_LUT, dtype=np.uint8)
    lut[: official.size] = official.astype(np.uint8)
    return lut


def _read_uint16(path: Path, count: int, what: str) -> np.ndarray:
    if not path.is_file():
        raise EvaluationError(f"{path}: {what} not found")
    size = path.stat().st_size
    if size != 2 * count:
        raise EvaluationError(f"{path}: {size} bytes, expected {2 * count} ({count} uint16 {what} values)")
    return np.fromfile(path, dtype="<u2")


def _read_invalid(path: Path, count: int, packed: bool) -> np.ndarray:
    """Flat uint8 0/1 invalid flags from a bit-packed (SemanticKITTI) or byte-per-voxel (KITTI-360, 1 = invalid)
    file."""
    if not path.is_file():
        raise EvaluationError(f"{path}: invalid-voxel file not found (it belongs beside the .label)")
    expected = (count + 7) // 8 if packed else count
    size = path.stat().st_size
    if size != expected:
        layout = "bit-packed" if packed else "one byte per voxel"
        raise EvaluationError(f"{path}: {size} bytes, expected {expected} ({layout} for {count} voxels)")
    raw = np.fromfile(path, dtype=np.uint8)
    if packed:
        return np.unpackbits(raw)[:count]
    return (raw == 1).view(np.uint8)


class _RawIdConfusion:
    """Accumulates a histogram of (raw prediction, raw GT) pairs over evaluated (not invalid) voxels with one
    ``np.bincount`` per frame, checks each frame against the LUT (naming the file), and remaps the small
    histogram to the train-id confusion once at the end. Equal to remapping every voxel first, as the
    official script does, because the LUT is applied per raw id either way."""

    def __init__(self, class_set: ClassSet) -> None:
        self.class_set = class_set
        self.lut = class_set.remap_lut()
        n = self.lut.size
        self.raw_hist = np.zeros((n, n), dtype=np.int64)  # rows: raw prediction, columns: raw ground truth
        self.scored_gt = self.lut != IGNORE_LABEL
        self.unscored_pred = self.lut == IGNORE_LABEL

    def add(self, pred_raw: np.ndarray, gt_raw: np.ndarray, invalid: np.ndarray, pred_path: Path, gt_path: Path):
        """Add one frame: flat uint16 raw ids of prediction and GT, flat uint8 0/1 invalid flags."""
        n = self.lut.size
        for raw, path, what in ((gt_raw, gt_path, "ground truth"), (pred_raw, pred_path, "prediction")):
            if raw.max(initial=0) >= n:
                bad = np.unique(raw[raw >= n])[:10].tolist()
                raise EvaluationError(
                    f"{path}: {what} raw ids {bad} are beyond the {self.class_set.name} label map (< {n})"
                )
        # column index = raw GT, shifted by n for invalid voxels (dropped below); branch-free and ~2x faster
        # than boolean masking on 2M voxels
        columns = np.multiply(invalid, n, dtype=np.uint16)
        columns += gt_raw
        codes = np.multiply(pred_raw, 2 * n, dtype=np.intp)
        codes += columns
        hist = np.bincount(codes, minlength=2 * n * n).reshape(n, 2 * n)[:, :n]
        wrong = hist[np.ix_(self.unscored_pred, self.scored_gt)].sum(axis=1)
        if wrong.any():
            ids = np.flatnonzero(self.unscored_pred)[wrong > 0][:10].tolist()
            raise EvaluationError(
                f"{pred_path}: {int(wrong.sum())} evaluated voxels hold raw ids {ids} that the "
                f"{self.class_set.name} label map sends to 255/unknown; predictions must be raw ids of scored "
                "classes (train ids through the inverse map), e.g. written with ssc_core.evaluation.writers"
            )
        self.raw_hist += hist

    def confusion(self) -> np.ndarray:
        """(C, C) int64 train-id confusion (rows = prediction) of everything added."""
        c = self.class_set.num_classes
        onehot_pred = np.zeros((self.lut.size, c), dtype=np.int64)
        rows = np.flatnonzero(~self.unscored_pred)
        onehot_pred[rows, self.lut[rows]] = 1
        onehot_gt = np.zeros((self.lut.size, c), dtype=np.int64)
        cols = np.flatnonzero(self.scored_gt)
        onehot_gt[cols, self.lut[cols]] = 1
        return onehot_pred.T @ self.raw_hist @ onehot_gt

    def result(self, kind: str, protocol: str, names: list[str], eval_range: float = FULL_RANGE) -> EvaluationResult:
        """The EvaluationResult of everything added."""
        metrics = SSCMetrics(self.class_set.num_classes)
        metrics.add_confusion(self.confusion())
        if eval_range != FULL_RANGE:
            protocol += f", within {eval_range:g} m (x < {eval_range:g}, |y| < {eval_range / 2:g})"
        return EvaluationResult(metrics.compute(), metrics.confusion, self.class_set, len(names), kind, protocol,
                                names, eval_range)


_TEST_SPLIT_HINT = (
    "; the SemanticKITTI test split has no public labels (score it on CodaLab: "
    "ssc_core.evaluation.writers.build_submission_zip)"
)


def _require_predictions(pairs: list[tuple[Path, Path]], where: str, hint: str = "") -> None:
    if not pairs:
        raise EvaluationError(f"no ground-truth files to evaluate in {where}{hint}")
    missing = [str(pred) for _, pred in pairs if not pred.is_file()]
    if missing:
        listed = "\n  ".join(missing[:20]) + (f"\n  ... and {len(missing) - 20} more" if len(missing) > 20 else "")
        raise EvaluationError(f"{len(missing)} prediction file(s) missing:\n  {listed}")


def _labelled_files(voxel_dir: Path) -> list[Path]:
    if not voxel_dir.is_dir():
        raise EvaluationError(f"{voxel_dir}: ground-truth voxel folder not found")
    return sorted(p for p in voxel_dir.iterdir() if p.name.endswith(".label"))


def _score_raw_id_frames(
    pairs: list[tuple[Path, Path]], class_set: ClassSet, kitti360_rules: bool, desc: str, progress: bool,
    dims: tuple[int, int, int], eval_range: float = FULL_RANGE,
) -> _RawIdConfusion:
    """Read each (GT .label, prediction) pair and its .invalid once and accumulate them. SemanticKITTI:
    bit-packed .invalid; KITTI-360 (``kitti360_rules``): one byte per voxel, ignored where the raw GT is not 0.
    Voxels outside ``eval_range`` (see ``ssc_core.evaluation.eval_range``) are left out like invalid ones."""
    count = int(np.prod(dims))
    outside = None
    if eval_range != FULL_RANGE:
        outside = (~eval_range_mask(benchmark_grid(dims), eval_range)).ravel().view(np.uint8)
    acc = _RawIdConfusion(class_set)
    for label, pred in tqdm(pairs, desc=desc, unit="frame", disable=not progress):
        pred_raw = _read_uint16(pred, count, "prediction")
        gt_raw = _read_uint16(label, count, "ground-truth label")
        invalid = _read_invalid(label.with_suffix(".invalid"), count, packed=not kitti360_rules)
        if kitti360_rules:
            invalid &= (gt_raw == 0).view(np.uint8)
        if outside is not None:
            invalid |= outside
        acc.add(pred_raw, gt_raw, invalid, pred, label)
    return acc


def evaluate_semantic_kitti(
    dataset: PathLike,
    predictions: PathLike | None = None,
    split: str = "valid",
    class_set: ClassSet = SEMANTIC_KITTI,
    splits: dict[str, tuple[str, ...]] | None = None,
    progress: bool = False,
    dims: tuple[int, int, int] = VOXEL_DIMS,
    eval_range: float = FULL_RANGE,
) -> EvaluationResult:
    """Evaluate ``<predictions>/sequences/XX/predictions/*.label`` (raw ids, uint16) against every
    ``<dataset>/sequences/XX/voxels/*.label`` of the split, as the official script. ``predictions``
    defaults to ``dataset``; ``splits`` overrides the official split table; ``dims`` is the grid of the files
    (the official format is 256x256x32; smaller grids serve synthetic test data); ``eval_range`` (metres) scores
    only the voxels within that range."""
    splits = splits or SEMANTIC_KITTI_SPLITS
    if split not in splits:
        raise EvaluationError(f"unknown split {split!r}; choose one of {sorted(splits)}")
    pred_root = Path(predictions) if predictions is not None else Path(dataset)
    pairs = []
    for seq in splits[split]:
        gt_paths = SequencePaths.of(dataset, seq)
        for label in _labelled_files(gt_paths.dir / "voxels"):
            pairs.append((label, SequencePaths.of(pred_root, seq).dir / "predictions" / label.name))
    _require_predictions(pairs, f"sequences {list(splits[split])} of {dataset}", _TEST_SPLIT_HINT)
    acc = _score_raw_id_frames(pairs, class_set, False, f"ssc-eval {split}", progress, tuple(dims), eval_range)
    names = [f"{p.parent.parent.name}/{p.stem}" for p, _ in pairs]
    return acc.result("semantic_kitti", "semantic-kitti-api evaluate_completion.py", names, eval_range)


def evaluate_kitti360(
    dataset: PathLike,
    predictions: PathLike | None = None,
    split: str = "valid",
    progress: bool = False,
    dims: tuple[int, int, int] = VOXEL_DIMS,
    eval_range: float = FULL_RANGE,
) -> EvaluationResult:
    """Evaluate SSCBench-KITTI-360: ``<predictions>/data_2d_raw/<drive>/predictions/*.label`` (raw ids, uint16)
    against every ``<dataset>/data_2d_raw/<drive>/voxels/*.label`` of the split (train 0000..0010 / valid 0006 /
    test 0009). Mask: remapped GT != 255 and not (invalid byte and raw label == 0), and within ``eval_range``;
    mIoU over classes 1..18."""
    if split not in KITTI360_SPLITS:
        raise EvaluationError(f"unknown split {split!r}; choose one of {sorted(KITTI360_SPLITS)}")
    pred_root = Path(predictions) if predictions is not None else Path(dataset)
    pairs = []
    for drive in KITTI360_SPLITS[split]:
        for label in _labelled_files(Kitti360Paths.of(dataset, drive).dir / "voxels"):
            pairs.append((label, Kitti360Paths.of(pred_root, drive).dir / "predictions" / label.name))
    _require_predictions(pairs, f"drives {list(KITTI360_SPLITS[split])} of {dataset}")
    acc = _score_raw_id_frames(pairs, KITTI360, True, f"ssc-eval kitti360 {split}", progress, tuple(dims),
                               eval_range)
    names = [f"{p.parent.parent.name}/{p.stem}" for p, _ in pairs]
    return acc.result("kitti360", "SSCBench: GT != 255, labelled voxels never invalid", names, eval_range)


def nyu_prediction_path(root: PathLike, name: str) -> Path:
    """Where a NYU prediction lives: ``<root>/predictions/<name>.label`` (uint16 train ids, 60*36*60 C order)."""
    return Path(root) / "predictions" / f"{name}.label"


def _read_nyu_prediction(path: Path) -> np.ndarray:
    pred = _read_uint16(path, int(np.prod(NYU_DIMS)), "prediction").astype(np.int64)
    if pred.max(initial=0) >= NYU.num_classes:
        raise EvaluationError(f"{path}: prediction id {int(pred.max())} is not a NYU class (0..{NYU.num_classes - 1})")
    return pred


def evaluate_nyu(
    dataset: PathLike,
    predictions: PathLike | None = None,
    split: str = "test",
    progress: bool = False,
    protocol: str | None = None,
) -> EvaluationResult:
    """Evaluate NYUv2 SSC with ``protocol`` 'sscnet' (SC on occluded voxels, SSC on label_weight > 0; needs the
    3D-Sketch/CleanerS files ``Label/`` + ``TSDF/`` + ``Mapping/``) or 'monoscene' (every voxel with label != 255;
    from ``Label/`` or from the MonoScene ``NYU<split>/*.bin`` files). None: sscnet where the npz files exist, else
    monoscene. ``dataset`` may also be a folder holding ``NYU/`` (ssc-make-synthetic --layout nyu). 'valid' means
    'test' (NYU has no separate val set). Predictions: ``<predictions>/predictions/<id or scene name>.label``,
    uint16 train ids 0..11."""
    from ssc_core.evaluation.scorers import PROTOCOLS

    split = "test" if split == "valid" else split
    root = Path(dataset)
    if not (root / "Label").is_dir() and (root / "NYU").is_dir():
        root = root / "NYU"
    if protocol not in (None, "sscnet", "monoscene"):
        raise EvaluationError(f"NYU protocol must be 'sscnet' or 'monoscene', got {protocol!r}")
    pred_root = Path(predictions) if predictions is not None else root
    if (root / "Label").is_dir():
        protocol = protocol or "sscnet"
        paths = NYUTsdfPaths(root)
        names = paths.frame_ids(split)
        pairs = [(paths.label(n), nyu_prediction_path(pred_root, n)) for n in names]
        _require_predictions(pairs, f"{root} ({split})")
        nyu_metrics = NYUMetrics(NYU.num_classes)
        for name in tqdm(names, desc=f"ssc-eval nyu {split}", unit="scene", disable=not progress):
            pred = _read_nyu_prediction(nyu_prediction_path(pred_root, name))
            labels = read_nyu_label(paths.label(name))
            if protocol == "sscnet":
                _, weight = read_nyu_tsdf(paths.tsdf(name))
                nyu_metrics.add(pred, labels, weight, read_nyu_mapping(paths.mapping(name)))
            else:
                nyu_metrics.ssc.add(pred, labels.ravel())
        if protocol == "sscnet":
            confusion, metrics = nyu_metrics.ssc.confusion.copy(), nyu_metrics.compute()
        else:
            confusion, metrics = nyu_metrics.ssc.confusion.copy(), nyu_metrics.ssc.compute()
    elif NYUMonoScenePaths(root).split_dir(split).is_dir():
        if protocol == "sscnet":
            raise EvaluationError(f"{root}: the sscnet protocol needs Label/, TSDF/ and Mapping/ (label_weight and "
                                  "the mapping); the MonoScene .bin files support --nyu-protocol monoscene only")
        protocol = "monoscene"
        paths = NYUMonoScenePaths(root)
        names = paths.names(split)
        pairs = [(paths.scene(split, n), nyu_prediction_path(pred_root, n)) for n in names]
        _require_predictions(pairs, f"{paths.split_dir(split)}")
        ssc = SSCMetrics(NYU.num_classes)
        for scene, pred_path in tqdm(pairs, desc=f"ssc-eval nyu {split}", unit="scene", disable=not progress):
            pred = _read_nyu_prediction(pred_path)
            ssc.add(pred, nyu_target(read_nyu_bin(scene)[2]).ravel())
        confusion = ssc.confusion.copy()
        metrics = ssc.compute()
    else:
        raise EvaluationError(
            f"{root}: not a NYU SSC folder (expected Label/, TSDF/, Mapping/ or NYU{split}/*.bin)"
        )
    return EvaluationResult(metrics, confusion, NYU, len(names), "nyu", PROTOCOLS[protocol], list(names))


def evaluate(
    kind: str,
    dataset: PathLike,
    predictions: PathLike | None = None,
    split: str = "valid",
    datacfg: PathLike | None = None,
    progress: bool = False,
    dims: tuple[int, int, int] | None = None,
    sequences: list[str] | None = None,
    nyu_protocol: str | None = None,
    eval_range: float = FULL_RANGE,
) -> EvaluationResult:
    """Evaluate a dataset of ``kind`` in DATASET_KINDS; ``datacfg`` (SemanticKITTI only) replaces the built-in
    label maps and split table with an official-style YAML; ``dims`` overrides the 256x256x32 grid of the
    KITTI kinds (NYU's grid is fixed at 60x36x60); ``sequences`` (SemanticKITTI only) evaluates exactly these
    sequences instead of the split's (one confusion matrix over all of them, as for a split); ``nyu_protocol``
    (NYU only) 'sscnet' or 'monoscene' (``evaluate_nyu``); ``eval_range`` (one of 51.2, 25.6, 12.8 m; KITTI kinds
    only) scores the voxels within that range."""
    eval_range = check_eval_range(eval_range, "--eval-range")
    if nyu_protocol is not None and kind != "nyu":
        raise EvaluationError(f"--nyu-protocol applies to --dataset-kind nyu, not {kind!r}")
    if sequences and kind != "semantic_kitti":
        raise EvaluationError(f"explicit sequences are supported for semantic_kitti only, not {kind!r}")
    if eval_range != FULL_RANGE and kind == "nyu":
        raise EvaluationError("--eval-range applies to the outdoor (SemanticKITTI / KITTI-360) grids, not NYU")
    if kind == "semantic_kitti":
        class_set, splits = class_set_from_datacfg(datacfg) if datacfg else (SEMANTIC_KITTI, None)
        if sequences:
            names = [f"{int(q):02d}" if str(q).isdigit() else str(q) for q in sequences]
            split, splits = "sequences", {"sequences": tuple(names)}
        return evaluate_semantic_kitti(dataset, predictions, split, class_set, splits, progress, dims or VOXEL_DIMS,
                                       eval_range)
    if kind == "kitti360":
        return evaluate_kitti360(dataset, predictions, split, progress, dims or VOXEL_DIMS, eval_range)
    if kind == "nyu":
        if dims is not None and tuple(dims) != NYU_DIMS:
            raise EvaluationError(f"NYU's grid is {NYU_DIMS}; --grid-dims {tuple(dims)} does not apply")
        return evaluate_nyu(dataset, predictions, split, progress, nyu_protocol)
    raise EvaluationError(f"unknown dataset kind {kind!r}; choose one of {DATASET_KINDS}")

