"""ssc-eval against an independent per-frame re-statement of evaluate_completion.py, its errors, scores.txt,
the prediction writer and the submission zip."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from ssc_core.cli.evaluate import main as ssc_eval
from ssc_core.data.kitti360 import (
    Kitti360Paths,
    write_kitti360_invalid,
    write_kitti360_labels,
)
from ssc_core.data.label_maps import SEMANTIC_KITTI_LEARNING_MAP
from ssc_core.data.nyu import (
    NYU_DIMS,
    write_nyu_bin,
    write_nyu_label,
    write_nyu_mapping,
    write_nyu_tsdf,
)
from ssc_core.data.semantic_kitti import SequencePaths, write_packed_bits, write_voxel_labels
from ssc_core.evaluation.official import evaluate_kitti360, evaluate_nyu, evaluate_semantic_kitti
from ssc_core.evaluation.writers import (
    SubmissionError,
    build_submission_zip,
    validate_submission_zip,
    write_prediction,
)

DIMS = (256, 256, 32)
OFFICIAL_CLASS_NAMES = (
    "car", "bicycle", "motorcycle", "truck", "other-vehicle", "person", "bicyclist", "motorcyclist", "road",
    "parking", "sidewalk", "other-ground", "building", "fence", "vegetation", "trunk", "terrain", "pole",
    "traffic-sign",
)
# raw ids a prediction may hold at an evaluated voxel: everything the LUT maps to 0..19
SCORED_RAW_IDS = np.array([0, 10, 11, 13, 15, 16, 18, 20, 30, 31, 32, 40, 44, 48, 49, 50, 51, 60, 70, 71, 72, 80, 81,
                           252, 253, 254, 255, 256, 257, 258, 259])


# ------------------------------------------------------------------ independent reference of the official script
# SGN / VoxFormer's eval_range: the target is set to 255 outside these index boxes of the 256 x 256 x 32 grid
EVAL_RANGE_BOXES = {25.6: (slice(0, 128), slice(64, 192)), 12.8: (slice(0, 64), slice(96, 160))}


def official_reference(dataset: Path, predictions: Path, sequences: list[str],
                       eval_range: float | None = None) -> dict[str, float]:
    """Straightforward per-frame evaluation written from the protocol description: listdir of every .label,
    re-read per frame, shift-based MSB-first unpacking, np.add.at into a 20x20 int64 confusion; with
    ``eval_range`` only the voxels of its EVAL_RANGE_BOXES box count."""
    lut = np.zeros(max(SEMANTIC_KITTI_LEARNING_MAP) + 100, dtype=np.int32)
    for raw, train in SEMANTIC_KITTI_LEARNING_MAP.items():
        lut[raw] = train
    lut[lut == 0] = 255
    lut[0] = 0
    conf = np.zeros((20, 20), dtype=np.int64)
    for seq in sequences:
        voxel_dir = os.path.join(dataset, "sequences", seq, "voxels")
        for name in os.listdir(voxel_dir):
            if not name.endswith(".label"):
                continue
            pred = np.fromfile(os.path.join(predictions, "sequences", seq, "predictions", name), dtype=np.uint16)
            gt = np.fromfile(os.path.join(voxel_dir, name), dtype=np.uint16)
            packed = np.fromfile(os.path.join(voxel_dir, name[: -len(".label")] + ".invalid"), dtype=np.uint8)
            invalid = np.zeros(packed.size * 8, dtype=np.uint8)
            for bit in range(8):
                invalid[bit::8] = (packed >> (7 - bit)) & 1
            pred, gt = lut[pred], lut[gt]
            if eval_range is not None:
                inside = np.zeros(DIMS, dtype=bool)
                inside[EVAL_RANGE_BOXES[eval_range]] = True
                gt = np.where(inside.ravel(), gt, 255)
            keep = (gt != 255) & (invalid != 1)
            np.add.at(conf, (pred[keep], gt[keep]), 1)
    tp = np.diag(conf)
    iou = tp / (tp + (conf.sum(axis=1) - tp) + (conf.sum(axis=0) - tp) + 1e-15)
    scores = {
        "iou_completion": float(conf[1:, 1:].sum() / (conf.sum() - conf[0, 0])),
        "iou_mean": float(iou[1:].mean()),
    }
    scores.update({f"iou_{name}": float(iou[i + 1]) for i, name in enumerate(OFFICIAL_CLASS_NAMES)})
    return scores


def make_semantic_kitti_folder(root: Path, sequence: str, frames: list[int], seed: int) -> None:
    """Write GT (.label with scored, ignored and unknown raw ids; .invalid) and raw-id predictions (scored ids at
    evaluated voxels, anything below the LUT size at ignored voxels) for the given frames."""
    rng = np.random.default_rng(seed)
    gt_ids = np.array([0] * 30 + sorted(SEMANTIC_KITTI_LEARNING_MAP) + [2, 7, 100, 300])
    lut = np.zeros(359, dtype=np.int32)
    for raw, train in SEMANTIC_KITTI_LEARNING_MAP.items():
        lut[raw] = train if train or raw == 0 else 255
    lut[[2, 7, 100, 300]] = 255
    paths = SequencePaths.of(root, sequence)
    for frame in frames:
        gt = rng.choice(gt_ids, size=DIMS).astype(np.uint16)
        invalid = rng.random(DIMS) < 0.25
        pred = rng.choice(SCORED_RAW_IDS, size=DIMS, p=None).astype(np.uint16)
        ignored = (lut[gt] == 255) | invalid
        pred[ignored & (rng.random(DIMS) < 0.5)] = 1  # outlier: remaps to 255, allowed where GT is ignored
        same = rng.random(DIMS) < 0.4
        pred[same & ~ignored] = gt[same & ~ignored]
        write_voxel_labels(paths.voxel(frame, "label"), gt)
        write_packed_bits(paths.voxel(frame, "invalid"), invalid)
        pred.astype("<u2").tofile(_mkparent(paths.prediction(frame)))


def _mkparent(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def kitti_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("semantic_kitti")
    make_semantic_kitti_folder(root, "08", [0, 5, 10, 15], seed=1)
    make_semantic_kitti_folder(root, "00", [0], seed=2)  # a train frame that 'valid' must not read
    return root


# --------------------------------------------------------------------------------------------- ssc-eval
def test_ssc_eval_matches_the_per_frame_official_procedure(kitti_folder, tmp_path, capsys):
    assert ssc_eval(["-d", str(kitti_folder), "-s", "valid", "--output", str(tmp_path), "--no-progress"]) == 0
    scores = yaml.safe_load((tmp_path / "scores.txt").read_text())
    reference = official_reference(kitti_folder, kitti_folder, ["08"])
    assert set(scores) == set(reference)
    for key, value in reference.items():
        assert abs(scores[key] - value) <= 1e-9, key
    assert 0.05 < scores["iou_mean"] < 0.95  # the data is neither trivial nor hopeless
    out = capsys.readouterr().out
    assert "4 frame(s)" in out and "traffic-sign" in out


@pytest.mark.parametrize("eval_range", [25.6, 12.8])
def test_eval_range_scores_the_sgn_box_under_names_that_say_the_range(kitti_folder, tmp_path, eval_range, capsys):
    assert ssc_eval(["-d", str(kitti_folder), "-s", "valid", "--output", str(tmp_path), "--no-progress",
                     "--eval-range", str(eval_range)]) == 0
    scores = yaml.safe_load((tmp_path / "scores.txt").read_text())
    reference = official_reference(kitti_folder, kitti_folder, ["08"], eval_range)
    assert set(scores) == {f"{k}_{eval_range}m" for k in reference}
    for key, value in reference.items():
        assert abs(scores[f"{key}_{eval_range}m"] - value) <= 1e-9, key
    assert f"within {eval_range} m" in capsys.readouterr().out
    full = official_reference(kitti_folder, kitti_folder, ["08"])
    assert scores[f"iou_mean_{eval_range}m"] != full["iou_mean"]


def test_eval_range_full_is_the_standard_protocol_and_other_values_are_refused(kitti_folder, tmp_path, capsys):
    assert ssc_eval(["-d", str(kitti_folder), "--output", str(tmp_path), "--no-progress", "--eval-range",
                     "51.2"]) == 0
    assert set(yaml.safe_load((tmp_path / "scores.txt").read_text())) == set(
        official_reference(kitti_folder, kitti_folder, ["08"]))
    with pytest.raises(SystemExit):
        ssc_eval(["-d", str(kitti_folder), "--output", str(tmp_path), "--eval-range", "30"])
    assert "invalid choice" in capsys.readouterr().err
    assert ssc_eval(["-d", str(tmp_path), "--dataset-kind", "nyu", "--output", str(tmp_path), "--eval-range",
                     "25.6"]) == 2
    assert "NYU" in capsys.readouterr().err


def test_hand_computed_frame_with_msb_first_invalid_bit(tmp_path):
    paths = SequencePaths.of(tmp_path, "08")
    gt = np.zeros(DIMS, dtype=np.uint16)
    pred = np.zeros(DIMS, dtype=np.uint16)
    gt[0, 0, 0], pred[0, 0, 0] = 10, 0  # car missed, but voxel 0 is invalid: not counted
    gt[0, 0, 1], pred[0, 0, 1] = 40, 40  # road hit
    gt[0, 0, 2], pred[0, 0, 2] = 52, 10  # other-structure -> ignored: not counted
    gt[0, 0, 3], pred[0, 0, 3] = 0, 10  # car hallucinated in empty space
    write_voxel_labels(paths.voxel(0, "label"), gt)
    packed = np.zeros(DIMS[0] * DIMS[1] * DIMS[2] // 8, dtype=np.uint8)
    packed[0] = 0x80  # MSB of byte 0 = voxel (0, 0, 0)
    packed.tofile(paths.voxel(0, "invalid"))
    pred.astype("<u2").tofile(_mkparent(paths.prediction(0)))
    result = evaluate_semantic_kitti(tmp_path)
    assert result.confusion[9, 9] == 1 and result.confusion[1, 0] == 1 and result.confusion[:, 1].sum() == 0
    assert result.confusion[0, 0] == 256 * 256 * 32 - 4
    assert result.metrics["iou"] == 0.5  # TP 1 (road) / (2 occupied in pred or GT)
    assert result.metrics["iou_per_class"][9] == pytest.approx(1.0) and result.metrics["iou_per_class"][1] == 0.0
    assert result.metrics["miou"] == pytest.approx(1 / 19, abs=1e-14)
    assert result.metrics["precision"] == pytest.approx(0.5) and result.metrics["recall"] == pytest.approx(1.0)


def test_scores_txt_has_exactly_the_official_keys(kitti_folder, tmp_path):
    assert ssc_eval(["-d", str(kitti_folder), "-p", str(kitti_folder), "--output", str(tmp_path), "--no-progress"]) == 0
    text = (tmp_path / "scores.txt").read_text()
    keys = [line.split(":")[0] for line in text.splitlines()]
    expected = ["iou_completion", "iou_mean"] + [f"iou_{n}" for n in OFFICIAL_CLASS_NAMES]
    assert keys == sorted(expected)  # yaml.dump sorts keys, as the official tool's output


def test_split_table_picks_the_sequences_and_a_missing_one_is_named(kitti_folder):
    from ssc_core.evaluation.official import EvaluationError

    with pytest.raises(EvaluationError, match="sequences/01/voxels: ground-truth voxel folder not found"):
        evaluate_semantic_kitti(kitti_folder, split="train")  # the official train split needs 00..10 but 08
    result = evaluate_semantic_kitti(kitti_folder, split="train", splits={"train": ("00",)})
    reference = official_reference(kitti_folder, kitti_folder, ["00"])
    assert result.num_frames == 1
    assert result.metrics["iou"] == pytest.approx(reference["iou_completion"], abs=1e-12)


def test_explicit_sequences_replace_the_split_and_score_all_of_them_together(kitti_folder, tmp_path, capsys):
    out = tmp_path / "scores"
    assert ssc_eval(["-d", str(kitti_folder), "--sequences", "0", "8", "--output", str(out), "--no-progress"]) == 0
    scores = yaml.safe_load((out / "scores.txt").read_text())
    reference = official_reference(kitti_folder, kitti_folder, ["00", "08"])
    for key, value in reference.items():
        assert abs(scores[key] - value) <= 1e-9, key
    assert "5 frame(s)" in capsys.readouterr().out
    assert ssc_eval(["--dataset-kind", "nyu", "-d", str(kitti_folder), "--sequences", "08"]) == 2
    assert "semantic_kitti only" in capsys.readouterr().err


def test_missing_prediction_is_a_clear_error(tmp_path, capsys):
    make_semantic_kitti_folder(tmp_path / "ds", "08", [0, 5], seed=3)
    missing = SequencePaths.of(tmp_path / "ds", "08").prediction(5)
    missing.unlink()
    assert ssc_eval(["-d", str(tmp_path / "ds"), "--output", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: 1 prediction file(s) missing") and str(missing) in err
    assert not (tmp_path / "scores.txt").exists()


def test_prediction_in_train_ids_is_rejected_naming_the_file(tmp_path, capsys):
    make_semantic_kitti_folder(tmp_path / "ds", "08", [0], seed=4)
    gt = np.fromfile(SequencePaths.of(tmp_path / "ds", "08").voxel(0, "label"), dtype=np.uint16)
    pred_path = SequencePaths.of(tmp_path / "ds", "08").prediction(0)
    train_ids = np.where(gt == 10, 1, 0).astype("<u2")  # 'car' written as train id 1 = raw 'outlier' -> 255
    train_ids.tofile(pred_path)
    assert ssc_eval(["-d", str(tmp_path / "ds"), "--output", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert str(pred_path) in err and "raw ids [1]" in err


def test_truncated_prediction_and_missing_invalid_are_clear_errors(tmp_path, capsys):
    make_semantic_kitti_folder(tmp_path / "ds", "08", [0], seed=5)
    paths = SequencePaths.of(tmp_path / "ds", "08")
    paths.prediction(0).write_bytes(b"\0" * 100)
    assert ssc_eval(["-d", str(tmp_path / "ds"), "--output", str(tmp_path), "--no-progress"]) == 2
    assert "100 bytes, expected 4194304" in capsys.readouterr().err
    np.zeros(DIMS, dtype="<u2").tofile(paths.prediction(0))
    paths.voxel(0, "invalid").unlink()
    assert ssc_eval(["-d", str(tmp_path / "ds"), "--output", str(tmp_path), "--no-progress"]) == 2
    assert "000000.invalid: invalid-voxel file not found" in capsys.readouterr().err


def test_datacfg_replaces_split_table(kitti_folder, tmp_path):
    cfg = {
        "labels": {0: "unlabeled", 10: "car"},
        "learning_map": {0: 0, 10: 1},
        "learning_map_inv": {0: 0, 1: 10},
        "learning_ignore": {0: True, 1: False},
        "split": {"train": [8], "valid": [0], "test": []},
    }
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    assert ssc_eval(["-d", str(kitti_folder), "-dc", str(tmp_path / "cfg.yaml"), "-s", "train",
                     "--output", str(tmp_path), "--no-progress"]) == 2  # predictions hold ids this map ignores
    result_keys = {"iou_completion", "iou_mean", "iou_car"}
    gt_dir = tmp_path / "one"
    paths = SequencePaths.of(gt_dir, "08")
    labels = np.zeros(DIMS, dtype=np.uint16)
    labels[0, 0, :4] = 10
    write_voxel_labels(paths.voxel(0, "label"), labels)
    write_packed_bits(paths.voxel(0, "invalid"), np.zeros(DIMS, bool))
    labels.astype("<u2").tofile(_mkparent(paths.prediction(0)))
    assert ssc_eval(["-d", str(gt_dir), "-dc", str(tmp_path / "cfg.yaml"), "-s", "train",
                     "--output", str(tmp_path), "--no-progress"]) == 0
    scores = yaml.safe_load((tmp_path / "scores.txt").read_text())
    assert set(scores) == result_keys and scores["iou_car"] == pytest.approx(1.0)


def test_split_without_labels_is_a_clear_error(tmp_path, capsys):
    for seq in range(11, 22):  # test sequences hold inputs (.bin) only
        write_packed_bits(SequencePaths.of(tmp_path, seq).voxel(0, "bin"), np.zeros(DIMS, bool))
    assert ssc_eval(["-d", str(tmp_path), "-s", "test", "--output", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "no ground-truth files to evaluate" in err and "CodaLab" in err


def test_grid_dims_scores_small_grids_of_synthetic_data(tmp_path, capsys):
    small = (16, 16, 8)
    paths = SequencePaths.of(tmp_path, "08")
    gt = np.zeros(small, dtype=np.uint16)
    gt[:4, :, 0] = 40  # road
    gt[5:7, 5:7, 1:3] = 10  # car
    gt[10, 10, 5] = 52  # ignored class
    write_voxel_labels(paths.voxel(0, "label"), gt)
    write_packed_bits(paths.voxel(0, "invalid"), np.zeros(small, bool))
    np.where(gt == 52, 0, gt).astype("<u2").tofile(_mkparent(paths.prediction(0)))
    assert ssc_eval(["-d", str(tmp_path), "--output", str(tmp_path), "--no-progress"]) == 2
    assert "expected 4194304" in capsys.readouterr().err  # the official size is the default
    assert ssc_eval(["-d", str(tmp_path), "--grid-dims", "16", "16", "8", "--output", str(tmp_path),
                     "--no-progress"]) == 0
    scores = yaml.safe_load((tmp_path / "scores.txt").read_text())
    assert scores["iou_completion"] == 1.0 and scores["iou_road"] == pytest.approx(1.0)
    assert scores["iou_mean"] == pytest.approx(2 / 19)


def test_help_lists_the_official_flags():
    out = subprocess.run([sys.executable, "-m", "ssc_core.cli.evaluate", "--help"], capture_output=True, text=True,
                         check=True).stdout
    for flag in ("--dataset", "--predictions", "--split", "--datacfg", "--output", "--dataset-kind"):
        assert flag in out


# ------------------------------------------------------------------------------------- KITTI-360 and NYU
def test_kitti360_evaluation_follows_the_sscbench_mask(tmp_path):
    rng = np.random.default_rng(6)
    conf = np.zeros((19, 19), dtype=np.int64)
    from ssc_core.data.kitti360 import KITTI360_LEARNING_MAP

    lut = np.zeros(359, dtype=np.int64)
    for raw, train in KITTI360_LEARNING_MAP.items():
        lut[raw] = train if train or raw == 0 else 255
    scored = np.array([r for r in range(359) if lut[r] != 255 and (r in KITTI360_LEARNING_MAP)])
    for frame in (0, 5):
        paths = Kitti360Paths.of(tmp_path, 6)
        gt = rng.choice(np.array([0] * 20 + sorted(KITTI360_LEARNING_MAP)), size=DIMS).astype(np.uint16)
        invalid = rng.random(DIMS) < 0.5
        pred = rng.choice(scored, size=DIMS).astype(np.uint16)
        write_kitti360_labels(paths.voxel(frame, "label"), gt)
        write_kitti360_invalid(paths.voxel(frame, "invalid"), invalid)
        pred.astype("<u2").tofile(_mkparent(paths.prediction(frame)))
        keep = (lut[gt] != 255) & ~(invalid & (gt == 0))
        np.add.at(conf, (lut[pred][keep], lut[gt][keep]), 1)
    result = evaluate_kitti360(tmp_path, split="valid")
    np.testing.assert_array_equal(result.confusion, conf)
    assert len(result.metrics["iou_per_class"]) == 19
    assert ssc_eval(["-d", str(tmp_path), "--dataset-kind", "kitti360", "--output", str(tmp_path),
                     "--no-progress"]) == 0
    scores = yaml.safe_load((tmp_path / "scores.txt").read_text())
    assert "iou_other-structure" in scores and "iou_bicyclist" not in scores
    assert scores["iou_mean"] == pytest.approx(result.metrics["miou"], abs=1e-12)


def test_nyu_tsdf_flavour_uses_the_occluded_voxel_protocol(tmp_path):
    rng = np.random.default_rng(7)
    n = int(np.prod(NYU_DIMS))
    ssc_conf = np.zeros((12, 12), dtype=np.int64)
    sc_conf = np.zeros((2, 2), dtype=np.int64)
    ids = ["0001", "0003"]
    (tmp_path / "test.txt").write_text("NYU0001_0000\nNYU0003_0000\n")
    for frame_id in ids:
        label = rng.choice(np.array([0, 0, 0, 1, 2, 3, 5, 10, 11, 255]), size=n)
        weight = (rng.random(n) < 0.7).astype(np.float32)
        mapping = np.where(rng.random(n) < 0.6, 307200, rng.integers(0, 307200, n))
        pred = rng.integers(0, 12, n)
        write_nyu_label(tmp_path / "Label" / f"{frame_id}.npz", label.reshape(NYU_DIMS))
        write_nyu_tsdf(tmp_path / "TSDF" / f"{frame_id}.npz", rng.random(n), weight)
        write_nyu_mapping(tmp_path / "Mapping" / f"{frame_id}.npz", mapping)
        write_prediction(tmp_path, "", frame_id, pred.reshape(NYU_DIMS), class_set=_nyu())
        keep = (weight > 0) & (label != 255)
        np.add.at(ssc_conf, (pred[keep], label[keep]), 1)
        occ = keep & (mapping == 307200)
        np.add.at(sc_conf, ((pred[occ] > 0).astype(int), (label[occ] > 0).astype(int)), 1)
    result = evaluate_nyu(tmp_path, split="valid")
    np.testing.assert_array_equal(result.confusion, ssc_conf)
    assert result.num_frames == 2
    assert result.metrics["iou"] == pytest.approx(sc_conf[1, 1] / (sc_conf.sum() - sc_conf[0, 0]), abs=1e-12)
    tp = np.diag(ssc_conf)
    miou = (tp / (ssc_conf.sum(0) + ssc_conf.sum(1) - tp + 1e-15))[1:].mean()
    assert result.metrics["miou"] == pytest.approx(miou, abs=1e-12)


def test_nyu_monoscene_flavour_scores_every_non_ignored_voxel(tmp_path):
    full = np.zeros((240, 144, 240), dtype=np.uint8)
    full[:, :20, :] = 2  # floor (NYU class 2 -> 2) fills whole 4x4x4 blocks of the first 5 height cells
    full[:40, 60:100, :40] = 7  # NYU 7 -> sofa (6)
    full[200:, 100:, 200:] = 255
    write_nyu_bin(tmp_path / "NYUtest" / "NYU0001_0000.bin", np.zeros(3), np.eye(4), full)
    target = np.zeros(NYU_DIMS, dtype=np.int64)
    target[:, :5, :] = 2
    target[:10, 15:25, :10] = 6
    target[50:, 25:, 50:] = 255
    pred = np.where(target == 255, 0, target)
    pred[:10, 15:25, :5] = 0  # half the sofa missed
    write_prediction(tmp_path, "", "NYU0001_0000", pred, class_set=_nyu())
    result = evaluate_nyu(tmp_path, split="test")
    assert result.metrics["iou_per_class"][2] == pytest.approx(1.0)
    assert result.metrics["iou_per_class"][6] == pytest.approx(0.5)
    assert result.metrics["miou"] == pytest.approx(1.5 / 11)


def _nyu():
    from ssc_core.data.label_maps import get_class_set

    return get_class_set("nyu")


# ---------------------------------------------------------------------------------- writer and submission
def test_writer_stores_raw_ids_that_evaluate_perfectly(tmp_path):
    paths = SequencePaths.of(tmp_path, "08")
    train = np.zeros(DIMS, dtype=np.uint8)
    train[10:20, 5:9, 0:3] = 1
    train[30:40, 50:60, 1] = 19
    raw = np.zeros(DIMS, dtype=np.uint16)
    raw[train == 1] = 252  # moving-car is car too
    raw[train == 19] = 81
    write_voxel_labels(paths.voxel(0, "label"), raw)
    write_packed_bits(paths.voxel(0, "invalid"), np.zeros(DIMS, bool))
    path = write_prediction(tmp_path, 8, 0, train)
    assert path == paths.prediction(0)
    stored = np.fromfile(path, dtype="<u2").reshape(DIMS)
    assert set(np.unique(stored)) == {0, 10, 81}
    result = evaluate_semantic_kitti(tmp_path)
    assert result.metrics["iou"] == pytest.approx(1.0) and result.metrics["iou_per_class"][19] == pytest.approx(1.0)


def test_writer_rejects_wrong_shape_and_unknown_train_ids(tmp_path):
    from ssc_core.errors import DataFormatError

    with pytest.raises(DataFormatError, match="shape"):
        write_prediction(tmp_path, 8, 0, np.zeros((128, 128, 16), np.uint8))
    with pytest.raises(DataFormatError, match="train id 20"):
        write_prediction(tmp_path, 8, 0, np.full(DIMS, 20, np.uint8))


def _test_inputs(root: Path, sequences: dict[str, list[int]]) -> None:
    for seq, frames in sequences.items():
        for frame in frames:
            write_packed_bits(SequencePaths.of(root, seq).voxel(frame, "bin"), np.zeros(DIMS, bool))


def test_submission_zip_passes_the_validator_rules(tmp_path):
    _test_inputs(tmp_path / "ds", {"11": [0, 5], "12": [0]})
    for seq, frame in (("11", 0), ("11", 5), ("12", 0)):
        write_prediction(tmp_path / "pred", seq, frame, np.full(DIMS, 9, np.uint8))
    zip_path = build_submission_zip(tmp_path / "pred", tmp_path / "ds", tmp_path / "sub.zip",
                                    description={"name": "ssc_ros", "code url": "https://example.org"},
                                    sequences=("11", "12"))
    assert validate_submission_zip(zip_path, tmp_path / "ds", sequences=("11", "12")) == 3
    with zipfile.ZipFile(zip_path) as bundle:
        names = set(bundle.namelist())
        assert {"sequences/", "sequences/11/", "sequences/11/predictions/", "description.txt"} <= names
        assert bundle.read("description.txt").decode() == "name: ssc_ros\ncode url: https://example.org\n"
        assert np.unique(np.frombuffer(bundle.read("sequences/12/predictions/000000.label"), "<u2")).tolist() == [40]


def test_submission_builder_refuses_missing_or_unscored_predictions(tmp_path):
    _test_inputs(tmp_path / "ds", {"11": [0, 5]})
    write_prediction(tmp_path / "pred", "11", 0, np.zeros(DIMS, np.uint8))
    with pytest.raises(SubmissionError, match="000005.label: missing"):
        build_submission_zip(tmp_path / "pred", tmp_path / "ds", tmp_path / "sub.zip", sequences=("11",))
    bad = np.zeros(DIMS, "<u2")
    bad[0, 0, 0] = 52  # other-structure is not a scored SemanticKITTI class
    bad.tofile(SequencePaths.of(tmp_path / "pred", "11").prediction(5))
    with pytest.raises(SubmissionError, match=r"raw ids \[52\] are not scored"):
        build_submission_zip(tmp_path / "pred", tmp_path / "ds", tmp_path / "sub.zip", sequences=("11",))


def test_submission_validator_rejects_extra_and_short_files(tmp_path):
    _test_inputs(tmp_path / "ds", {"11": [0]})
    good = np.zeros(DIMS, "<u2").tobytes()

    def bundle(path: Path, files: dict[str, bytes]) -> Path:
        with zipfile.ZipFile(path, "w") as z:
            for d in ("sequences/", "sequences/11/", "sequences/11/predictions/"):
                z.writestr(d, b"")
            for name, data in files.items():
                z.writestr(name, data)
        return path

    extra = bundle(tmp_path / "extra.zip", {"sequences/11/predictions/000000.label": good, "notes.txt": b"x"})
    with pytest.raises(SubmissionError, match="unneeded"):
        validate_submission_zip(extra, tmp_path / "ds", sequences=("11",))
    short = bundle(tmp_path / "short.zip", {"sequences/11/predictions/000000.label": good[:-2]})
    with pytest.raises(SubmissionError, match="2097151 labels"):
        validate_submission_zip(short, tmp_path / "ds", sequences=("11",))
