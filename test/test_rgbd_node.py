"""The RGB-D mode of the node pipeline (ROS-free): depth messages, the builder, the predictor adapter, the NYU replay
bag and ssc-bag run in rgbd mode; the node path builds the files' TSDF and mapping of the same frame and gives its
offline logits and prediction."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from ssc_core.cli.bag import main as bag_main
from ssc_core.config import load_config
from ssc_core.data.datasets import build_dataset
from ssc_core.data.nyu import NYU, NYUTsdfPaths, find_nyu_root, read_nyu_mapping, read_nyu_tsdf
from ssc_core.data.rgbd import rgbd_frame_to_sample, rgbd_frame_volume
from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.inference.predictor import Predictor
from ssc_core.models import build_model
from ssc_core.training.checkpoint import save_checkpoint
from ssc_core.types import GridSpec
from ssc_ros.bag import BagReader, nyu2bag
from ssc_ros.bag.pipeline import node_parameters
from ssc_ros.bag.tf_history import TransformHistory
from ssc_ros.messages import depth_image_to_metres, make_depth_image, rosbags_namespace
from ssc_ros.pipeline.health import DropCounter
from ssc_ros.pipeline.predictor_setup import PrecisionPredictor
from ssc_ros.pipeline.rgbd import input_pipeline
from ssc_ros.replay_nyu import NYUReplayNames, nyu_records, nyu_replay_messages, read_nyu_record

NS = rosbags_namespace()
NAMES = NYUReplayNames()
NOT_SEEN = 480 * 640  # mapping value of a voxel no pixel maps to


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An untrained tiny CleanerS student (fixed seed) as a checkpoint."""
    torch.manual_seed(0)
    cfg = load_config("cleaners_student_tiny", {"distill": None})
    path = tmp_path_factory.mktemp("rgbd") / "student.pt"
    save_checkpoint(path, build_model(cfg).eval(), cfg, NYU, GridSpec.from_dict(cfg["data"]["grid"]))
    return path


def rgbd_params(**extra) -> dict:
    return node_parameters(overrides={"input.mode": "rgbd", "rgbd.grid_frame": NAMES.grid_frame, **extra})


def replayed_room(root) -> tuple[int, dict, TransformHistory]:
    """The first test room as the NYU replay publishes it: (stamp, {topic: message}, its TF)."""
    frame_id, stamp = nyu_records(root, "test")[0]
    record = read_nyu_record(root, frame_id, "test", stamp)
    messages = {topic: msg for topic, _, msg in nyu_replay_messages(record, NS, NAMES)}
    tf = TransformHistory()
    tf.add(messages[NAMES.tf], static=False)
    return stamp, messages, tf


def test_depth_messages_round_trip_and_bad_ones_are_clear_errors():
    depth = np.array([[0.0, 1.25, np.nan], [8.0, 0.5, 2.000125]], dtype=np.float32)
    got = depth_image_to_metres(make_depth_image(NS, 1, "cam", depth, "32FC1"))
    np.testing.assert_array_equal(got, np.nan_to_num(depth))
    got_mm = depth_image_to_metres(make_depth_image(NS, 1, "cam", depth, "16UC1"))
    np.testing.assert_allclose(got_mm, np.round(np.nan_to_num(depth) * 1000) / 1000, atol=1e-6)
    msg = make_depth_image(NS, 1, "cam", depth, "32FC1")
    msg.encoding = "rgb8"
    with pytest.raises(DataFormatError, match="unsupported depth encoding"):
        depth_image_to_metres(msg)
    msg = make_depth_image(NS, 1, "cam", depth, "16UC1")
    msg.data = msg.data[:5]
    with pytest.raises(DataFormatError, match="5 bytes, expected 12"):
        depth_image_to_metres(msg)


def test_node_pipeline_gives_the_offline_tsdf_mapping_logits_and_prediction_of_a_synthetic_room(
        synthetic_nyu_root, checkpoint):
    """Room 0003 from its files (NYUDataset: TSDF and mapping as written) and from the replay's messages through the
    RGB-D builder (TF, depth decoded, TSDF and mapping computed online): the same TSDF, mapping and logits, and
    the node's prediction (labels and confidence) is the offline one."""
    predictor = Predictor.from_checkpoint(checkpoint)
    dataset = build_dataset(dict(predictor.cfg["data"], augment=False), "test", synthetic_nyu_root)
    sample = dataset[0]
    offline_logits = predictor.sample_logits(sample)
    offline = predictor.predict_sample(sample)

    stamp, messages, tf = replayed_room(synthetic_nyu_root)
    drops = DropCounter()
    wrapped, builder = input_pipeline(predictor, rgbd_params(**{"rgbd.tsdf_subdivision": 2}), drops)  # as written
    items = {"image": messages[NAMES.image], "depth": messages[NAMES.depth], "camera_info": messages[NAMES.camera_info]}
    assert builder.keys == ["image", "depth", "camera_info"]
    assert builder.required_transforms(items) == [(NAMES.camera_frame, NAMES.grid_frame)]
    window = builder.build(items, stamp, tf.lookup)
    assert window is not None and drops.as_dict() == {}

    # what the node computes from the messages is what the files hold (measured: bit for bit, float32 poses through
    # TF quaternions included)
    frame = wrapped.rgbd_frame(window)
    grid = replace(predictor.grid, origin=wrapped.origin)
    volume = rgbd_frame_volume(frame, grid, subdivision=2)
    paths = NYUTsdfPaths(find_nyu_root(synthetic_nyu_root))
    tsdf_files, _ = read_nyu_tsdf(paths.tsdf("0003"))
    mapping_files = read_nyu_mapping(paths.mapping("0003"))
    np.testing.assert_array_equal(volume.tsdf, tsdf_files)
    assert (mapping_files < NOT_SEEN).sum() > 1000  # thousands of voxels seen by a pixel
    np.testing.assert_array_equal(volume.mapping, mapping_files)

    # the model's logits on the online sample are the offline ones, and the node's prediction is theirs
    online_logits = predictor.sample_logits(rgbd_frame_to_sample(frame, grid, predictor.data_cfg, 2))
    assert (online_logits - offline_logits).abs().max() < 1e-5
    assert offline_logits.std(dim=0).mean() > 0.05  # the 12 classes' logits differ (measured 0.14): equal says a lot
    online = wrapped.predict(window)
    assert online.grid.dims == (60, 60, 36) and online.grid.voxel_size == pytest.approx(0.08)
    np.testing.assert_array_equal(online.labels, offline.labels.transpose(0, 2, 1))
    np.testing.assert_allclose(online.confidence, offline.confidence.transpose(0, 2, 1), atol=1e-6)


def test_model_precision_bf16_runs_the_rgbd_prediction_under_autocast_on_cpu(synthetic_nyu_root, checkpoint):
    """model.precision reaches the RGB-D path: with bf16 the model's layers compute in bfloat16 (the node's
    prediction then differs from fp32's by bf16 rounding); with fp32 in float32."""
    predictor = Predictor.from_checkpoint(checkpoint)
    dtypes = []
    for module in predictor.model.modules():
        if isinstance(module, torch.nn.Conv3d):
            module.register_forward_hook(lambda mod, args, out: dtypes.append(out.dtype))
    stamp, messages, tf = replayed_room(synthetic_nyu_root)
    items = {"image": messages[NAMES.image], "depth": messages[NAMES.depth], "camera_info": messages[NAMES.camera_info]}
    confidence = {}
    for precision in ("fp32", "bf16"):
        dtypes.clear()
        wrapped, builder = input_pipeline(PrecisionPredictor(predictor, precision),
                                          rgbd_params(**{"rgbd.tsdf_subdivision": 2}))
        prediction = wrapped.predict(builder.build(items, stamp, tf.lookup))
        assert dtypes and set(dtypes) == {torch.float32 if precision == "fp32" else torch.bfloat16}, precision
        confidence[precision] = prediction.confidence
    assert confidence["bf16"].dtype == np.float32  # the outputs stay float32
    difference = np.abs(confidence["bf16"] - confidence["fp32"])
    assert 0 < difference.max() < 0.05, difference.max()


def test_builder_drops_unusable_depth_with_a_counted_reason(synthetic_nyu_root, checkpoint):
    predictor = Predictor.from_checkpoint(checkpoint)
    stamp, messages, tf = replayed_room(synthetic_nyu_root)
    drops = DropCounter()
    _, builder = input_pipeline(predictor, rgbd_params(), drops, warn=lambda line: None)
    items = {"image": messages[NAMES.image], "camera_info": messages[NAMES.camera_info]}
    for bad in (make_depth_image(NS, stamp, NAMES.camera_frame, np.zeros((480, 640))),
                make_depth_image(NS, stamp, NAMES.camera_frame, np.ones((240, 320)))):
        assert builder.build({**items, "depth": bad}, stamp, tf.lookup) is None
    assert drops.as_dict() == {"bad_depth": 2}


def test_the_mode_must_fit_the_model(checkpoint):
    predictor = Predictor.from_checkpoint(checkpoint)
    with pytest.raises(ConfigError, match="set input.mode to rgbd"):
        input_pipeline(predictor, node_parameters())
    with pytest.raises(ConfigError, match="input.mode must be one of"):
        input_pipeline(predictor, rgbd_params(**{"input.mode": "lidar"}))

    class Outdoor:
        cfg = {"data": {"dataset": "semantic_kitti"}}

    with pytest.raises(ConfigError, match="indoor"):
        input_pipeline(Outdoor(), rgbd_params())


def test_nyu2bag_and_ssc_bag_run_in_rgbd_mode(synthetic_nyu_root, checkpoint, tmp_path, capsys):
    summary = nyu2bag(synthetic_nyu_root, tmp_path / "rooms.mcap", split="test", progress=False)
    assert summary.frames == 1 and summary.counts[NAMES.depth] == 1 and summary.counts[NAMES.gt_voxels] == 1
    code = bag_main(["run", "--input", str(summary.path), "--output", str(tmp_path / "out.mcap"), "--checkpoint",
                     str(checkpoint), "--params-file", "config/ssc_node_rgbd.yaml", "--device", "cpu",
                     "--no-progress"])
    assert code == 0, capsys.readouterr().err
    with BagReader(tmp_path / "out", NS.typestore) as reader:
        counts = {name: info.count for name, info in reader.topics.items()}
    assert counts["/ssc_node/voxels"] == 1 and counts["/ssc_node/occupancy_grid"] == 1
    assert bag_main(["nyu2bag", "--nyu", str(tmp_path), "--output", str(tmp_path / "x.mcap")]) == 2
