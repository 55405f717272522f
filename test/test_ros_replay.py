"""replay.py: a SemanticKITTI folder becomes timed messages with consistent TF, calibration and ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from ssc_core.data.semantic_kitti import (
    write_calib,
    write_image,
    write_packed_bits,
    write_points,
    write_poses,
    write_times,
    write_voxel_labels,
)
from ssc_core.errors import DataFormatError
from ssc_core.geometry.projection import project_points
from ssc_core.types import Calib, GridSpec
from ssc_ros.messages import (
    camera_info_to_P,
    image_to_rgb,
    pointcloud2_to_xyzi,
    rosbags_namespace,
    stamp_to_ns,
    transform_to_matrix,
)
from ssc_ros.pipeline.inputs import FrameAssembler
from ssc_ros.replay import GroundTruthMarkers, KittiSequence, ReplayNames, replay_messages, static_messages

P2 = np.array([[700.0, 0.0, 8.0, 44.0], [0.0, 700.0, 6.0, 0.2], [0.0, 0.0, 1.0, 0.003]])
P3 = P2.copy()
P3[0, 3] = -340.0
TR = np.array([[0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, -0.08], [1.0, 0.0, 0.0, -0.27]])
GRID = GridSpec(dims=(8, 8, 4), voxel_size=0.5, origin=(0.0, -2.0, -1.0))


@pytest.fixture
def sequence(tmp_path):
    """A 4-frame sequence: images, right images, scans, poses driving +1 m in x per frame, GT on frame 2."""
    seq = tmp_path / "sequences" / "05"
    write_calib(seq / "calib.txt", Calib(P2=P2, P3=P3, T_cam0_velo=TR))
    poses_velo = np.tile(np.eye(4), (4, 1, 1))
    poses_velo[:, 0, 3] = np.arange(4)
    tr = np.vstack([TR, [0, 0, 0, 1]])
    write_poses(seq / "poses.txt", tr[None] @ poses_velo @ np.linalg.inv(tr)[None])
    write_times(seq / "times.txt", np.arange(4) * 0.1037)
    for i in range(4):
        write_image(seq / "image_2" / f"{i:06d}.png", np.full((12, 16, 3), 10 * i, np.uint8))
        write_image(seq / "image_3" / f"{i:06d}.png", np.full((12, 16, 3), 5, np.uint8))
        write_points(seq / "velodyne" / f"{i:06d}.bin", np.array([[5.0, 0.0, 0.0, 0.5], [6.0, 1.0, 0.2, 0.1]]))
    labels = np.zeros(GRID.dims, np.uint16)
    labels[1, 1, 0] = 40   # road
    labels[2, 2, 1] = 10   # car
    labels[3, 3, 1] = 10   # car, but invalid
    invalid = np.zeros(GRID.dims, np.uint8)
    invalid[3, 3, 1] = 1
    write_voxel_labels(seq / "voxels" / "000002.label", labels)
    write_packed_bits(seq / "voxels" / "000002.invalid", invalid)
    return seq


@pytest.fixture(scope="module")
def ns():
    return rosbags_namespace()


def by_topic(messages):
    return {topic: msg for topic, _, msg in messages}


def test_records_carry_stamps_from_times_with_the_offset(sequence):
    seq = KittiSequence(sequence, grid=GRID)
    assert seq.frames == [0, 1, 2, 3] and seq.period_s == pytest.approx(0.1037)
    assert [r.stamp_ns for r in seq] == [1_000_000_000 + round(i * 0.1037e9) for i in range(4)]
    assert seq.stamp_ns(0, loop=1) > seq.stamp_ns(3)  # looping never goes back in time


def test_every_message_serialises_and_shares_the_frame_stamp(sequence, ns):
    seq = KittiSequence(sequence, grid=GRID)
    rec = seq.record(2)
    msgs = replay_messages(seq, rec, ns, gt_markers=GroundTruthMarkers())
    names = ReplayNames()
    topics = {t for t, _, _ in msgs}
    assert topics == {names.clock, names.tf, names.left_image, names.left_info, names.right_image, names.right_info,
                      names.cloud, names.gt_voxels}
    for topic, type_name, msg in msgs:
        raw = msg if isinstance(msg, bytes) else ns.typestore.serialize_cdr(msg, ns.msgtype(type_name))
        back = ns.typestore.deserialize_cdr(raw, ns.msgtype(type_name))
        stamp = back.clock if topic == names.clock else (
            back.transforms[0].header.stamp if topic == names.tf else (
                back.markers[0].header.stamp if topic == names.gt_voxels else back.header.stamp))
        assert stamp_to_ns(stamp) == rec.stamp_ns, topic
    out = by_topic(msgs)
    assert image_to_rgb(out[names.left_image])[0, 0, 0] == 20
    np.testing.assert_allclose(camera_info_to_P(out[names.right_info]), P3)
    np.testing.assert_allclose(pointcloud2_to_xyzi(out[names.cloud])[:, 0], [5.0, 6.0])
    np.testing.assert_allclose(transform_to_matrix(out[names.tf].transforms[0].transform)[0, 3], 2.0, atol=1e-9)


def test_ground_truth_markers_hide_invalid_voxels(sequence, ns):
    seq = KittiSequence(sequence, grid=GRID)
    gt = by_topic(replay_messages(seq, seq.record(2), ns, gt_markers=GroundTruthMarkers()))["/kitti/voxels_gt"]
    cubes = {m.ns: len(m.points) for m in ns.typestore.deserialize_cdr(gt, ns.msgtype("MarkerArray")).markers
             if m.action == 0}
    assert cubes == {"gt/road": 1, "gt/car": 1}
    assert "/kitti/voxels_gt" not in by_topic(replay_messages(seq, seq.record(1), ns, gt_markers=GroundTruthMarkers()))


def test_labels_of_another_grid_raise_or_are_left_out_while_the_frame_keeps_its_sensors(sequence, ns):
    other = GridSpec(dims=(2 * GRID.dims[0], GRID.dims[1], GRID.dims[2]), voxel_size=GRID.voxel_size,
                     origin=GRID.origin)
    with pytest.raises(DataFormatError, match="000002.label"):
        KittiSequence(sequence, grid=other).record(2)
    record = KittiSequence(sequence, grid=other, skip_bad_gt=True).record(2)
    assert record.gt_labels is None and "000002.label" in record.gt_error
    assert record.image_left is not None and record.points_velo is not None and record.T_odom_velo is not None
    topics = by_topic(replay_messages(KittiSequence(sequence, grid=other, skip_bad_gt=True), record, ns,
                                      gt_markers=GroundTruthMarkers()))
    assert "/kitti/voxels_gt" not in topics and len(topics) >= 6  # clock, tf, images, infos, cloud
    assert KittiSequence(sequence, grid=GRID, skip_bad_gt=True).record(2).gt_error is None


def test_replayed_tf_and_camera_info_give_back_the_kitti_calibration(sequence, ns):
    """The loop closes: what the replay publishes, the node's FrameAssembler turns back into P2 and Tr."""
    seq = KittiSequence(sequence, grid=GRID)
    rec = seq.record(0)
    out = by_topic(replay_messages(seq, rec, ns))
    static = static_messages(seq, ns, rec.stamp_ns)[0][2]
    T_velo_cam = {t.child_frame_id: transform_to_matrix(t.transform) for t in static.transforms}
    assert set(T_velo_cam) == {"camera_gray_left", "camera_color_left", "camera_color_right"}
    asm = FrameAssembler(needs_points=True, needs_right_image=False, warn=lambda s: None)
    frame = asm.assemble(out["/kitti/camera_color_left/image_raw"], out["/kitti/camera_color_left/camera_info"],
                         out["/kitti/velo/pointcloud"], T_cam_velo=np.linalg.inv(T_velo_cam["camera_color_left"]))
    assert frame is not None
    np.testing.assert_allclose(frame.calib.T_cam0_velo[:3], TR, atol=1e-9)
    np.testing.assert_allclose(frame.calib.P2, P2)


def test_frame_range_and_missing_folder(sequence):
    assert KittiSequence(sequence, start=1, end=3, grid=GRID).frames == [1, 2]
    with pytest.raises(DataFormatError, match="no frames in the range"):
        KittiSequence(sequence, start=10, grid=GRID)
    with pytest.raises(DataFormatError, match="not found"):
        KittiSequence(sequence.parent / "99")


def test_real_kitti_frame_replays_and_its_lidar_projects_into_the_image(shared_data, ns):
    seq = KittiSequence(shared_data / "kitti_real_frame" / "sequences" / "00")
    rec = seq.record(seq.frames[0])
    out = by_topic(replay_messages(seq, rec, ns))
    img = out["/kitti/camera_color_left/image_raw"]
    assert (img.width, img.height) == (1242, 375)
    static = static_messages(seq, ns, rec.stamp_ns)[0][2]
    T_velo_cam2 = {t.child_frame_id: transform_to_matrix(t.transform) for t in static.transforms}["camera_color_left"]
    frame = FrameAssembler(needs_points=True, needs_right_image=False, warn=lambda s: None).assemble(
        img, out["/kitti/camera_color_left/camera_info"], out["/kitti/velo/pointcloud"],
        T_cam_velo=np.linalg.inv(T_velo_cam2))
    pix, depth = project_points(frame.points_velo, frame.calib.K, frame.calib.T_cam0_velo)
    inside = (depth > 0) & (pix[:, 0] >= 0) & (pix[:, 0] < 1242) & (pix[:, 1] >= 0) & (pix[:, 1] < 375)
    assert len(frame.points_velo) == 17_238 and inside.mean() > 0.95  # the scan was cropped to the camera FOV
