"""The offline ROS 2 path, no ROS installation needed (rosbags): KITTI sequence -> bag, bag -> pipeline -> bag.

- ``kitti2bag`` (from_kitti.py): a SemanticKITTI-layout sequence (real or synthetic) as a ROS 2 bag with exactly
  the topics, frames, stamps and QoS the live replay node publishes.
- ``nyu2bag`` (from_nyu.py): an NYU split (e.g. synthetic rooms) as image, depth, camera_info and /tf for the
  RGB-D mode of ``ssc_node``.
- ``run`` (pipeline.py): reads a bag, feeds it through the same FrameSynchronizer, TemporalBuffer, Predictor and
  OutputBuilder as ``ssc_node`` and writes a bag holding the input topics plus the node's output topics under
  their live names.
- files.py: bag folders, QoS, BagWriter (closed in ``finally``: what was written before an error stays a
  readable bag) and BagReader (every failure of a bag file is a ``DataFormatError`` naming the bag);
  tf_history.py: TF lookups at a stamp from the bag's /tf and /tf_static.

Bags are rosbag2 version 8 (Humble reads it), MCAP by default, sqlite3 on request. See docs/viz_and_bags.md.
"""

from ssc_ros.bag.files import (
    BagReader,
    BagSummary,
    BagWriter,
    QosSpec,
    RawMessage,
    TopicInfo,
    bag_location,
    input_bag_dir,
    output_bag_dir,
    remove_bag,
    to_rosbags_qos,
)
from ssc_ros.bag.from_kitti import kitti2bag, replay_qos
from ssc_ros.bag.from_nyu import nyu2bag
from ssc_ros.bag.pipeline import BagPipeline, RunTopics, node_parameters, run
from ssc_ros.bag.tf_history import TransformHistory

__all__ = [
    "BagPipeline",
    "BagReader",
    "BagSummary",
    "BagWriter",
    "QosSpec",
    "RawMessage",
    "RunTopics",
    "TopicInfo",
    "TransformHistory",
    "bag_location",
    "input_bag_dir",
    "kitti2bag",
    "node_parameters",
    "nyu2bag",
    "output_bag_dir",
    "remove_bag",
    "replay_qos",
    "run",
    "to_rosbags_qos",
]
