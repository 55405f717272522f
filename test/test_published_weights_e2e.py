"""The README's path from published weights to predictions, on the synthetic world with checkpoints laid out like
the official files: import MSNet3D and SGN -> ssc-infer -> ssc-eval (also at a short range) -> the ssc_node
pipeline over a bag of the replay topics (what ``ros2 launch ssc_ros kitti_replay.launch.py checkpoint:=...``
runs, here through ``ssc-bag``: rclpy is not installable on these machines)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from test_import_sgn import _official_file as official_sgn_file
from test_import_sgn import _randomize
from test_msnet import _official_file as official_msnet_file

from ssc_core.cli.bag import main as ssc_bag
from ssc_core.cli.evaluate import main as ssc_eval
from ssc_core.cli.import_checkpoint import main as import_main
from ssc_core.cli.infer import main as ssc_infer
from ssc_core.cli.precompute_depth import main as precompute_main
from ssc_core.config import load_config, resolve_config_path
from ssc_core.data.datasets import build_dataset
from ssc_core.data.label_maps import SEMANTIC_KITTI
from ssc_core.data.semantic_kitti import read_voxel_labels
from ssc_core.data.synthetic import SyntheticOptions, generate_sequence
from ssc_core.evaluation.writers import train_to_raw
from ssc_core.inference.predictor import Predictor
from ssc_core.models import build_model
from ssc_core.models.stereo.msnet import stereo_checkpoint
from ssc_core.training.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow
IMAGE_SIZE = (128, 32)  # (W, H): MSNet3D costs about 1 s a frame on one CPU thread at this size
DIMS = (128, 128, 16)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A 2-frame small synthetic sequence 08 (both frames labelled) and an SGN-tiny config for its images."""
    root = tmp_path_factory.mktemp("world")
    generate_sequence(root, "08", frames=2, seed=0,
                      options=SyntheticOptions.small(image_size=IMAGE_SIZE, label_stride=1, label_scans=4))
    config = root / "sgn_tiny_32x128.yaml"
    config.write_text(f"_base_: [{resolve_config_path('sgn_tiny')}]\ndata:\n  image_crop: [32, 128]\n")
    return root, config


def test_official_sgn_and_msnet3d_weights_run_through_infer_eval_and_the_node_pipeline(world, tmp_path, capsys):
    root, config = world
    # the "downloads": an MSNet3D .ckpt and an SGN .pth in the official layouts
    msnet, msnet_src = official_msnet_file(tmp_path / "MSNet3D_SF_DS_KITTI2015.ckpt", "msnet3d", seed=1)
    sgn = _randomize(build_model(load_config(config)), seed=2).eval()
    sgn_src = official_sgn_file(tmp_path / "sgn-t-official.pth", sgn)

    # README: import both
    msnet_pt, ours = tmp_path / "msnet3d.pt", tmp_path / "sgn_ours.pt"
    assert import_main(["--method", "msnet3d", "--input", str(msnet_src), "--output", str(msnet_pt)]) == 0
    assert import_main(["--method", "sgn", "--config", str(config), "--input", str(sgn_src), "--output", str(ours),
                        "--depth-weights", str(msnet_pt)]) == 0
    stored = load_checkpoint(ours)["config"]["data"]["points"]
    assert stored["source"] == "stereo_msnet" and stored["msnet"]["weights"] == str(msnet_pt.resolve())

    # README: ssc-infer, then ssc-eval (full and short range)
    preds = tmp_path / "preds"
    assert ssc_infer(["--checkpoint", str(ours), "--data-root", str(root), "--sequence", "08", "--output", str(preds),
                      "--device", "cpu", "--num-threads", "1"]) == 0
    assert "frames: 2" in capsys.readouterr().out
    # the same predictions as the original networks give (their weights, not the imported files)
    reference_msnet = tmp_path / "reference_msnet.pt"
    torch.save(stereo_checkpoint(msnet), reference_msnet)
    cfg = load_config(config)
    cfg["data"]["points"] = {**cfg["data"]["points"], "source": "stereo_msnet",
                             "msnet": {**cfg["data"]["points"]["msnet"], "weights": str(reference_msnet)}}
    predictor = Predictor(sgn, cfg, device="cpu")
    dataset = build_dataset(cfg["data"], None, root, sequences=["08"], with_labels=False)
    for index, (sequence, frame) in enumerate(dataset.items):
        expected = predictor.predict(dataset.window(index), dataset.point_source_cfg(sequence)).labels
        written = read_voxel_labels(preds / "sequences" / "08" / "predictions" / f"{frame:06d}.label", DIMS)
        np.testing.assert_array_equal(written, train_to_raw(expected, SEMANTIC_KITTI))
    # the same model reading ssc-precompute-depth's files instead of running MSNet3D: the same predictions
    depth_files, ours_files = tmp_path / "msnet3d_depth", tmp_path / "sgn_files.pt"
    assert precompute_main(["--weights", str(msnet_pt), "--data-root", str(root), "--sequence", "08", "--output",
                            str(depth_files), "--device", "cpu", "--no-progress"]) == 0
    assert import_main(["--method", "sgn", "--config", str(config), "--input", str(sgn_src), "--output",
                        str(ours_files), "--depth-files", str(depth_files)]) == 0
    preds_files = tmp_path / "preds_files"
    assert ssc_infer(["--checkpoint", str(ours_files), "--data-root", str(root), "--sequence", "08", "--output",
                      str(preds_files), "--device", "cpu", "--num-threads", "1"]) == 0
    for frame in (0, 1):
        name = f"sequences/08/predictions/{frame:06d}.label"
        assert (preds_files / name).read_bytes() == (preds / name).read_bytes()
    for args, suffix in (([], ""), (["--eval-range", "25.6"], "_25.6m")):
        out = tmp_path / f"scores{suffix}"
        assert ssc_eval(["-d", str(root), "-p", str(preds), "--sequences", "08", "--grid-dims", *map(str, DIMS),
                         "--output", str(out), "--no-progress", *args]) == 0
        scores = yaml.safe_load((out / "scores.txt").read_text())
        assert 0.0 <= scores[f"iou_completion{suffix}"] <= 1.0 and f"iou_mean{suffix}" in scores

    # the ssc_node pipeline over the replay topics (left + right images: the checkpoint asks for stereo)
    bag, out_bag = tmp_path / "seq08.mcap", tmp_path / "seq08_ssc.mcap"
    assert ssc_bag(["kitti2bag", "--sequence-dir", str(root / "sequences" / "08"), "--output", str(bag),
                    "--grid-dims", *map(str, DIMS), "--voxel-size", "0.4", "--no-progress"]) == 0
    capsys.readouterr()
    assert ssc_bag(["run", "--input", str(bag), "--output", str(out_bag), "--checkpoint", str(ours),
                    "--no-progress"]) == 0
    printed = capsys.readouterr().out
    counts = {line.split()[0]: int(line.split()[1]) for line in printed.splitlines()
              if line.startswith("  /") and line.rstrip().endswith("msg")}
    assert counts["/ssc_node/voxels"] == 2 and counts["/ssc_node/occupancy_grid"] == 2, printed
