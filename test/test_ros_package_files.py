"""The ROS package files agree with the code: parameter YAML, docs, launch files, RViz config; and the
intake queue / precision wrapper the node wires in."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from ssc_core.errors import ConfigError
from ssc_ros.pipeline.intake import InputSet, IntakeQueue
from ssc_ros.pipeline.params import REPLAY_NODE_PARAMS, SSC_NODE_PARAMS, defaults, output_options, split_classes
from ssc_ros.pipeline.predictor_setup import PrecisionPredictor, build_predictor

ROOT = Path(__file__).resolve().parents[1]


def test_ssc_node_yaml_holds_exactly_the_declared_parameters_with_their_defaults():
    data = yaml.safe_load((ROOT / "config" / "ssc_node.yaml").read_text())
    params = data["/**"]["ros__parameters"]
    assert params == defaults(SSC_NODE_PARAMS)


def test_every_parameter_is_documented_in_docs_ros():
    text = (ROOT / "docs" / "ros.md").read_text()
    missing = [p.name for p in (*SSC_NODE_PARAMS, *REPLAY_NODE_PARAMS) if f"`{p.name}`" not in text]
    assert missing == []


def test_every_parameter_has_a_description_and_a_unique_name():
    for table in (SSC_NODE_PARAMS, REPLAY_NODE_PARAMS):
        names = [p.name for p in table]
        assert len(names) == len(set(names))
        assert all(len(p.description) > 10 for p in table)


def test_default_parameters_give_valid_output_options():
    opts = output_options(defaults(SSC_NODE_PARAMS))
    assert opts.crop_min is None and opts.hidden_classes == () and "road" in opts.ground_classes
    bad = {**defaults(SSC_NODE_PARAMS), "occupancy.z_min": 2.0}
    with pytest.raises(ConfigError, match="z_min"):
        output_options(bad)
    assert split_classes(" car, person ,") == ("car", "person")


def test_launch_files_parse_and_remap_to_the_replay_topics():
    replay = (ROOT / "launch" / "kitti_replay.launch.py").read_text()
    ast.parse(replay)
    ast.parse((ROOT / "launch" / "ssc.launch.py").read_text())
    for topic in ("/kitti/camera_color_left/image_raw", "/kitti/camera_color_left/camera_info",
                  "/kitti/velo/pointcloud"):
        assert topic in replay
    for arg in ("sequence_dir", "checkpoint", "model_config", "device", "rate", "rviz", "use_sim_time"):
        assert f'"{arg}"' in replay


def test_rviz_config_shows_every_output_with_matching_qos():
    cfg = yaml.safe_load((ROOT / "rviz" / "ssc.rviz").read_text())
    manager = cfg["Visualization Manager"]
    assert manager["Global Options"]["Fixed Frame"] == "odom"
    topics = {d["Topic"]["Value"]: d for d in manager["Displays"] if "Topic" in d}
    for topic in ("/ssc_node/voxels", "/ssc_node/voxel_cloud", "/ssc_node/occupancy_grid", "/kitti/voxels_gt"):
        assert topics[topic]["Topic"]["Durability Policy"] == "Transient Local"
    assert topics["/ssc_node/voxel_cloud"]["Style"] == "Boxes" and topics["/ssc_node/voxel_cloud"]["Size (m)"] == 0.2
    classes = {d["Class"] for d in manager["Displays"]}
    assert {"rviz_default_plugins/Image", "rviz_default_plugins/TF", "rviz_default_plugins/Map"} <= classes


def test_node_modules_name_their_outputs_as_documented():
    src = (ROOT / "ssc_ros" / "ssc_node.py").read_text()
    assert set(re.findall(r'"(~/[a-z_]+)"', src)) == {"~/voxels", "~/voxel_cloud", "~/occupancy_grid",
                                                       "~/processing_time_ms", "~/latency_ms"}


def _item(t_ms: int, received_ms: int) -> InputSet:
    return InputSet({"image": t_ms}, t_ms * 1_000_000, received_ms * 1_000_000)


def test_intake_keeps_order_waits_for_tf_and_times_out():
    q = IntakeQueue(maxlen=10, wait_s=0.2)
    for t in (100, 200, 300):
        q.push(_item(t, t))
    ready_stamps = {100}
    out = q.pop_ready(lambda it: it.msgs["image"] in ready_stamps, now_ns=250 * 1_000_000)
    assert [(i.msgs["image"], r) for i, r in out] == [(100, True)]  # 200 is still within its wait: it blocks 300
    out = q.pop_ready(lambda it: it.msgs["image"] == 300, now_ns=450 * 1_000_000)
    assert [(i.msgs["image"], r) for i, r in out] == [(200, False), (300, True)]
    assert len(q) == 0


def test_intake_overflow_drops_the_oldest_and_counts_it():
    q = IntakeQueue(maxlen=2, wait_s=1.0)
    for t in (1, 2, 3):
        q.push(_item(t, t))
    assert q.drops["intake_overflow"] == 1
    assert [i.msgs["image"] for i, _ in q.pop_ready(lambda it: True, 0)] == [2, 3]


def test_precision_wrapper_forwards_the_contract_and_refuses_fp16_on_cpu():
    class Fake:
        device = "cpu"
        history_offsets = [-3]

        def predict(self, window):
            return np.float32(1.0)

    wrapped = PrecisionPredictor(Fake(), "fp32")
    assert wrapped.history_offsets == [-3] and wrapped.predict(None) == 1.0
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        PrecisionPredictor(Fake(), "fp16")
    with pytest.raises(ConfigError, match="model.precision"):
        PrecisionPredictor(Fake(), "int8")


def test_missing_checkpoint_is_a_config_error():
    with pytest.raises(ConfigError, match="model.checkpoint is required"):
        build_predictor("")
