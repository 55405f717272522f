"""``nyu2bag``: an NYU split (synthetic rooms from ``ssc-make-synthetic --layout nyu``, or real NYU with the MonoScene
``.bin`` beside the 3D-Sketch files) as a ROS 2 bag for the RGB-D mode of ssc_node (``replay_nyu``), to watch in
RViz with ``ros2 bag play`` + ``launch/rgbd.launch.py`` or to run offline with ``ssc-bag run``."""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from ssc_ros.bag.files import LATCHED_QOS, SENSOR_QOS, TF_QOS, BagSummary, BagWriter
from ssc_ros.messages import rosbags_namespace
from ssc_ros.replay_nyu import NYUReplayNames, nyu_gt_markers, nyu_records, nyu_replay_messages, read_nyu_record


def nyu2bag(root: str | Path, output: str | Path, split: str = "test", storage: str | None = None,
            distro: str = "humble", period_s: float = 1.0, with_gt: bool = True, progress: bool = True,
            overwrite: bool = False) -> BagSummary:
    """Write every frame of ``split`` (one room each, ``period_s`` apart) as /tf, image, depth (32FC1),
    camera_info and, ``with_gt``, the ground-truth MarkerArray (latched); ``overwrite`` replaces an existing bag
    at ``output``. Returns a BagSummary."""
    ns = rosbags_namespace(distro)
    names = NYUReplayNames()
    records = nyu_records(root, split, period_s)
    markers = nyu_gt_markers() if with_gt else None
    qos = {names.tf: TF_QOS, names.gt_voxels: LATCHED_QOS}
    with BagWriter(output, ns.typestore, storage, overwrite=overwrite) as writer:
        for frame_id, stamp in tqdm(records, desc="nyu2bag", unit="frame", disable=not progress):
            record = read_nyu_record(root, frame_id, split, stamp)
            for topic, type_name, msg in nyu_replay_messages(record, ns, names, markers):
                writer.write(topic, ns.msgtype(type_name), stamp, msg, qos.get(topic, SENSOR_QOS))
    stamps = [s for _, s in records]
    return BagSummary(writer.path, writer.storage_file, dict(writer.counts), len(records), min(stamps, default=None),
                      max(stamps, default=None))
