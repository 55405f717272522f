"""Replay a SemanticKITTI sequence, run ssc_node on it and show both in RViz.

    ros2 launch ssc_ros kitti_replay.launch.py sequence_dir:=/data/kitti/dataset/sequences/08 \
        checkpoint:=runs/sgn_s/best.pt [model_config:=sgn_s] [device:=cuda] [rate:=0.5] [rviz:=true]

No trained checkpoint is shipped: ``checkpoint`` is a file that ``ssc-train`` wrote (its ``best.pt``) or
``ssc-import-checkpoint`` made from the authors' weights (README, "Checkpoints: none is shipped").
Without ``checkpoint`` only the replay (and RViz) start: camera, LiDAR, TF and ground truth can be inspected.
The replay node publishes /clock (it runs on wall time); every other node uses use_sim_time.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

ARGS = {
    "sequence_dir": ("", "SemanticKITTI sequence folder (.../sequences/08), required"),
    "checkpoint": ("", "ssc-train checkpoint; empty: replay and RViz only"),
    "model_config": ("", "config name/path to run with (empty: the checkpoint's own)"),
    "device": ("auto", "torch device for the model"),
    "precision": ("fp32", "fp32, fp16 or bf16"),
    "rate": ("1.0", "replay speed factor"),
    "start_frame": ("0", "first frame"),
    "end_frame": ("-1", "stop before this frame (-1: end)"),
    "loop": ("false", "loop the sequence"),
    "small_grid": ("false", "ground-truth labels on ssc-make-synthetic --small's 128x128x16 grid at 0.4 m"),
    "rviz": ("true", "start RViz with rviz/ssc.rviz"),
    "use_sim_time": ("true", "ssc_node and RViz follow the replay's /clock"),
    "params_file": ("", "ssc_node parameter YAML (default: the package's config/ssc_node.yaml)"),
}


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def launch_setup(context, *args, **kwargs):
    """Build the nodes from the evaluated launch arguments."""
    arg = {name: LaunchConfiguration(name).perform(context) for name in ARGS}
    share = get_package_share_directory("ssc_ros")
    sim_time = _truthy(arg["use_sim_time"])
    label_grid = {"grid.dims": [128, 128, 16], "grid.voxel_size": 0.4} if _truthy(arg["small_grid"]) else {}
    nodes = [
        Node(
            package="ssc_ros", executable="kitti_replay_node", name="kitti_replay_node", output="screen",
            parameters=[{
                "sequence_dir": arg["sequence_dir"], "rate": float(arg["rate"]),
                "start_frame": int(arg["start_frame"]), "end_frame": int(arg["end_frame"]),
                "loop": _truthy(arg["loop"]), "publish_clock": sim_time, "use_sim_time": False, **label_grid,
            }],
        )
    ]
    if arg["checkpoint"]:
        params_file = arg["params_file"] or os.path.join(share, "config", "ssc_node.yaml")
        overrides = {"model.checkpoint": arg["checkpoint"], "model.device": arg["device"],
                     "model.precision": arg["precision"], "frames.fixed": "odom", "frames.lidar": "velo_link",
                     "use_sim_time": sim_time}
        if arg["model_config"]:  # an empty string would not survive launch's YAML typing of values
            overrides["model.config"] = arg["model_config"]
        nodes.append(Node(
            package="ssc_ros", executable="ssc_node", name="ssc_node", output="screen",
            parameters=[params_file, overrides],
            remappings=[
                ("image", "/kitti/camera_color_left/image_raw"),
                ("camera_info", "/kitti/camera_color_left/camera_info"),
                ("points", "/kitti/velo/pointcloud"),
                ("image_right", "/kitti/camera_color_right/image_raw"),
                ("camera_info_right", "/kitti/camera_color_right/camera_info"),
            ],
        ))
    if _truthy(arg["rviz"]):
        nodes.append(Node(
            package="rviz2", executable="rviz2", name="rviz2", output="log",
            arguments=["-d", os.path.join(share, "rviz", "ssc.rviz")],
            parameters=[{"use_sim_time": sim_time}],
        ))
    return nodes


def generate_launch_description() -> LaunchDescription:
    """Launch arguments + the OpaqueFunction that builds the nodes."""
    declared = [DeclareLaunchArgument(name, default_value=default, description=desc)
                for name, (default, desc) in ARGS.items()]
    return LaunchDescription([*declared, OpaqueFunction(function=launch_setup)])
