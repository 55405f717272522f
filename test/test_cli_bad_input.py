"""Bad input to the console CLIs ends in one ``error: ...`` line and exit code 2, never a traceback.

Each case here printed a Python traceback (or was silently accepted) before: an output path that is a file or
sits below one, a sequence folder outside ``sequences/``, negative frame ranges and limits, NaN points, a
calib.txt whose Tr is not a rigid transform, unknown config keys, ssc_node parameters of the wrong type, a
truncated ground-truth file that ``ssc-infer --render`` skipped, and a demo checkpoint not matching --config.

And what a new user hit (issue #17): a second ssc-train or ssc-infer replacing an earlier run, failed bag and
demo runs whose leftovers blocked the rerun, an unwritable bag output, kitti2bag on the wrong grid or without
poses/times, Ctrl-C in ssc-train, and negative frame numbers. Earlier runs and outputs are never replaced
without --overwrite (and --overwrite deletes only what the command itself writes).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from ssc_core.cli import bag as bag_cli
from ssc_core.cli import demo, evaluate, infer, make_synthetic, train
from ssc_core.config import load_config
from ssc_core.data.label_maps import get_class_set
from ssc_core.data.semantic_kitti import read_points
from ssc_core.data.synthetic import SyntheticOptions, generate_sequence
from ssc_core.errors import DataFormatError
from ssc_core.types import GridSpec
from ssc_core.viz import __main__ as viz

GRID_ARGS = ["--grid-dims", "128", "128", "16"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A 6-frame small synthetic sequence 00 (labels on frames 0 and 5), an untrained sgn_tiny checkpoint, a
    file to use where a folder is wanted, and the sequence as a bag."""
    import torch

    from ssc_core.models import build_model
    from ssc_core.training.checkpoint import save_checkpoint

    base = tmp_path_factory.mktemp("bad_input")
    root = base / "data"
    generate_sequence(root, sequence="00", frames=6, seed=0, options=SyntheticOptions.small())
    cfg = load_config("sgn_tiny")
    torch.manual_seed(0)
    checkpoint = save_checkpoint(base / "tiny.pt", build_model(cfg), cfg, get_class_set("semantic_kitti"),
                                 GridSpec.from_dict(cfg["data"]["grid"]))
    a_file = base / "a_file"
    a_file.write_text("not a folder\n")
    bag = base / "bags" / "seq.mcap"
    assert bag_cli.main(["kitti2bag", "--sequence-dir", str(root / "sequences" / "00"), "--output", str(bag),
                         "--voxel-size", "0.4", "--no-progress", *GRID_ARGS]) == 0
    return {"root": root, "seq": root / "sequences" / "00", "ckpt": checkpoint, "file": a_file,
            "bag": bag.with_suffix("")}


def copy_root(data, tmp_path):
    """A private copy of the dataset root to damage."""
    root = tmp_path / "root"
    shutil.copytree(data["root"], root)
    return root


def expect_error(capsys, code: int, *words: str) -> str:
    """Assert exit code 2, one ``error:`` message holding every word, and no traceback (progress bars may
    precede the message on stderr)."""
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err, err
    message = err[err.find("error: "):] if "error: " in err else ""
    assert message.startswith("error: ") and message.count("error: ") == 1, err
    for word in words:
        assert word in message, (word, err)
    return message


# --------------------------------------------------------------------------------- output locations
def test_train_work_dir_that_is_a_file(data, capsys):
    code = train.main(["--config", "sgn_tiny", "--data-root", str(data["root"]), "--work-dir", str(data["file"]),
                       "--train-sequences", "00", "--no-val", "--epochs", "1", "--no-progress"])
    expect_error(capsys, code, "--work-dir", str(data["file"]), "not a folder")


def test_infer_output_below_a_file_and_limit_zero(data, capsys):
    args = ["--checkpoint", str(data["ckpt"]), "--data-root", str(data["root"]), "--sequence", "00"]
    code = infer.main([*args, "--output", str(data["file"] / "preds")])
    expect_error(capsys, code, "--output", "cannot create the folder")
    code = infer.main([*args, "--output", str(data["file"].parent / "preds"), "--limit", "0"])
    expect_error(capsys, code, "--limit must be >= 1")


def test_eval_output_that_is_a_file_and_zero_grid_dims(data, capsys):
    code = evaluate.main(["-d", str(data["root"]), "--output", str(data["file"]), "--no-progress", *GRID_ARGS])
    expect_error(capsys, code, "--output", "not a folder")
    code = evaluate.main(["-d", str(data["root"]), "--grid-dims", "0", "128", "16", "--no-progress"])
    expect_error(capsys, code, "--grid-dims must be three positive integers")


def test_make_synthetic_bad_output_sequence_and_calib_size(data, tmp_path, capsys):
    base = ["--frames", "2", "--small", "--no-progress"]
    expect_error(capsys, make_synthetic.main(["--output", str(data["file"]), *base]), "not a folder")
    code = make_synthetic.main(["--output", str(tmp_path), "--sequence", "../x", *base])
    expect_error(capsys, code, "--sequence must be a plain folder name")
    code = make_synthetic.main(["--output", str(tmp_path), "--calib-image-size", "0", "0", *base])
    expect_error(capsys, code, "calib_image_size must be two positive integers")
    assert not (tmp_path / "sequences").exists()


def test_viz_output_folder_wrong_suffix_and_sequence_outside_sequences(data, tmp_path, capsys):
    base = ["--sequence-dir", str(data["seq"]), "--frame", "0", "--dims", "128", "128", "16", "--width", "64"]
    expect_error(capsys, viz.main([*base, "--output", str(tmp_path)]), "expected a file name ending in .png")
    expect_error(capsys, viz.main([*base, "--output", str(tmp_path / "x.xyz")]), ".png")
    expect_error(capsys, viz.main([*base, "--output", str(data["file"] / "x.png")]), "not a folder")
    loose = tmp_path / "loose"
    loose.mkdir()
    code = viz.main(["--sequence-dir", str(loose), "--frame", "0", "--output", str(tmp_path / "x.png")])
    expect_error(capsys, code, str(loose), "not a sequence folder")


def test_kitti2bag_output_below_a_file_and_negative_start(data, tmp_path, capsys):
    base = ["kitti2bag", "--sequence-dir", str(data["seq"]), "--voxel-size", "0.4", "--no-progress", *GRID_ARGS]
    code = bag_cli.main([*base, "--output", str(data["file"] / "x.mcap")])
    expect_error(capsys, code, "output bag", "not a folder")
    code = bag_cli.main([*base, "--output", str(tmp_path / "neg.mcap"), "--start", "-3"])
    expect_error(capsys, code, "--start must be a frame number >= 0, got -3")
    assert not (tmp_path / "neg").exists()


def test_demo_output_that_is_a_file(data, capsys):
    code = demo.main(["--output", str(data["file"]), "--sequence-dir", str(data["seq"]), "--checkpoint",
                      str(data["ckpt"]), "--config", "sgn_tiny", "--no-progress"])
    expect_error(capsys, code, "--output", "not a folder")


# --------------------------------------------------------------------------------- configs and params
def test_demo_empty_config_and_checkpoint_of_another_config(data, tmp_path, capsys):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    code = demo.main(["--output", str(tmp_path / "d1"), "--config", str(empty), "--no-progress"])
    expect_error(capsys, code, "has no model: / data: section")
    code = demo.main(["--output", str(tmp_path / "d2"), "--sequence-dir", str(data["seq"]), "--checkpoint",
                      str(data["ckpt"]), "--config", "sgn_t", "--no-progress"])
    expect_error(capsys, code, str(data["ckpt"]), "does not match")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("data:\n  bogus_key: 3\n", ["unknown data key(s) ['bogus_key']"]),
        ("bogus_section: 3\n", ["unknown top-level key(s) ['bogus_section']"]),
        ("model: 3\n", ["'model:' must be a mapping"]),
    ],
)
def test_train_config_with_unknown_or_malformed_keys(data, tmp_path, capsys, text, words):
    path = tmp_path / "cfg.yaml"
    path.write_text(f"_base_: [sgn_tiny]\n{text}")
    code = train.main(["--config", str(path), "--data-root", str(data["root"]), "--work-dir", str(tmp_path / "w"),
                       "--train-sequences", "00", "--no-val", "--epochs", "1", "--no-progress"])
    expect_error(capsys, code, str(path), *words)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("ssc_node:\n  ros__parameters:\n    sync.slop_s: abc\n", ["sync.slop_s must be a float", "'abc'"]),
        ("- 1\n- 2\n", ["maps node names to ros__parameters", "list"]),
    ],
)
def test_bag_run_params_file_of_wrong_types(data, tmp_path, capsys, text, words):
    params = tmp_path / "params.yaml"
    params.write_text(text)
    code = bag_cli.main(["run", "--input", str(data["bag"]), "--output", str(tmp_path / "out.mcap"),
                         "--checkpoint", str(data["ckpt"]), "--params-file", str(params), "--no-progress"])
    expect_error(capsys, code, str(params), *words)
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------- broken data files
def test_nan_points_are_a_format_error_naming_the_scan(data, tmp_path, capsys):
    root = copy_root(data, tmp_path)
    scan = root / "sequences" / "00" / "velodyne" / "000000.bin"
    points = np.fromfile(scan, dtype="<f4").reshape(-1, 4)
    points[3, 1] = np.nan
    points.tofile(scan)
    with pytest.raises(DataFormatError, match="1 of .* points hold NaN/inf values"):
        read_points(scan)
    code = infer.main(["--checkpoint", str(data["ckpt"]), "--data-root", str(root), "--sequence", "00",
                       "--output", str(tmp_path / "preds"), "--limit", "1"])
    expect_error(capsys, code, str(scan), "NaN/inf")


def test_calib_with_a_singular_tr(data, tmp_path, capsys):
    root = copy_root(data, tmp_path)
    calib = root / "sequences" / "00" / "calib.txt"
    lines = [("Tr: " + " ".join(["0"] * 12)) if line.startswith("Tr:") else line
             for line in calib.read_text().splitlines()]
    calib.write_text("\n".join(lines) + "\n")
    code = train.main(["--config", "sgn_tiny", "--data-root", str(root), "--work-dir", str(tmp_path / "w"),
                       "--train-sequences", "00", "--no-val", "--epochs", "1", "--no-progress"])
    expect_error(capsys, code, str(calib), "'Tr' is singular")


def test_infer_render_with_a_truncated_label_fails_instead_of_dropping_the_ground_truth(data, tmp_path, capsys):
    root = copy_root(data, tmp_path)
    label = root / "sequences" / "00" / "voxels" / "000000.label"
    label.write_bytes(label.read_bytes()[:1001])
    code = infer.main(["--checkpoint", str(data["ckpt"]), "--data-root", str(root), "--sequence", "00",
                       "--output", str(tmp_path / "preds"), "--limit", "1", "--render"])
    expect_error(capsys, code, str(label), "1001 bytes")


def test_label_id_outside_the_map_names_the_file(data, tmp_path, capsys):
    root = copy_root(data, tmp_path)
    label = root / "sequences" / "00" / "voxels" / "000000.label"
    raw = np.fromfile(label, dtype="<u2")
    raw[:10] = 60000
    raw.tofile(label)
    seq = root / "sequences" / "00"
    code = viz.main(["--sequence-dir", str(seq), "--frame", "0", "--dims", "128", "128", "16", "--width", "64",
                     "--output", str(tmp_path / "x.png")])
    expect_error(capsys, code, str(label), "label id 60000")
    code = bag_cli.main(["kitti2bag", "--sequence-dir", str(seq), "--output", str(tmp_path / "b.mcap"),
                         "--voxel-size", "0.4", "--no-progress", *GRID_ARGS])
    expect_error(capsys, code, str(label), "label id 60000")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", ["the file is empty"]),
        (b"\x80\x02garbage bytes, not a checkpoint" * 10, ["not a torch.save file"]),
        (None, ["corrupt or truncated archive"]),  # the first 300 kB of a real checkpoint
    ],
)
def test_unreadable_checkpoint_is_described_in_one_line(data, tmp_path, capsys, content, words):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(data["ckpt"].read_bytes()[:300_000] if content is None else content)
    code = infer.main(["--checkpoint", str(bad), "--data-root", str(data["root"]), "--sequence", "00",
                       "--output", str(tmp_path / "preds")])
    message = expect_error(capsys, code, str(bad), "cannot read checkpoint", *words)
    assert message.count("\n") == 1 and "weights_only" not in message


# --------------------------------------------------------------------------------- earlier runs and outputs
TRAIN_ARGS = ["--config", "sgn_tiny", "--train-sequences", "00", "--no-val", "--no-progress", "--num-threads", "1",
              "--from-scratch", "--set", "train.max_iters_per_epoch=1"]


def test_train_refuses_a_work_dir_holding_a_run_and_overwrite_replaces_only_the_run(data, tmp_path, capsys):
    work = tmp_path / "run"
    work.mkdir()
    (work / "last.pt").write_bytes(b"an earlier run")
    (work / "notes.txt").write_text("mine")
    args = [*TRAIN_ARGS, "--data-root", str(data["root"]), "--work-dir", str(work), "--epochs", "1"]
    expect_error(capsys, train.main(args), str(work), "already holds a run", "last.pt", "--resume", "--overwrite")
    assert (work / "last.pt").read_bytes() == b"an earlier run"
    expect_error(capsys, train.main([*args, "--resume", "--overwrite"]), "pass one of them")
    assert train.main([*args, "--overwrite"]) == 0
    assert (work / "last.pt").read_bytes() != b"an earlier run" and (work / "notes.txt").read_text() == "mine"
    assert len((work / "history.jsonl").read_text().splitlines()) == 1
    other = tmp_path / "other"  # resuming a checkpoint from elsewhere into this work dir would replace its run
    code = train.main([*args[:-3], str(other), "--epochs", "1"])
    assert code == 0
    weights = (work / "last.pt").read_bytes()
    code = train.main([*args[:-1], "2", "--resume", str(other / "last.pt")])
    expect_error(capsys, code, str(work), "already holds a run")
    assert (work / "last.pt").read_bytes() == weights


def test_ctrl_c_in_training_ends_with_one_line_naming_the_last_checkpoint_and_resume(data, tmp_path, capsys,
                                                                                   monkeypatch):
    from ssc_core.training.trainer import Trainer

    work = tmp_path / "run"
    args = [*TRAIN_ARGS, "--data-root", str(data["root"]), "--work-dir", str(work), "--epochs", "2"]
    train_epoch = Trainer.train_epoch

    def stopped_in_epoch_two(self, epoch):
        if epoch == 1:
            raise KeyboardInterrupt  # what Ctrl-C raises inside the training loop
        return train_epoch(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", stopped_in_epoch_two)
    assert train.main(args) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("interrupted: ")]
    assert len(lines) == 1 and err.rstrip().endswith(lines[0])
    assert f"{work / 'last.pt'} (epoch 1 of 2, step 1" in lines[0] and "plus --resume" in lines[0]
    monkeypatch.setattr(Trainer, "train_epoch", train_epoch)
    assert train.main([*args, "--resume"]) == 0  # the line's advice works
    assert "epochs: 2" in capsys.readouterr().out


def test_ctrl_c_before_the_first_checkpoint_says_there_is_nothing_to_resume(data, tmp_path, capsys, monkeypatch):
    from ssc_core.training.trainer import Trainer

    def stop(self, epoch):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "train_epoch", stop)
    work = tmp_path / "run"
    assert train.main([*TRAIN_ARGS, "--data-root", str(data["root"]), "--work-dir", str(work), "--epochs", "1"]) == 130
    err = capsys.readouterr().err
    assert "Traceback" not in err and "nothing to resume" in err and "--overwrite" in err


def test_infer_refuses_to_mix_with_earlier_predictions_unless_told(data, tmp_path, capsys):
    out = tmp_path / "preds"
    base = ["--checkpoint", str(data["ckpt"]), "--data-root", str(data["root"]), "--sequence", "00",
            "--output", str(out), "--num-threads", "1"]
    assert infer.main([*base, "--limit", "2"]) == 0
    folder = out / "sequences" / "00" / "predictions"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert len(before) == 2
    expect_error(capsys, infer.main([*base, "--limit", "1"]), str(out), "2 prediction file(s)", "--overwrite")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert infer.main([*base, "--limit", "1", "--overwrite"]) == 0
    assert sorted(p.name for p in folder.iterdir()) == ["000000.label"]  # nothing of the earlier run is left


@pytest.mark.skipif(not (shutil.os.path.isdir("/proc/self")), reason="needs /proc (Linux)")
def test_bag_commands_into_an_unwritable_place_give_one_error_line(data, capsys):
    code = bag_cli.main(["kitti2bag", "--sequence-dir", str(data["seq"]), "--output", "/proc/x.mcap",
                         "--no-progress"])
    expect_error(capsys, code, "output bag /proc/x", "cannot create")
    code = bag_cli.main(["run", "--input", str(data["bag"]), "--output", "/proc/y.mcap", "--checkpoint",
                         str(data["ckpt"]), "--no-progress", "--num-threads", "1"])
    expect_error(capsys, code, "output bag /proc/y", "cannot create")


def test_failed_kitti2bag_keeps_a_readable_partial_bag_and_says_how_to_rerun(data, tmp_path, capsys):
    from ssc_ros.bag import BagReader
    from ssc_ros.messages import rosbags_namespace

    root = copy_root(data, tmp_path)
    label = root / "sequences" / "00" / "voxels" / "000005.label"
    good = label.read_bytes()
    label.write_bytes(good[:1001])  # frame 5 fails after frames 0-4 are written
    args = ["kitti2bag", "--sequence-dir", str(root / "sequences" / "00"), "--output", str(tmp_path / "b.mcap"),
            "--no-progress"]
    message = expect_error(capsys, bag_cli.main(args), str(label), "partial bag", "readable", "--overwrite")
    assert message.count("\n") == 1
    with BagReader(tmp_path / "b", rosbags_namespace("humble").typestore) as reader:
        assert reader.topics["/kitti/velo/pointcloud"].count == 5
    label.write_bytes(good)
    expect_error(capsys, bag_cli.main(args), "already exists", "--overwrite")
    assert bag_cli.main([*args, "--overwrite"]) == 0
    with BagReader(tmp_path / "b", rosbags_namespace("humble").typestore) as reader:
        assert reader.topics["/kitti/velo/pointcloud"].count == 6


def test_failed_bag_run_keeps_a_readable_partial_bag_and_overwrite_spares_other_folders(data, tmp_path, capsys,
                                                                                       monkeypatch):
    from ssc_core.inference.predictor import Predictor
    from ssc_ros.bag import BagReader
    from ssc_ros.messages import rosbags_namespace

    predict, calls = Predictor.predict, []

    def fails_on_the_third_frame(self, window, *rest):
        calls.append(1)
        if len(calls) == 3:
            raise DataFormatError("frame 2: a broken input")
        return predict(self, window, *rest)

    monkeypatch.setattr(Predictor, "predict", fails_on_the_third_frame)
    args = ["run", "--input", str(data["bag"]), "--output", str(tmp_path / "o.mcap"), "--checkpoint",
            str(data["ckpt"]), "--no-progress", "--num-threads", "1"]
    expect_error(capsys, bag_cli.main(args), "frame 2: a broken input", "partial bag", "readable", "--overwrite")
    with BagReader(tmp_path / "o", rosbags_namespace("humble").typestore) as reader:
        assert reader.topics["/ssc_node/occupancy_grid"].count == 2
    monkeypatch.setattr(Predictor, "predict", predict)
    assert bag_cli.main([*args, "--overwrite"]) == 0
    code = bag_cli.main([*args[:4], str(data["bag"]), *args[5:], "--overwrite"])  # --output = the input bag
    expect_error(capsys, code, "is the input bag")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("keep me")
    code = bag_cli.main([*args[:4], str(tmp_path / "mine"), *args[5:], "--overwrite"])
    expect_error(capsys, code, "thesis.tex", "not replacing it")
    assert (tmp_path / "mine" / "thesis.tex").read_text() == "keep me"


def test_failed_demo_says_what_it_kept_and_overwrite_reruns_it(data, tmp_path, capsys):
    root = copy_root(data, tmp_path)
    label = root / "sequences" / "00" / "voxels" / "000005.label"
    good = label.read_bytes()
    label.write_bytes(good[:1001])
    out = tmp_path / "demo"
    args = ["--output", str(out), "--sequence-dir", str(root / "sequences" / "00"), "--checkpoint",
            str(data["ckpt"]), "--config", "sgn_tiny", "--no-progress", "--num-threads", "1"]
    expect_error(capsys, demo.main(args), str(label), "kept in", "--overwrite")
    label.write_bytes(good)
    expect_error(capsys, demo.main(args), "holds an earlier demo", "bags/input", "--overwrite")
    assert demo.main([*args, "--overwrite"]) == 0
    assert (out / "summary.json").is_file() and (out / "prediction_vs_ground_truth.png").is_file()


# --------------------------------------------------------------------------------- grids, frames, poses
def test_kitti2bag_takes_the_recorded_grid_and_names_the_flags_when_they_disagree(data, tmp_path, capsys):
    from ssc_ros.bag import BagReader
    from ssc_ros.messages import rosbags_namespace

    base = ["kitti2bag", "--sequence-dir", str(data["seq"]), "--no-progress"]
    assert bag_cli.main([*base, "--output", str(tmp_path / "a.mcap")]) == 0  # the grid of voxels/grid.yaml
    with BagReader(tmp_path / "a", rosbags_namespace("humble").typestore) as reader:
        raw = next(reader.raw_messages(["/kitti/voxels_gt"]))
        cubes = [m for m in reader.decode(raw).markers if m.points]
    assert cubes and all(m.scale.x == pytest.approx(0.4) for m in cubes)
    code = bag_cli.main([*base, "--output", str(tmp_path / "b.mcap"), "--grid-dims", "256", "256", "32"])
    expect_error(capsys, code, "--grid-dims 256 256 32", "disagrees", "grid.yaml")
    root = copy_root(data, tmp_path)
    (root / "sequences" / "00" / "voxels" / "grid.yaml").unlink()  # a sequence without a record: flags decide
    base[2] = str(root / "sequences" / "00")
    code = bag_cli.main([*base, "--output", str(tmp_path / "c.mcap")])
    expect_error(capsys, code, "000000.label holds 262144 voxels", "--grid-dims X Y Z and --voxel-size S")
    code = bag_cli.main([*base, "--output", str(tmp_path / "c.mcap"), *GRID_ARGS])
    expect_error(capsys, code, "--grid-dims 128 128 16 needs --voxel-size", "0.4")
    assert not (tmp_path / "c").exists()
    assert bag_cli.main([*base, "--output", str(tmp_path / "c.mcap"), *GRID_ARGS, "--voxel-size", "0.4"]) == 0


def test_kitti2bag_without_poses_or_times_warns_on_stderr(data, tmp_path, capsys):
    from ssc_ros.bag import BagReader
    from ssc_ros.messages import rosbags_namespace

    root = copy_root(data, tmp_path)
    (root / "sequences" / "00" / "poses.txt").unlink()
    (root / "sequences" / "00" / "times.txt").unlink()
    code = bag_cli.main(["kitti2bag", "--sequence-dir", str(root / "sequences" / "00"), "--output",
                         str(tmp_path / "b.mcap"), "--no-progress"])
    assert code == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning: ")]
    assert any("poses.txt is missing" in w and "/tf" in w for w in warnings)
    assert any("times.txt is missing" in w and "0.1 s apart" in w for w in warnings)
    with BagReader(tmp_path / "b", rosbags_namespace("humble").typestore) as reader:
        assert "/tf" not in reader.topics and "/tf_static" in reader.topics


def test_negative_frame_numbers_name_the_option(data, tmp_path, capsys):
    code = viz.main(["--sequence-dir", str(data["seq"]), "--frame", "-1", "--output", str(tmp_path / "x.png")])
    expect_error(capsys, code, "--frame must be a frame number >= 0, got -1")
    code = bag_cli.main(["kitti2bag", "--sequence-dir", str(data["seq"]), "--output", str(tmp_path / "b.mcap"),
                         "--end", "-2", "--no-progress"])
    expect_error(capsys, code, "--end must be a frame number >= 0, got -2")


def test_training_on_rooms_without_test_rooms_names_test_frames_and_no_val(synthetic_nyu_root, tmp_path, capsys):
    root = tmp_path / "rooms"
    shutil.copytree(synthetic_nyu_root, root)
    (root / "NYU" / "test.txt").write_text("")  # as ssc-make-synthetic --test-frames 0 writes it
    code = train.main(["--config", "cleaners_teacher_tiny", "--data-root", str(root), "--work-dir",
                       str(tmp_path / "run"), "--epochs", "1", "--no-progress", "--from-scratch"])
    expect_error(capsys, code, "no frames in split 'test'", "--test-frames", "--no-val", "last.pt")


def test_a_student_whose_teacher_ran_without_validation_is_told_to_use_its_last_checkpoint(synthetic_nyu_root,
                                                                                            tmp_path, capsys):
    teacher_dir = tmp_path / "teacher"
    teacher_dir.mkdir()
    (teacher_dir / "last.pt").write_bytes(b"")  # what a --no-val run leaves: last.pt, no best.pt
    code = train.main(["--config", "cleaners_student_tiny", "--data-root", str(synthetic_nyu_root), "--work-dir",
                       str(tmp_path / "run"), "--epochs", "1", "--no-progress", "--from-scratch", "--set",
                       f"distill.teacher_checkpoint={teacher_dir / 'best.pt'}"])
    expect_error(capsys, code, f"{teacher_dir / 'best.pt'} does not exist", "--no-val",
                 f"--set distill.teacher_checkpoint={teacher_dir / 'last.pt'}")
