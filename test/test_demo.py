"""ssc-demo end to end at its smallest: synthetic sequence -> 1 epoch of training -> bags -> metrics -> pictures."""

import contextlib
import io
import json

import numpy as np
import pytest
from PIL import Image

from ssc_core.cli import demo
from ssc_ros.bag import BagReader
from ssc_ros.messages import rosbags_namespace

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        code = demo.main(["--output", str(out), "--frames", "10", "--epochs", "1", "--no-progress"])
    demo_stderr[:] = [stderr.getvalue()]
    return code, out


demo_stderr: list[str] = []


def test_demo_exits_zero_and_writes_a_summary_with_metrics(demo_run):
    code, out = demo_run
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames_scored"] == 2  # frames 0 and 5 of 10 carry voxel labels
    assert 0.0 <= summary["miou"] <= 1.0 and 0.0 < summary["iou"] <= 1.0
    assert (out / "model" / "best.pt").is_file()


def test_demo_trains_from_scratch_without_the_missing_weights_warning(demo_run):
    assert "training sgn on" in demo_stderr[0]  # ssc-train's start-up line was captured
    assert "pretrained_path is null" not in demo_stderr[0]


def test_demo_output_bag_holds_inputs_and_the_node_outputs_for_every_frame(demo_run):
    _, out = demo_run
    ns = rosbags_namespace("humble")
    with BagReader(out / "bags" / "output", ns.typestore) as reader:
        topics = reader.topics
    assert topics["/kitti/velo/pointcloud"].count == 10
    for name, msgtype in [("/ssc_node/voxels", "visualization_msgs/msg/MarkerArray"),
                          ("/ssc_node/voxel_cloud", "sensor_msgs/msg/PointCloud2"),
                          ("/ssc_node/occupancy_grid", "nav_msgs/msg/OccupancyGrid")]:
        assert topics[name].msgtype == msgtype
        assert topics[name].count == 10


def test_demo_pictures_are_real_images_with_content(demo_run):
    _, out = demo_run
    comparison = np.asarray(Image.open(out / "prediction_vs_ground_truth.png").convert("RGB"))
    occupancy = np.asarray(Image.open(out / "occupancy_grid.png").convert("RGB"))
    assert comparison.shape[0] > 200 and comparison.shape[1] > 400
    assert len(np.unique(comparison.reshape(-1, 3), axis=0)) > 20  # shaded voxels of several classes
    assert occupancy.shape[0] > 100 and len(np.unique(occupancy.reshape(-1, 3), axis=0)) > 2


def test_demo_refuses_to_replace_an_earlier_run_and_overwrite_reruns_it_with_its_checkpoint(demo_run, capsys):
    _, out = demo_run
    summary = (out / "summary.json").read_bytes()
    code = demo.main(["--output", str(out), "--frames", "10", "--epochs", "1", "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "holds an earlier demo" in err and "--overwrite" in err and "Traceback" not in err
    assert (out / "summary.json").read_bytes() == summary  # nothing was touched
    best = out / "model" / "best.pt"
    weights = best.read_bytes()
    code = demo.main(["--output", str(out), "--frames", "10", "--checkpoint", str(best), "--overwrite",
                      "--no-progress", "--num-threads", "1"])
    assert code == 0
    assert best.read_bytes() == weights  # the help's "again, without training" keeps the model it uses
    assert json.loads((out / "summary.json").read_text())["checkpoint"] == str(best)
