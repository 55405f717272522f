"""Run ssc_node in RGB-D mode (indoor models such as CleanerS) on a live RGB-D camera, or on a replayed NYU bag.

    ros2 launch ssc_ros rgbd.launch.py checkpoint:=runs/cleaners_student/best.pt \
        image:=/camera/color/image_raw depth:=/camera/aligned_depth_to_color/image_raw \
        camera_info:=/camera/color/camera_info grid_frame:=map grid_origin:="[-2.4, 0.5, 0.0]" [rviz:=true]

    ros2 bag play rooms/ --clock &   # from ssc-bag nyu2bag
    ros2 launch ssc_ros rgbd.launch.py checkpoint:=runs/cleaners_student/best.pt use_sim_time:=true rviz:=true

No trained checkpoint is shipped: ``checkpoint`` is a file that ``ssc-train`` wrote (its ``best.pt``) or
``ssc-import-checkpoint`` made from the authors' weights (README, "Checkpoints: none is shipped").
The depth must be registered to the colour image (16UC1 mm or 32FC1 m); TF must give the camera_info frame (an
optical frame) relative to ``grid_frame``, whose z axis points up. The grid (60 x 36 x 60 voxels of 0.08 m for the
NYU models: 4.8 m along x, 4.8 m along y, 2.88 m up) starts at ``grid_origin`` in that frame. The defaults fit the
NYU replay (grid frame nyu_grid at each room's grid corner).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

ARGS = {
    "checkpoint": ("", "ssc-train checkpoint of an indoor model (required)"),
    "model_config": ("", "config name/path to run with (empty: the checkpoint's own)"),
    "device": ("auto", "torch device for the model"),
    "image": ("/camera/rgb/image_raw", "colour image topic"),
    "depth": ("/camera/depth_registered/image_raw", "depth registered to the colour image (16UC1 mm or 32FC1 m)"),
    "camera_info": ("/camera/rgb/camera_info", "CameraInfo of the colour image"),
    "grid_frame": ("nyu_grid", "frame the voxel grid is anchored in (z up)"),
    "grid_origin": ("[0.0, 0.0, 0.0]", "corner of the grid's first voxel in grid_frame, [x, y, z] metres"),
    "tsdf_subdivision": ("4", "sub-voxels per voxel edge for the TSDF (4 as in training, 2 is cheaper)"),
    "use_sim_time": ("false", "use /clock (bag playback)"),
    "rviz": ("false", "start RViz with rviz/rgbd.rviz"),
    "params_file": ("", "parameter YAML (default: the package's config/ssc_node_rgbd.yaml)"),
}


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def _origin(value: str) -> list[float]:
    parts = [p for p in value.strip().strip("[]").replace(",", " ").split() if p]
    if len(parts) != 3:
        raise ValueError(f"grid_origin must be three numbers, got {value!r}")
    return [float(p) for p in parts]


def launch_setup(context, *args, **kwargs):
    """ssc_node in RGB-D mode with the RGB-D parameter file, overrides from the arguments, remapped inputs."""
    arg = {name: LaunchConfiguration(name).perform(context) for name in ARGS}
    share = get_package_share_directory("ssc_ros")
    sim_time = _truthy(arg["use_sim_time"])
    overrides = {
        "model.checkpoint": arg["checkpoint"], "model.device": arg["device"], "input.mode": "rgbd",
        "rgbd.grid_frame": arg["grid_frame"], "rgbd.grid_origin": _origin(arg["grid_origin"]),
        "rgbd.tsdf_subdivision": int(arg["tsdf_subdivision"]), "topics.image": "image", "topics.depth": "depth",
        "topics.camera_info": "camera_info", "use_sim_time": sim_time,
    }
    if arg["model_config"]:
        overrides["model.config"] = arg["model_config"]
    nodes = [Node(
        package="ssc_ros", executable="ssc_node", name="ssc_node", output="screen",
        parameters=[arg["params_file"] or os.path.join(share, "config", "ssc_node_rgbd.yaml"), overrides],
        remappings=[(name, arg[name]) for name in ("image", "depth", "camera_info")],
    )]
    if _truthy(arg["rviz"]):
        nodes.append(Node(
            package="rviz2", executable="rviz2", name="rviz2", output="log",
            arguments=["-d", os.path.join(share, "rviz", "rgbd.rviz")], parameters=[{"use_sim_time": sim_time}],
        ))
    return nodes


def generate_launch_description() -> LaunchDescription:
    """Launch arguments + the OpaqueFunction that builds the nodes."""
    declared = [DeclareLaunchArgument(name, default_value=default, description=desc)
                for name, (default, desc) in ARGS.items()]
    return LaunchDescription([*declared, OpaqueFunction(function=launch_setup)])
