"""NYU evaluation with both protocols (ssc-eval --nyu-protocol) and ssc-infer for NYU checkpoints, on synthetic
rooms."""

from __future__ import annotations

import numpy as np
import pytest

from ssc_core.cli.evaluate import main as eval_main
from ssc_core.cli.infer import main as infer_main
from ssc_core.config import load_config
from ssc_core.data.nyu import NYU, NYUTsdfPaths, find_nyu_root, read_nyu_label, read_nyu_tsdf
from ssc_core.evaluation.official import evaluate_nyu
from ssc_core.evaluation.writers import write_prediction
from ssc_core.models import build_model
from ssc_core.training.checkpoint import save_checkpoint
from ssc_core.types import GridSpec


def write_predictions(root, out, corrupt_free_space: bool) -> None:
    paths = NYUTsdfPaths(find_nyu_root(root))
    for frame_id in paths.frame_ids("test"):
        labels = read_nyu_label(paths.label(frame_id))
        labels = np.where(labels == 255, 0, labels)  # (unscored) outside the room: any class will do
        if corrupt_free_space:  # observed free space (label_weight 0) predicted as objects
            _, weight = read_nyu_tsdf(paths.tsdf(frame_id))
            labels = np.where((weight == 0) & (labels == 0), 11, labels)
        write_prediction(out, "", frame_id, labels, NYU)


def test_the_two_protocols_differ_exactly_where_they_should(synthetic_nyu_root, tmp_path):
    """Predicting objects in observed free space costs nothing under SSCNet's protocol (those voxels are not
    scored) and lowers the objects IoU under MonoScene's (every voxel with label != 255 is scored)."""
    write_predictions(synthetic_nyu_root, tmp_path / "perfect", False)
    write_predictions(synthetic_nyu_root, tmp_path / "free", True)
    perfect = evaluate_nyu(synthetic_nyu_root, tmp_path / "perfect", "test", protocol="sscnet")
    free = evaluate_nyu(synthetic_nyu_root, tmp_path / "free", "test", protocol="sscnet")
    assert free.metrics == perfect.metrics and perfect.metrics["iou"] == 1.0
    mono_perfect = evaluate_nyu(synthetic_nyu_root, tmp_path / "perfect", "test", protocol="monoscene")
    mono_free = evaluate_nyu(synthetic_nyu_root, tmp_path / "free", "test", protocol="monoscene")
    assert mono_perfect.metrics["iou_per_class"][11] == 1.0 > mono_free.metrics["iou_per_class"][11]
    assert perfect.protocol.startswith("SSCNet") and mono_free.protocol.startswith("MonoScene")


def test_ssc_eval_names_the_protocol_in_its_table(synthetic_nyu_root, tmp_path, capsys):
    write_predictions(synthetic_nyu_root, tmp_path / "p", False)
    for protocol, name in (("sscnet", "SSCNet"), ("monoscene", "MonoScene")):
        code = eval_main(["-d", str(synthetic_nyu_root), "-p", str(tmp_path / "p"), "-s", "test", "--dataset-kind",
                          "nyu", "--nyu-protocol", protocol, "--output", str(tmp_path / protocol), "--no-progress"])
        assert code == 0
        assert capsys.readouterr().out.splitlines()[0].startswith(f"nyu ({name}")


def test_sscnet_protocol_needs_the_npz_files(tmp_path, capsys):
    (tmp_path / "NYUtest").mkdir()
    code = eval_main(["-d", str(tmp_path), "-s", "test", "--dataset-kind", "nyu", "--nyu-protocol", "sscnet",
                      "--output", str(tmp_path / "o"), "--no-progress"])
    assert code == 2 and capsys.readouterr().err.startswith("error:")
    code = eval_main(["-d", str(tmp_path), "--nyu-protocol", "sscnet", "--output", str(tmp_path / "o"),
                      "--no-progress"])
    assert code == 2 and "applies to --dataset-kind nyu" in capsys.readouterr().err


@pytest.mark.parametrize("split", ["test"])
def test_ssc_infer_writes_nyu_predictions_that_ssc_eval_scores(synthetic_nyu_root, tmp_path, split):
    cfg = load_config("cleaners_student_tiny", {"distill": None})
    model = build_model(cfg).eval()
    save_checkpoint(tmp_path / "m.pt", model, cfg, NYU, GridSpec.from_dict(cfg["data"]["grid"]))
    assert infer_main(["--checkpoint", str(tmp_path / "m.pt"), "--data-root", str(synthetic_nyu_root),
                       "--sequence", split, "--output", str(tmp_path / "preds"), "--num-threads", "1"]) == 0
    assert (tmp_path / "preds" / "predictions" / "0003.label").is_file()
    assert eval_main(["-d", str(synthetic_nyu_root), "-p", str(tmp_path / "preds"), "-s", split, "--dataset-kind",
                      "nyu", "--output", str(tmp_path), "--no-progress"]) == 0
