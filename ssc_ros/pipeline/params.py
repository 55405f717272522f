"""The ROS parameters of ssc_node and kitti_replay_node: names, defaults, descriptions (one table, ROS-agnostic).

The nodes declare exactly these (with the description as the ParameterDescriptor); ``config/ssc_node.yaml`` and
docs/ros.md list the same names, which a test checks. Class lists are comma-separated strings ("car,person"),
because ROS parameters cannot declare an empty list with a type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ssc_core.errors import ConfigError
from ssc_core.types import GridSpec
from ssc_ros.pipeline.outputs import DEFAULT_GROUND_CLASSES, OutputOptions


@dataclass(frozen=True)
class ParamSpec:
    """One parameter: dotted name, default (its type is the parameter's type) and a one-line description."""

    name: str
    default: Any
    description: str


SSC_NODE_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("model.checkpoint", "", "Checkpoint file written by ssc-train (required)."),
    ParamSpec("model.config", "", "Config name or YAML path to run with; must match the checkpoint's model/data "
              "sections. Empty: the config stored in the checkpoint."),
    ParamSpec("model.device", "auto", "Torch device: auto, cpu, cuda, cuda:1, ..."),
    ParamSpec("model.precision", "fp32", "fp32, fp16 or bf16 (autocast, in camera and rgbd mode; fp16 only on CUDA)."),
    ParamSpec("model.num_threads", 0, "Torch CPU threads for inference; 0: the CLIs' rule (OMP_NUM_THREADS, else "
              "the cores the load average leaves idle)."),
    ParamSpec("topics.image", "image", "Left colour image (sensor_msgs/Image: rgb8, bgr8, rgba8, bgra8, mono8); "
              "subscribed only for camera models."),
    ParamSpec("topics.camera_info", "camera_info", "CameraInfo of the left image (P is used as KITTI's P2); "
              "subscribed only for camera models."),
    ParamSpec("topics.points", "points", "LiDAR PointCloud2 (x, y, z[, intensity]); subscribed only when the "
              "model uses points."),
    ParamSpec("topics.image_right", "image_right", "Right image; subscribed only for stereo models."),
    ParamSpec("topics.camera_info_right", "camera_info_right", "CameraInfo of the right image (stereo models)."),
    ParamSpec("input.qos", "sensor_data", "Input QoS: sensor_data (best effort, depth input.depth) or reliable."),
    ParamSpec("input.depth", 5, "Input subscription queue depth."),
    ParamSpec("sync.slop_s", 0.05, "Approximate-time sync: max stamp difference within a set (s)."),
    ParamSpec("sync.queue_size", 10, "Approximate-time sync: messages kept per input."),
    ParamSpec("frames.fixed", "odom", "Fixed frame for the temporal window poses (TF fixed <- LiDAR)."),
    ParamSpec("frames.lidar", "velo_link", "LiDAR frame: the grid's frame. Empty: the point cloud's frame_id."),
    ParamSpec("frames.output", "", "Frame written into the outputs' headers. Empty: frames.lidar (the grid is "
              "defined there; set another frame only if it coincides with it)."),
    ParamSpec("tf.wait_s", 0.2, "How long an input set may wait for its TF before it is dropped (s)."),
    ParamSpec("window.from_model", True, "Take the history offsets from the model (frames / its frame rate)."),
    ParamSpec("window.offsets_s", [-1.2, -0.9, -0.6, -0.3], "History offsets in seconds when window.from_model "
              "is false."),
    ParamSpec("window.tolerance_s", 0.0, "Max distance of a history frame from its wanted time (s); 0: half "
              "the smallest offset spacing."),
    ParamSpec("window.require_pose", False, "Drop sets without a fixed <- LiDAR pose instead of running "
              "without history."),
    ParamSpec("window.reset_after_s", 3.0, "A stamp this far behind the newest clears the window (replay loop)."),
    ParamSpec("processing.max_staleness_s", 1.0, "Sets older than this when inference could start are dropped."),
    ParamSpec("outputs.markers", True, "Publish ~/voxels (MarkerArray, one CUBE_LIST per class)."),
    ParamSpec("outputs.cloud", True, "Publish ~/voxel_cloud (PointCloud2: x, y, z, rgb, confidence, label)."),
    ParamSpec("outputs.occupancy", True, "Publish ~/occupancy_grid (nav_msgs/OccupancyGrid)."),
    ParamSpec("outputs.latch", True, "Outputs are transient-local and always built; false: volatile, built only "
              "when subscribed."),
    ParamSpec("outputs.hidden_classes", "", "Comma-separated class names never drawn (markers and cloud)."),
    ParamSpec("outputs.min_confidence", 0.0, "Voxels (and occupancy cells) below this confidence are left out."),
    ParamSpec("outputs.crop", False, "Apply outputs.crop_min/crop_max (grid frame, m) to all outputs."),
    ParamSpec("outputs.crop_min", [0.0, -25.6, -2.0], "Crop box minimum x, y, z (m)."),
    ParamSpec("outputs.crop_max", [51.2, 25.6, 4.4], "Crop box maximum x, y, z (m)."),
    ParamSpec("outputs.cull_hidden", True, "Leave out marker cubes enclosed on all six sides (invisible)."),
    ParamSpec("outputs.max_marker_voxels", 0, "Cap on marker cubes, most confident kept (0: no cap)."),
    ParamSpec("outputs.marker_alpha", 1.0, "Cube opacity."),
    ParamSpec("occupancy.obstacle_classes", "", "Comma-separated classes that occupy a cell. Empty: every "
              "non-empty class not in occupancy.ground_classes."),
    ParamSpec("occupancy.ground_classes", ",".join(DEFAULT_GROUND_CLASSES), "Comma-separated classes that "
              "never occupy a cell (names missing from the class set are ignored)."),
    ParamSpec("occupancy.z_min", -1.5, "Lower edge of the obstacle height band (m, grid frame)."),
    ParamSpec("occupancy.z_max", 1.0, "Upper edge of the obstacle height band (m, grid frame)."),
    ParamSpec("diagnostics.period_s", 1.0, "Period of /diagnostics messages (s)."),
    ParamSpec("diagnostics.max_processing_ms", 500.0, "Mean processing time above this reports WARN."),
    ParamSpec("diagnostics.silent_after_s", 2.0, "An input silent this long while another still arrives reports "
              "WARN naming it (s)."),
    ParamSpec("log.period_s", 5.0, "Each kind of dropped-input warning is logged at most once per period (s)."),
    ParamSpec("input.mode", "camera", "camera: images (+ LiDAR) of the outdoor models; rgbd: image + depth + "
              "camera_info of the indoor models (CleanerS)."),
    ParamSpec("topics.depth", "depth", "rgbd mode: depth image registered to the colour image (16UC1 mm or "
              "32FC1 m)."),
    ParamSpec("rgbd.grid_frame", "room", "rgbd mode: the frame the voxel grid is anchored in (z up); TF must "
              "give camera <- grid_frame."),
    ParamSpec("rgbd.grid_origin", [0.0, 0.0, 0.0], "rgbd mode: corner of the grid's first voxel in grid_frame "
              "(m); the grid spans the model's dims x voxel size along x, y and z (up)."),
    ParamSpec("rgbd.tsdf_subdivision", 4, "rgbd mode: sub-voxels per voxel edge for the TSDF (4 = as the NYU "
              "files; 2 is about 8x cheaper and a little different from training)."),
)

REPLAY_NODE_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("sequence_dir", "", "SemanticKITTI sequence folder (.../sequences/08) (required)."),
    ParamSpec("rate", 1.0, "Replay speed factor (1.0: the times.txt rate, about 10 Hz)."),
    ParamSpec("start_frame", 0, "First frame to publish."),
    ParamSpec("end_frame", -1, "Stop before this frame (-1: to the end)."),
    ParamSpec("loop", False, "Start again after the last frame (time keeps increasing)."),
    ParamSpec("publish_clock", True, "Publish /clock from times.txt (run the other nodes with use_sim_time)."),
    ParamSpec("publish_right", True, "Publish the right camera (image_3 and P3) when present."),
    ParamSpec("publish_ground_truth", True, "Publish voxels/*.label as a MarkerArray when present."),
    ParamSpec("stamp_offset_s", 1.0, "Added to times.txt for the stamps (keeps the first stamp away from 0)."),
    ParamSpec("grid.dims", [256, 256, 32], "Voxel grid of the voxels/*.label files (ssc-make-synthetic --small: "
              "[128, 128, 16] with grid.voxel_size 0.4)."),
    ParamSpec("grid.voxel_size", 0.2, "Voxel edge (m) of the label grid."),
    ParamSpec("grid.origin", [0.0, -25.6, -2.0], "Corner of the label grid in the LiDAR frame (m)."),
    ParamSpec("frames.fixed", "odom", "Fixed frame (parent of the LiDAR pose)."),
    ParamSpec("frames.lidar", "velo_link", "LiDAR frame."),
    ParamSpec("frames.camera_left", "camera_color_left", "Left colour camera frame (optical)."),
    ParamSpec("frames.camera_right", "camera_color_right", "Right colour camera frame (optical)."),
)


def split_classes(value: str) -> tuple[str, ...]:
    """'car, person' -> ('car', 'person'); '' -> ()."""
    return tuple(part.strip() for part in str(value).split(",") if part.strip())


def output_options(values: dict[str, Any]) -> OutputOptions:
    """OutputOptions from ssc_node parameter values (dotted names)."""
    crop_min = crop_max = None
    if values["outputs.crop"]:
        crop_min, crop_max = tuple(values["outputs.crop_min"]), tuple(values["outputs.crop_max"])
        if len(crop_min) != 3 or len(crop_max) != 3 or any(a >= b for a, b in zip(crop_min, crop_max)):
            raise ConfigError(f"outputs.crop_min {crop_min} / crop_max {crop_max}: need 3 values each, min < max")
    if values["occupancy.z_min"] >= values["occupancy.z_max"]:
        raise ConfigError(f"occupancy.z_min {values['occupancy.z_min']} must be < z_max {values['occupancy.z_max']}")
    return OutputOptions(
        frame_id=values["frames.output"], hidden_classes=split_classes(values["outputs.hidden_classes"]),
        crop_min=crop_min, crop_max=crop_max, min_confidence=float(values["outputs.min_confidence"]),
        cull_hidden=bool(values["outputs.cull_hidden"]), max_marker_voxels=int(values["outputs.max_marker_voxels"]),
        marker_alpha=float(values["outputs.marker_alpha"]),
        obstacle_classes=split_classes(values["occupancy.obstacle_classes"]),
        ground_classes=split_classes(values["occupancy.ground_classes"]),
        z_min=float(values["occupancy.z_min"]), z_max=float(values["occupancy.z_max"]),
    )


def label_grid(values: dict[str, Any]) -> GridSpec:
    """The replay node's label grid from its ``grid.*`` parameter values. ConfigError for unusable values."""
    try:
        return GridSpec.from_dict({key: values[f"grid.{key}"] for key in ("dims", "voxel_size", "origin")})
    except ConfigError as exc:
        raise ConfigError(f"grid.* parameters: {exc}") from None


def defaults(specs: tuple[ParamSpec, ...]) -> dict[str, Any]:
    """{name: default} of a parameter table."""
    return {p.name: p.default for p in specs}
