"""Run ssc_node on live sensors: remap its inputs to your camera (and LiDAR) topics.

    ros2 launch ssc_ros ssc.launch.py checkpoint:=runs/sgn_s/best.pt \
        image:=/camera/color/image_raw camera_info:=/camera/color/camera_info points:=/lidar/points \
        fixed_frame:=odom lidar_frame:=lidar_link [device:=cuda] [rviz:=true]

No trained checkpoint is shipped: ``checkpoint`` is a file that ``ssc-train`` wrote (its ``best.pt``) or
``ssc-import-checkpoint`` made from the authors' weights (README, "Checkpoints: none is shipped").
The camera_info frame must be reachable from ``lidar_frame`` through TF; for a temporal model the
``fixed_frame <- lidar_frame`` pose must be on /tf as well (odometry).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

ARGS = {
    "checkpoint": ("", "ssc-train checkpoint (required)"),
    "model_config": ("", "config name/path to run with (empty: the checkpoint's own)"),
    "device": ("auto", "torch device for the model"),
    "precision": ("fp32", "fp32, fp16 or bf16"),
    "image": ("/camera/image_raw", "left colour image topic"),
    "camera_info": ("/camera/camera_info", "its CameraInfo topic"),
    "points": ("/points", "LiDAR PointCloud2 topic (used by models that take points)"),
    "image_right": ("/camera_right/image_raw", "right image topic (stereo models)"),
    "camera_info_right": ("/camera_right/camera_info", "right CameraInfo topic (stereo models)"),
    "fixed_frame": ("odom", "fixed frame of the odometry"),
    "lidar_frame": ("velo_link", "frame of the LiDAR (the voxel grid's frame)"),
    "use_sim_time": ("false", "use /clock (bag playback)"),
    "rviz": ("false", "start RViz with rviz/ssc.rviz"),
    "params_file": ("", "parameter YAML (default: the package's config/ssc_node.yaml)"),
}


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def launch_setup(context, *args, **kwargs):
    """ssc_node with the package's parameter file, overrides from the arguments, remapped inputs."""
    arg = {name: LaunchConfiguration(name).perform(context) for name in ARGS}
    share = get_package_share_directory("ssc_ros")
    sim_time = _truthy(arg["use_sim_time"])
    overrides = {
        "model.checkpoint": arg["checkpoint"], "model.device": arg["device"], "model.precision": arg["precision"],
        "frames.fixed": arg["fixed_frame"], "frames.lidar": arg["lidar_frame"], "use_sim_time": sim_time,
    }
    if arg["model_config"]:
        overrides["model.config"] = arg["model_config"]
    nodes = [Node(
        package="ssc_ros", executable="ssc_node", name="ssc_node", output="screen",
        parameters=[arg["params_file"] or os.path.join(share, "config", "ssc_node.yaml"), overrides],
        remappings=[(name, arg[name]) for name in ("image", "camera_info", "points", "image_right",
                                                     "camera_info_right")],
    )]
    if _truthy(arg["rviz"]):
        nodes.append(Node(
            package="rviz2", executable="rviz2", name="rviz2", output="log",
            arguments=["-d", os.path.join(share, "rviz", "ssc.rviz")], parameters=[{"use_sim_time": sim_time}],
        ))
    return nodes


def generate_launch_description() -> LaunchDescription:
    """Launch arguments + the OpaqueFunction that builds the nodes."""
    declared = [DeclareLaunchArgument(name, default_value=default, description=desc)
                for name, (default, desc) in ARGS.items()]
    return LaunchDescription([*declared, OpaqueFunction(function=launch_setup)])
