"""The launch files' own logic, run against a small fake of the ROS 2 launch API.

``launch`` / ``launch_ros`` are not installable here (they come with ROS 2, not PyPI), so the launch files were
only parsed. These tests import them with fake ``launch``, ``launch_ros`` and ``ament_index_python`` modules
that record what the files build, call ``generate_launch_description`` and ``launch_setup`` with chosen
arguments, and check the nodes, parameters and remappings that come out: every parameter name set by a launch
file must exist in the node's parameter table, and the remappings must meet the replay's topics. What the real
launch system does with them is for test/test_ros_launch.py, which runs where ROS 2 is sourced.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest

from ssc_ros.pipeline.params import REPLAY_NODE_PARAMS, SSC_NODE_PARAMS
from ssc_ros.replay import ReplayNames

ROOT = Path(__file__).resolve().parents[1]
NAMES = ReplayNames()
REPLAY_PARAMS = {p.name for p in REPLAY_NODE_PARAMS} | {"use_sim_time"}
SSC_PARAMS = {p.name for p in SSC_NODE_PARAMS} | {"use_sim_time"}


class LaunchDescription:
    def __init__(self, entities: list) -> None:
        self.entities = list(entities)


class DeclareLaunchArgument:
    def __init__(self, name: str, default_value: str | None = None, description: str = "") -> None:
        self.name, self.default_value, self.description = name, default_value, description


class OpaqueFunction:
    def __init__(self, function) -> None:
        self.function = function


class LaunchConfiguration:
    def __init__(self, name: str) -> None:
        self.name = name

    def perform(self, context: dict) -> str:
        return context[self.name]  # the launch context maps argument names to their string values


class Node:
    def __init__(self, *, package: str, executable: str, name: str | None = None, output: str = "log",
                 parameters: list | None = None, remappings: list | None = None, arguments: list | None = None) -> None:
        self.package, self.executable, self.name, self.output = package, executable, name, output
        self.parameters, self.remappings, self.arguments = parameters or [], remappings or [], arguments or []

    def merged_parameters(self) -> dict:
        """The dict entries of ``parameters`` merged (file paths are checked separately)."""
        merged: dict = {}
        for entry in self.parameters:
            if isinstance(entry, dict):
                merged.update(entry)
        return merged


def _module(name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    return module


@pytest.fixture
def load_launch(monkeypatch):
    """Import a launch file under the fake API; the package share directory is the repository root."""
    fakes = {
        "launch": _module("launch", LaunchDescription=LaunchDescription),
        "launch.actions": _module("launch.actions", DeclareLaunchArgument=DeclareLaunchArgument,
                                  OpaqueFunction=OpaqueFunction),
        "launch.substitutions": _module("launch.substitutions", LaunchConfiguration=LaunchConfiguration),
        "launch_ros": _module("launch_ros"),
        "launch_ros.actions": _module("launch_ros.actions", Node=Node),
        "ament_index_python": _module("ament_index_python"),
        "ament_index_python.packages": _module("ament_index_python.packages",
                                               get_package_share_directory=lambda package: str(ROOT)),
    }
    for name, module in fakes.items():
        monkeypatch.setitem(sys.modules, name, module)

    def load(filename: str) -> types.ModuleType:
        name = f"launch_file_{filename.split('.')[0]}"
        spec = importlib.util.spec_from_file_location(name, ROOT / "launch" / filename)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load


def _run(module: types.ModuleType, **values: str) -> tuple[dict, list[Node]]:
    """generate_launch_description's declared arguments, and the nodes launch_setup builds from their defaults
    overridden by ``values``."""
    description = module.generate_launch_description()
    declared = {e.name: e for e in description.entities if isinstance(e, DeclareLaunchArgument)}
    (opaque,) = [e for e in description.entities if isinstance(e, OpaqueFunction)]
    unknown = set(values) - set(declared)
    assert not unknown, f"not launch arguments: {unknown}"
    context = {name: arg.default_value for name, arg in declared.items()} | values
    return declared, opaque.function(context)


def _by_executable(nodes: list[Node]) -> dict[str, Node]:
    return {node.executable: node for node in nodes}


def test_replay_launch_declares_documented_arguments_and_without_checkpoint_starts_replay_and_rviz(load_launch):
    declared, nodes = _run(load_launch("kitti_replay.launch.py"), sequence_dir="/data/sequences/08")
    docs = (ROOT / "docs" / "ros.md").read_text()
    assert all(arg.description for arg in declared.values())
    assert not [name for name in declared if f"`{name}`" not in docs]
    nodes = _by_executable(nodes)
    assert set(nodes) == {"kitti_replay_node", "rviz2"}
    replay = nodes["kitti_replay_node"].merged_parameters()
    assert set(replay) <= REPLAY_PARAMS, set(replay) - REPLAY_PARAMS
    assert replay["sequence_dir"] == "/data/sequences/08" and replay["rate"] == 1.0 and replay["publish_clock"]
    assert "grid.dims" not in replay
    rviz = nodes["rviz2"]
    assert Path(rviz.arguments[1]).is_file() and rviz.merged_parameters() == {"use_sim_time": True}


def test_replay_launch_with_checkpoint_wires_ssc_node_to_the_replay_topics(load_launch):
    _, nodes = _run(load_launch("kitti_replay.launch.py"), sequence_dir="/s/08", checkpoint="/m/sgn.pt",
                    model_config="sgn_s", device="cuda", rate="0.5", rviz="false", small_grid="true",
                    end_frame="20", loop="true")
    nodes = _by_executable(nodes)
    assert set(nodes) == {"kitti_replay_node", "ssc_node"}
    replay = nodes["kitti_replay_node"].merged_parameters()
    assert set(replay) <= REPLAY_PARAMS
    assert (replay["rate"], replay["end_frame"], replay["loop"]) == (0.5, 20, True)
    assert replay["grid.dims"] == [128, 128, 16] and replay["grid.voxel_size"] == 0.4
    ssc = nodes["ssc_node"]
    params_file = [p for p in ssc.parameters if isinstance(p, str)]
    assert len(params_file) == 1 and Path(params_file[0]).is_file()  # the package's config/ssc_node.yaml
    overrides = ssc.merged_parameters()
    assert set(overrides) <= SSC_PARAMS, set(overrides) - SSC_PARAMS
    assert overrides["model.checkpoint"] == "/m/sgn.pt" and overrides["model.config"] == "sgn_s"
    assert overrides["model.device"] == "cuda" and overrides["use_sim_time"] is True
    remap = dict(ssc.remappings)
    assert remap == {"image": NAMES.left_image, "camera_info": NAMES.left_info, "points": NAMES.cloud,
                     "image_right": NAMES.right_image, "camera_info_right": NAMES.right_info}


def test_live_launch_remaps_every_input_and_sets_only_known_parameters(load_launch):
    declared, nodes = _run(load_launch("ssc.launch.py"), checkpoint="/m/sgn.pt", image="/cam/image",
                           camera_info="/cam/info", points="/lidar", lidar_frame="lidar_link", rviz="true")
    docs = (ROOT / "docs" / "ros.md").read_text()
    assert not [name for name in declared if name not in docs]
    nodes = _by_executable(nodes)
    assert set(nodes) == {"ssc_node", "rviz2"}
    ssc = nodes["ssc_node"]
    overrides = ssc.merged_parameters()
    assert set(overrides) <= SSC_PARAMS and "model.config" not in overrides  # empty model_config is left out
    assert overrides["frames.lidar"] == "lidar_link" and overrides["use_sim_time"] is False
    remap = dict(ssc.remappings)
    assert (remap["image"], remap["camera_info"], remap["points"]) == ("/cam/image", "/cam/info", "/lidar")
    assert remap["image_right"] == declared["image_right"].default_value


def test_rgbd_launch_runs_ssc_node_in_rgbd_mode_on_the_nyu_replay_topics(load_launch):
    from ssc_ros.bag.pipeline import node_parameters
    from ssc_ros.replay_nyu import NYUReplayNames

    nyu = NYUReplayNames()
    declared, nodes = _run(load_launch("rgbd.launch.py"), checkpoint="/m/cleaners.pt", grid_origin="[-2.4, 0.5, 0]",
                           rviz="true")
    docs = (ROOT / "docs" / "ros.md").read_text()
    assert all(arg.description for arg in declared.values())
    assert not [name for name in declared if f"`{name}`" not in docs]
    nodes = _by_executable(nodes)
    assert set(nodes) == {"ssc_node", "rviz2"}
    ssc = nodes["ssc_node"]
    params_file, overrides = ssc.parameters
    assert params_file == str(ROOT / "config" / "ssc_node_rgbd.yaml")
    assert set(overrides) <= SSC_PARAMS and overrides["input.mode"] == "rgbd"
    assert overrides["rgbd.grid_origin"] == [-2.4, 0.5, 0.0] and overrides["rgbd.grid_frame"] == nyu.grid_frame
    remap = dict(ssc.remappings)
    assert (remap["image"], remap["depth"], remap["camera_info"]) == (nyu.image, nyu.depth, nyu.camera_info)
    node_overrides = {k: v for k, v in overrides.items() if k != "use_sim_time"}  # a ROS built-in
    assert node_parameters(params_file, node_overrides)["rgbd.grid_origin"] == [-2.4, 0.5, 0.0]  # names and types
    assert nodes["rviz2"].arguments[-1].endswith("rgbd.rviz") and (ROOT / "rviz" / "rgbd.rviz").is_file()
