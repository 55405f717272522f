"""ssc-bag: KITTI sequence -> bag with the replay's topics/frames/stamps, bag errors, and bag -> pipeline -> bag."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from l2cocc_scenes import CAMERA, SMALL_SWIN
from points_model import LIDAR_POINTS_MODEL_NAME, POINTS_MODEL_NAME, LidarPointsModel, PointsModel

from ssc_core.config import load_config
from ssc_core.data.label_maps import SEMANTIC_KITTI
from ssc_core.data.semantic_kitti import (
    read_image,
    read_points,
    write_calib,
    write_image,
    write_packed_bits,
    write_points,
    write_poses,
    write_times,
    write_voxel_labels,
)
from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.models import build_model
from ssc_core.training.checkpoint import save_checkpoint
from ssc_core.types import Calib, GridSpec
from ssc_ros.bag import (
    BagReader,
    BagWriter,
    QosSpec,
    RunTopics,
    TransformHistory,
    input_bag_dir,
    kitti2bag,
    output_bag_dir,
    run,
)
from ssc_ros.messages import (
    camera_info_to_P,
    image_to_rgb,
    make_float64,
    make_tf_message,
    make_transform_stamped,
    pointcloud2_to_structured,
    pointcloud2_to_xyzi,
    rosbags_namespace,
    stamp_to_ns,
)
from ssc_ros.replay import ReplayNames

NAMES = ReplayNames()
TINY_GRID = GridSpec(dims=(16, 16, 4), voxel_size=0.8, origin=(0.0, -6.4, -2.0))
P2 = np.array([[50.0, 0.0, 32.0, 2.5], [0.0, 50.0, 16.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
P3 = np.array([[50.0, 0.0, 32.0, -20.0], [0.0, 50.0, 16.0, 0.0], [0.0, 0.0, 1.0, 0.0]])
TR = np.array([[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, -0.08], [1.0, 0.0, 0.0, -0.27], [0.0, 0.0, 0.0, 1.0]])
CAR, ROAD = 1, 9


@pytest.fixture(scope="module")
def ns():
    return rosbags_namespace("humble")


def write_tiny_sequence(root: Path, frames: int = 3, labelled: tuple[int, ...] = (0, 2)) -> Path:
    """A 64x32-pixel, 16x16x4-voxel SemanticKITTI-layout sequence driving forward 0.5 m per frame at 10 Hz."""
    seq = root / "sequences" / "00"
    rng = np.random.default_rng(0)
    write_calib(seq / "calib.txt", Calib(P2=P2, T_cam0_velo=TR, P3=P3, P0=P2, P1=P3))
    poses_velo = np.tile(np.eye(4), (frames, 1, 1))
    poses_velo[:, 0, 3] = 0.5 * np.arange(frames)
    write_poses(seq / "poses.txt", TR[None] @ poses_velo @ np.linalg.inv(TR)[None])
    write_times(seq / "times.txt", 0.1 * np.arange(frames))
    for f in range(frames):
        write_image(seq / "image_2" / f"{f:06d}.png", rng.integers(0, 255, (32, 64, 3), dtype=np.uint8))
        write_image(seq / "image_3" / f"{f:06d}.png", rng.integers(0, 255, (32, 64, 3), dtype=np.uint8))
        points = np.c_[rng.uniform(1, 12, (200, 1)), rng.uniform(-6, 6, (200, 1)), rng.uniform(-2, 1, (200, 2))]
        write_points(seq / "velodyne" / f"{f:06d}.bin", points.astype(np.float32))
        if f in labelled:
            labels = np.zeros(TINY_GRID.dims, np.uint8)
            labels[:, :, 0] = ROAD
            labels[4 + f : 7 + f, 6:9, 1:3] = CAR
            write_voxel_labels(seq / "voxels" / f"{f:06d}.label", SEMANTIC_KITTI.inverse_lut()[labels])
            invalid = np.zeros(TINY_GRID.dims, np.uint8)
            invalid[0, 0, 0] = 1
            write_packed_bits(seq / "voxels" / f"{f:06d}.invalid", invalid)
    return seq


@pytest.fixture(scope="module")
def tiny_sequence(tmp_path_factory) -> Path:
    return write_tiny_sequence(tmp_path_factory.mktemp("kitti"))


@pytest.fixture(scope="module")
def tiny_bag(tiny_sequence, tmp_path_factory):
    out = tmp_path_factory.mktemp("bags") / "tiny.mcap"
    return kitti2bag(tiny_sequence, out, grid=TINY_GRID, progress=False)


def read_all(path, ns, topics=None):
    with BagReader(path, ns.typestore) as reader:
        return reader.topics, [(m, reader.decode(m)) for m in reader.raw_messages(topics)]


# ------------------------------------------------------------------------------------------------ kitti2bag
def test_kitti2bag_writes_the_replay_topics_with_one_message_per_frame(tiny_bag, ns):
    assert tiny_bag.path.name == "tiny" and tiny_bag.storage_file == tiny_bag.path / "tiny.mcap"
    assert tiny_bag.storage_file.is_file() and (tiny_bag.path / "metadata.yaml").is_file()
    topics, _ = read_all(tiny_bag.path, ns)
    expected = {
        NAMES.tf_static: ("tf2_msgs/msg/TFMessage", 1),
        NAMES.tf: ("tf2_msgs/msg/TFMessage", 3),
        NAMES.left_image: ("sensor_msgs/msg/Image", 3),
        NAMES.left_info: ("sensor_msgs/msg/CameraInfo", 3),
        NAMES.right_image: ("sensor_msgs/msg/Image", 3),
        NAMES.right_info: ("sensor_msgs/msg/CameraInfo", 3),
        NAMES.cloud: ("sensor_msgs/msg/PointCloud2", 3),
        NAMES.gt_voxels: ("visualization_msgs/msg/MarkerArray", 2),  # only frames 0 and 2 are labelled
    }
    assert {t: (i.msgtype, i.count) for t, i in topics.items()} == expected
    assert NAMES.clock not in topics


def test_kitti2bag_stamps_frames_and_data_match_the_sequence(tiny_bag, tiny_sequence, ns):
    _, messages = read_all(tiny_bag.path, ns, [NAMES.left_image, NAMES.left_info, NAMES.cloud, NAMES.tf])
    stamps = {1_000_000_000 + k * 100_000_000 for k in range(3)}  # replay offset 1 s + times.txt
    by_topic: dict[str, list] = {}
    for raw, msg in messages:
        by_topic.setdefault(raw.topic, []).append((raw, msg))
    for topic, entries in by_topic.items():
        got = [
            stamp_to_ns(msg.header.stamp if hasattr(msg, "header") else msg.transforms[0].header.stamp)
            for _, msg in entries
        ]
        assert got == sorted(stamps), topic
        assert [raw.stamp_ns for raw, _ in entries] == got, f"{topic}: bag time must equal header stamp"
    image = image_to_rgb(by_topic[NAMES.left_image][1][1])
    assert np.array_equal(image, read_image(tiny_sequence / "image_2" / "000001.png"))
    assert by_topic[NAMES.left_image][0][1].header.frame_id == NAMES.left_frame
    assert np.allclose(camera_info_to_P(by_topic[NAMES.left_info][0][1]), P2)
    cloud = by_topic[NAMES.cloud][2][1]
    assert cloud.header.frame_id == NAMES.lidar_frame
    assert np.allclose(pointcloud2_to_xyzi(cloud), read_points(tiny_sequence / "velodyne" / "000002.bin"))
    tf = by_topic[NAMES.tf][2][1].transforms[0]
    assert (tf.header.frame_id, tf.child_frame_id) == (NAMES.fixed_frame, NAMES.lidar_frame)
    assert tf.transform.translation.x == pytest.approx(1.0)


def test_kitti2bag_static_tf_is_latched_and_places_the_camera_by_tr(tiny_bag, ns):
    topics, messages = read_all(tiny_bag.path, ns, [NAMES.tf_static])
    qos = topics[NAMES.tf_static].qos[0]
    assert qos.durability.name == "TRANSIENT_LOCAL" and qos.reliability.name == "RELIABLE" and qos.depth == 1
    image_qos = topics[NAMES.left_image].qos[0]
    assert (image_qos.durability.name, image_qos.reliability.name, image_qos.depth) == ("VOLATILE", "RELIABLE", 5)
    history = TransformHistory()
    history.add(messages[0][1], static=True)
    T_cam0_velo = history.lookup(NAMES.cam0_frame, NAMES.lidar_frame, 0)
    assert np.allclose(T_cam0_velo, TR, atol=1e-9)


def test_kitti2bag_ground_truth_markers_hold_the_labelled_voxels(tiny_bag, ns):
    _, messages = read_all(tiny_bag.path, ns, [NAMES.gt_voxels])
    markers = messages[0][1].markers
    cubes = {m.ns: len(m.points) for m in markers if m.type == m.CUBE_LIST and m.action == m.ADD}
    assert any("car" in name for name in cubes) and any("road" in name for name in cubes)
    assert all(m.header.frame_id == NAMES.lidar_frame for m in markers)


def test_kitti2bag_sqlite3_and_frame_range(tiny_sequence, tmp_path, ns):
    summary = kitti2bag(
        tiny_sequence,
        tmp_path / "part",
        storage="sqlite3",
        start=1,
        end=3,
        with_gt=False,
        with_right=False,
        grid=TINY_GRID,
        progress=False,
    )
    assert summary.storage_file.suffix == ".db3" and summary.frames == 2
    topics, _ = read_all(summary.path, ns)
    assert topics[NAMES.left_image].count == 2 and NAMES.gt_voxels not in topics and NAMES.right_image not in topics
    assert summary.first_stamp_ns == 1_100_000_000


def test_kitti2bag_refuses_to_overwrite_and_reports_a_missing_sequence(tiny_sequence, tiny_bag, tmp_path):
    with pytest.raises(DataFormatError, match="already exists"):
        kitti2bag(tiny_sequence, tiny_bag.path.with_suffix(".mcap"), grid=TINY_GRID, progress=False)
    with pytest.raises(DataFormatError, match="not found"):
        kitti2bag(tmp_path / "nowhere", tmp_path / "x.mcap", progress=False)


# ------------------------------------------------------------------------------------------------ bag files
def test_output_names_map_suffixes_to_storage(tmp_path):
    assert output_bag_dir(tmp_path / "a.mcap") == (tmp_path / "a", "mcap")
    assert output_bag_dir(tmp_path / "a.db3") == (tmp_path / "a", "sqlite3")
    assert output_bag_dir(tmp_path / "a", "sqlite3") == (tmp_path / "a", "sqlite3")
    with pytest.raises(ConfigError, match="suffix"):
        output_bag_dir(tmp_path / "a.mcap", "sqlite3")
    with pytest.raises(ConfigError, match="storage"):
        output_bag_dir(tmp_path / "a", "rosbag1")


def test_input_bag_accepts_the_folder_its_storage_file_or_the_name_given_at_writing(tiny_bag):
    assert input_bag_dir(tiny_bag.path) == tiny_bag.path
    assert input_bag_dir(tiny_bag.storage_file) == tiny_bag.path
    assert input_bag_dir(tiny_bag.path.with_suffix(".mcap")) == tiny_bag.path


def _float_bag(path, ns, n=20, storage=None):
    with BagWriter(path, ns.typestore, storage) as writer:
        for i in range(n):
            writer.write("/x", "std_msgs/msg/Float64", 1_000 + i, make_float64(ns, i), QosSpec())
    return writer


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_truncated_bag_gives_a_data_format_error_naming_the_bag(tmp_path, ns, storage):
    writer = _float_bag(tmp_path / "t", ns, n=200, storage=storage)
    data = writer.storage_file.read_bytes()
    writer.storage_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match=str(writer.path)):
        read_all(writer.path, ns)


def test_corrupt_and_missing_bags_give_data_format_errors(tmp_path, ns):
    writer = _float_bag(tmp_path / "c", ns)
    (writer.path / "metadata.yaml").write_text("rosbag2_bagfile_information: [not, a, mapping")
    with pytest.raises(DataFormatError, match="cannot open"):
        read_all(writer.path, ns)
    with pytest.raises(DataFormatError, match="not found"):
        read_all(tmp_path / "absent", ns)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataFormatError, match="no metadata.yaml"):
        read_all(tmp_path / "empty", ns)
    (writer.path / "metadata.yaml").unlink()  # what a crashed recorder leaves behind
    with pytest.raises(DataFormatError, match="reindex"):
        read_all(writer.path, ns)


def test_unknown_message_types_and_missing_topics_are_reported(tmp_path, ns):
    with BagWriter(tmp_path / "u", ns.typestore) as writer:
        writer.write_raw(
            "/custom",
            "my_pkg/msg/Thing",
            5,
            b"\x00\x01\x00\x00\x07\x00\x00\x00",
            msgdef="int32 value",
            rihs01="RIHS01_" + "0" * 64,
        )
    with BagReader(writer.path, ns.typestore) as reader:
        with pytest.raises(DataFormatError, match="unknown message type my_pkg/msg/Thing"):
            reader.check_types(["/custom"])
        with pytest.raises(DataFormatError, match="unknown message type"):
            reader.decode(next(reader.raw_messages()))
        with pytest.raises(DataFormatError, match=r"missing topic\(s\) \['/image'\]"):
            reader.require(["/custom", "/image"])


def test_what_was_written_before_an_error_stays_readable(tmp_path, ns):
    with pytest.raises(RuntimeError, match="boom"):
        with BagWriter(tmp_path / "partial.mcap", ns.typestore) as writer:
            for i in range(5):
                writer.write("/x", "std_msgs/msg/Float64", 10 + i, make_float64(ns, i))
            raise RuntimeError("boom")
    topics, messages = read_all(tmp_path / "partial", ns)
    assert topics["/x"].count == 5 and [m.data for _, m in messages] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_writer_rejects_a_topic_reused_with_another_type(tmp_path, ns):
    with BagWriter(tmp_path / "r", ns.typestore) as writer:
        writer.write("/x", "std_msgs/msg/Float64", 1, make_float64(ns, 1.0))
        with pytest.raises(ConfigError, match="already holds"):
            writer.write("/x", "tf2_msgs/msg/TFMessage", 2, make_tf_message(ns, []))


# ------------------------------------------------------------------------------------------------ TF lookups
def test_transform_history_chains_static_and_interpolates_dynamic_transforms(ns):
    history = TransformHistory(tolerance_ns=5)
    cam = np.eye(4)
    cam[:3, 3] = [0.1, 0.2, 0.3]
    history.add(make_tf_message(ns, [make_transform_stamped(ns, 0, "velo", "cam", cam)]), static=True)
    for stamp, x in ((100, 0.0), (200, 2.0)):
        T = np.eye(4)
        T[0, 3] = x
        history.add(make_tf_message(ns, [make_transform_stamped(ns, stamp, "odom", "velo", T)]), static=False)
    T_odom_cam = history.lookup("odom", "cam", 150)
    assert np.allclose(T_odom_cam[:3, 3], [1.1, 0.2, 0.3])
    assert np.allclose(history.lookup("cam", "odom", 150), np.linalg.inv(T_odom_cam))
    assert history.lookup("odom", "velo", 300) is None  # beyond the data and the tolerance
    assert history.lookup("odom", "velo", 203) is not None
    assert history.lookup("odom", "elsewhere", 150) is None
    assert history.latest_dynamic_ns == 200


# ------------------------------------------------------------------------------------------------ run


@pytest.fixture(scope="module")
def points_checkpoint(tmp_path_factory) -> Path:
    cfg = {
        "model": {"name": POINTS_MODEL_NAME},
        "data": {
            "grid": TINY_GRID.to_dict(),
            "image_crop": [32, 64],
            "history_offsets": [-1],
            "points": {"source": "lidar"},
        },
    }
    path = tmp_path_factory.mktemp("ckpt") / "points.pt"
    return save_checkpoint(path, PointsModel(cfg), cfg, SEMANTIC_KITTI, TINY_GRID)


@pytest.fixture(scope="module")
def run_result(tiny_bag, points_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out.mcap"
    return run(tiny_bag.path, out, points_checkpoint, progress=False)


def test_run_copies_every_input_topic_and_adds_one_output_per_frame(run_result, tiny_bag, ns):
    topics, _ = read_all(run_result.path, ns)
    inputs, _ = read_all(tiny_bag.path, ns)
    for topic, info in inputs.items():
        assert (topics[topic].msgtype, topics[topic].count) == (info.msgtype, info.count)
    out = RunTopics()
    assert topics[out.voxels].msgtype == "visualization_msgs/msg/MarkerArray"
    assert topics[out.voxel_cloud].msgtype == "sensor_msgs/msg/PointCloud2"
    assert topics[out.occupancy_grid].msgtype == "nav_msgs/msg/OccupancyGrid"
    assert all(topics[t].count == 3 for t in (out.voxels, out.voxel_cloud, out.occupancy_grid, out.processing_time))
    assert topics[out.voxels].qos[0].durability.name == "TRANSIENT_LOCAL"
    assert run_result.frames == 3 and run_result.extra["drops"] == {}


def test_run_outputs_are_stamped_with_their_input_and_hold_the_models_voxels(run_result, tiny_sequence, ns):
    out = RunTopics()
    _, messages = read_all(run_result.path, ns, [out.voxel_cloud, out.occupancy_grid])
    clouds = [(raw, msg) for raw, msg in messages if raw.topic == out.voxel_cloud]
    assert [raw.stamp_ns for raw, _ in clouds] == [1_000_000_000, 1_100_000_000, 1_200_000_000]
    assert all(stamp_to_ns(msg.header.stamp) == raw.stamp_ns for raw, msg in messages)
    assert all(msg.header.frame_id == NAMES.lidar_frame for _, msg in messages)
    # Frame 0 has no history (its own scan twice): the cloud holds exactly the voxels of scan 0.
    points0 = read_points(tiny_sequence / "velodyne" / "000000.bin")
    idx, inside = TINY_GRID.points_to_indices(points0)
    expected = {tuple(i) for i in idx[inside]}
    cloud0 = pointcloud2_to_structured(clouds[0][1])
    got = {
        tuple(TINY_GRID.points_to_indices(np.c_[cloud0["x"], cloud0["y"], cloud0["z"]])[0][k])
        for k in range(len(cloud0))
    }
    assert got == expected and set(cloud0["label"]) == {CAR}
    # Frame 1 has frame 0 as history, moved 0.5 m back into frame 1's LiDAR frame: more voxels than its own scan.
    assert len(pointcloud2_to_structured(clouds[1][1])) > 0
    grid_msg = [msg for raw, msg in messages if raw.topic == out.occupancy_grid][0]
    assert (grid_msg.info.width, grid_msg.info.height) == TINY_GRID.dims[:2]


def test_run_reports_a_bag_without_the_topics_the_model_needs(tiny_sequence, points_checkpoint, tmp_path):
    bag = kitti2bag(tiny_sequence, tmp_path / "nocloud.mcap", grid=TINY_GRID, progress=False)
    # Rewrite the bag without the point cloud topic.
    ns = rosbags_namespace()
    with BagReader(bag.path, ns.typestore) as reader, BagWriter(tmp_path / "stripped", ns.typestore) as writer:
        for raw in reader.raw_messages():
            if raw.topic != NAMES.cloud:
                writer.write_raw(raw.topic, raw.msgtype, raw.stamp_ns, raw.data)
    with pytest.raises(DataFormatError, match=r"missing topic\(s\) \['/kitti/velo/pointcloud'\] needed by the model"):
        run(tmp_path / "stripped", tmp_path / "out.mcap", points_checkpoint, progress=False)
    assert not (tmp_path / "out").exists()


def _bag_without(bag_path, topics: set[str], out: Path, ns) -> Path:
    """A copy of a bag without the given topics."""
    with BagReader(bag_path, ns.typestore) as reader, BagWriter(out, ns.typestore) as writer:
        for raw in reader.raw_messages():
            if raw.topic not in topics:
                writer.write_raw(raw.topic, raw.msgtype, raw.stamp_ns, raw.data)
    return out


def test_a_lidar_only_model_runs_on_a_bag_without_any_camera_topic(tiny_sequence, tmp_path, ns):
    cfg = {"model": {"name": LIDAR_POINTS_MODEL_NAME},
           "data": {"grid": TINY_GRID.to_dict(), "use_left_image": False, "points": {"source": "lidar"}}}
    checkpoint = save_checkpoint(tmp_path / "lidar.pt", LidarPointsModel(cfg), cfg, SEMANTIC_KITTI, TINY_GRID)
    bag = kitti2bag(tiny_sequence, tmp_path / "full.mcap", grid=TINY_GRID, progress=False)
    camera = {NAMES.left_image, NAMES.left_info, NAMES.right_image, NAMES.right_info}
    summary = run(_bag_without(bag.path, camera, tmp_path / "lidar_only", ns), tmp_path / "out.mcap", checkpoint,
                  progress=False)
    assert summary.frames == 3 and summary.extra["drops"] == {}
    _, messages = read_all(summary.path, ns, [RunTopics().voxel_cloud])
    assert [raw.stamp_ns for raw, _ in messages] == [1_000_000_000, 1_100_000_000, 1_200_000_000]


@pytest.mark.parametrize("name", ["l2cocc_l", "l2cocc_c", "l2cocc_d"])
def test_l2cocc_models_run_on_a_bag_that_holds_only_the_streams_they_read(name, tiny_sequence, tmp_path, ns):
    """L2COcc-L on a bag without camera topics, -C and -D (SGBM stereo depth from the pair) on one without the
    LiDAR: every frame gives outputs stamped by its input, nothing is dropped."""
    grid = GridSpec(dims=(32, 32, 8), voxel_size=0.4, origin=(0.0, -6.4, -2.0))
    model = {"dim": 16, "voxel_blocks": [1, 1, 1], "norm_groups": 4, "swin": SMALL_SWIN}
    data = {"grid": grid.to_dict()}
    if name != "l2cocc_l":
        model.update(CAMERA)
        data.update(image_crop=[32, 64], stereo_depth={"source": "stereo_sgbm", "sgbm": {"num_disparities": 16}})
    cfg = load_config(name, {"data": data, "model": model})
    torch.manual_seed(0)
    checkpoint = save_checkpoint(tmp_path / "m.pt", build_model(cfg).eval(), cfg, SEMANTIC_KITTI, grid)
    bag = kitti2bag(tiny_sequence, tmp_path / "full.mcap", grid=TINY_GRID, progress=False)
    unused = ({NAMES.left_image, NAMES.left_info, NAMES.right_image, NAMES.right_info} if name == "l2cocc_l"
              else {NAMES.cloud})
    summary = run(_bag_without(bag.path, unused, tmp_path / "only", ns), tmp_path / "out.mcap", checkpoint,
                  progress=False)
    assert summary.frames == 3 and summary.extra["drops"] == {}
    _, messages = read_all(summary.path, ns, [RunTopics().voxel_cloud])
    assert [raw.stamp_ns for raw, _ in messages] == [1_000_000_000, 1_100_000_000, 1_200_000_000]


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_kitti2bag_then_run_write_bags_and_say_where(tiny_sequence, points_checkpoint, tmp_path, capsys, ns):
    from ssc_core.cli.bag import main

    grid_args = ["--grid-dims", "16", "16", "4", "--voxel-size", "0.8"]  # origin defaults to (0, -6.4, -2)
    code = main(
        [
            "kitti2bag",
            "--sequence-dir",
            str(tiny_sequence),
            "--output",
            str(tmp_path / "in.db3"),
            "--end",
            "2",
            *grid_args,
            "--no-progress",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert f"wrote {tmp_path / 'in'}/" in printed and "ros2 bag play" in printed
    topics, _ = read_all(tmp_path / "in", ns)
    assert topics[NAMES.gt_voxels].count == 1 and topics[NAMES.left_image].count == 2
    code = main(
        [
            "run",
            "--input",
            str(tmp_path / "in"),
            "--output",
            str(tmp_path / "out.mcap"),
            "--checkpoint",
            str(points_checkpoint),
            "--device",
            "cpu",
            "--no-progress",
        ]
    )
    assert code == 0
    assert "/ssc_node/voxel_cloud" in capsys.readouterr().out
    topics, _ = read_all(tmp_path / "out", ns)
    assert topics[RunTopics().occupancy_grid].count == 2


def test_cli_errors_exit_2_with_a_message(tmp_path, capsys, points_checkpoint):
    from ssc_core.cli.bag import main

    assert main(["kitti2bag", "--sequence-dir", str(tmp_path / "none"), "--output", str(tmp_path / "x")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "metadata.yaml").write_text("not: [a bag")
    args = [
        "run",
        "--input",
        str(tmp_path / "junk"),
        "--output",
        str(tmp_path / "y"),
        "--checkpoint",
        str(points_checkpoint),
        "--no-progress",
    ]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err[err.index("error: "):].startswith("error: bag ") and "junk" in err


def _rewrite(src, dst, ns, keep=lambda raw: True, delay_ns=lambda raw: 0):
    with BagReader(src, ns.typestore) as reader, BagWriter(dst, ns.typestore) as writer:
        info = reader.topics
        for raw in reader.raw_messages():
            if keep(raw):
                writer.write_raw(raw.topic, raw.msgtype, raw.stamp_ns + delay_ns(raw), raw.data, info[raw.topic].qos)
    return writer.path


def test_run_waits_for_tf_that_arrives_after_the_images(tiny_bag, points_checkpoint, tmp_path, ns):
    late = _rewrite(
        tiny_bag.path, tmp_path / "late", ns, delay_ns=lambda raw: 50_000_000 if raw.topic == NAMES.tf else 0
    )
    summary = run(late, tmp_path / "out", points_checkpoint, progress=False)
    assert summary.frames == 3 and summary.extra["drops"] == {}
    assert summary.counts[RunTopics().voxel_cloud] == 3


def test_run_without_static_tf_is_a_clear_error(tiny_bag, points_checkpoint, tmp_path, ns):
    no_static = _rewrite(tiny_bag.path, tmp_path / "nostatic", ns, keep=lambda raw: raw.topic != NAMES.tf_static)
    with pytest.raises(DataFormatError, match="/tf_static"):
        run(no_static, tmp_path / "out", points_checkpoint, progress=False)


def test_run_takes_node_parameters_from_a_ros_params_file(tiny_bag, points_checkpoint, tmp_path, ns):
    params = tmp_path / "params.yaml"
    params.write_text("/**:\n  ros__parameters:\n    outputs:\n      markers: false\n    sync.slop_s: 0.01\n")
    summary = run(tiny_bag.path, tmp_path / "out", points_checkpoint, params_file=params, progress=False)
    assert RunTopics().voxels not in summary.counts and summary.counts[RunTopics().occupancy_grid] == 3
    params.write_text("/**:\n  ros__parameters:\n    outputs.markerz: false\n")
    with pytest.raises(ConfigError, match="outputs.markerz"):
        run(tiny_bag.path, tmp_path / "out2", points_checkpoint, params_file=params, progress=False)


def test_kitti2bag_takes_the_real_kitti_frame(shared_data, tmp_path, ns):
    summary = kitti2bag(shared_data / "kitti_real_frame" / "sequences" / "00", tmp_path / "real.mcap", progress=False)
    _, messages = read_all(summary.path, ns, [NAMES.left_image, NAMES.cloud])
    image = image_to_rgb(messages[0][1])
    assert image.shape == (375, 1242, 3)
    assert len(pointcloud2_to_xyzi(messages[1][1])) == 17238
    assert NAMES.right_image not in summary.counts and NAMES.gt_voxels not in summary.counts


class FailingPredictor:
    """The Predictor contract around PointsModel, raising on the given call (a model failing mid-bag)."""

    def __init__(self, checkpoint, fail_on_call: int):
        from ssc_core.inference.predictor import Predictor

        self.inner = Predictor.from_checkpoint(checkpoint)
        self.calls, self.fail_on_call = 0, fail_on_call

    def __getattr__(self, name):
        return getattr(self.__dict__["inner"], name)

    def predict(self, window):
        self.calls += 1
        if self.calls == self.fail_on_call:
            raise DataFormatError("simulated failure in frame 2")
        return self.inner.predict(window)


def test_run_failing_midway_leaves_a_readable_bag_with_what_was_done(tiny_bag, points_checkpoint, tmp_path, ns):
    predictor = FailingPredictor(points_checkpoint, fail_on_call=2)
    with pytest.raises(DataFormatError, match="simulated"):
        run(tiny_bag.path, tmp_path / "partial.mcap", predictor=predictor, progress=False)
    topics, messages = read_all(tmp_path / "partial", ns, [RunTopics().voxel_cloud])
    assert topics[RunTopics().voxel_cloud].count == 1 and messages[0][0].stamp_ns == 1_000_000_000
    assert topics[NAMES.left_image].count >= 2
