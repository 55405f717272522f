"""``kitti2bag``: a SemanticKITTI-layout sequence as a ROS 2 bag holding exactly what kitti_replay_node publishes.

The records come from ``ssc_ros.replay`` and the messages from ``ssc_ros.messages`` (the replay node uses both),
so topics, frames and stamps match the live replay; the offered QoS mirrors the node's publishers.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from ssc_core.data.semantic_kitti import SequencePaths
from ssc_core.data.voxel_grid import sequence_grid
from ssc_core.types import GridSpec
from ssc_ros.bag.files import LATCHED_QOS, SENSOR_QOS, TF_QOS, BagSummary, BagWriter, QosSpec
from ssc_ros.messages import rosbags_namespace
from ssc_ros.replay import GroundTruthMarkers, KittiSequence, ReplayNames, replay_messages, static_messages


def replay_qos(topic: str, names: ReplayNames | None = None) -> QosSpec:
    """The offered QoS of a replay topic in a bag, as kitti_replay_node's publishers offer it: /tf_static and the
    GT voxels latched, /tf reliable depth 100, sensor streams reliable depth 5."""
    names = names or ReplayNames()
    if topic in (names.tf_static, names.gt_voxels):
        return LATCHED_QOS
    if topic == names.tf:
        return TF_QOS
    return SENSOR_QOS


def kitti2bag(
    sequence_dir: str | Path,
    output: str | Path,
    storage: str | None = None,
    distro: str = "humble",
    start: int = 0,
    end: int | None = None,
    with_gt: bool = True,
    with_right: bool = True,
    with_clock: bool = False,
    grid: GridSpec | None = None,
    progress: bool = True,
    overwrite: bool = False,
    warn: Callable[[str], None] = print,
) -> BagSummary:
    """Write a SemanticKITTI-layout sequence folder as a ROS 2 bag with the replay node's topics, frames and
    stamps (``ssc_ros.replay``): /tf_static once, then per frame /tf, images + camera_info, the LiDAR cloud and
    the ground-truth voxels (``with_gt``, when labelled). /clock is left out unless ``with_clock`` (play the
    bag with ``ros2 bag play --clock`` instead). Frames [start, end); ``grid``: the voxel grid of the label files
    (default: the one the sequence records, else SemanticKITTI's, checked against the files, see
    ``ssc_core.data.voxel_grid``). ``warn`` gets one line per thing the bag leaves out or makes up (no
    poses.txt: no /tf; no times.txt: stamps from frame numbers). ``overwrite``: replace an existing bag at
    ``output``. Returns a BagSummary."""
    ns = rosbags_namespace(distro)
    names = ReplayNames()
    if grid is None and with_gt:
        grid = sequence_grid(SequencePaths.existing(sequence_dir))
    seq = KittiSequence(sequence_dir, start=start, end=end, load_right=with_right, load_gt=with_gt, grid=grid)
    for note in seq.notes:
        warn(note)
    gt_markers = GroundTruthMarkers(seq.class_set) if with_gt else None
    first_stamp = seq.stamp_ns(seq.frames[0])
    last_stamp = first_stamp
    with BagWriter(output, ns.typestore, storage, overwrite=overwrite) as writer:
        for topic, type_name, msg in static_messages(seq, ns, first_stamp, names):
            writer.write(topic, ns.msgtype(type_name), first_stamp, msg, replay_qos(topic, names))
        for record in tqdm(seq, total=len(seq), desc="kitti2bag", unit="frame", disable=not progress):
            messages = replay_messages(seq, record, ns, names, gt_markers, publish_clock=with_clock)
            for topic, type_name, msg in messages:
                writer.write(topic, ns.msgtype(type_name), record.stamp_ns, msg, replay_qos(topic, names))
            last_stamp = record.stamp_ns
    return BagSummary(writer.path, writer.storage_file, dict(writer.counts), len(seq), first_stamp, last_stamp)
