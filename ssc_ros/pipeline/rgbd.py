"""The RGB-D mode of ssc_node (indoor models such as CleanerS): image + depth + camera_info in, the room grid out.

The grid frame plays the LiDAR frame's part of the camera mode: TF gives camera <- grid at the set's stamp (the
calibration's ``T_cam0_velo``), so the same intake, worker and outputs run unchanged:

- ``RGBDBuilder`` (a WindowBuilder): one synchronized set (image, depth, camera_info) -> a single-frame window whose
  Frame carries the depth (``depth_image_to_metres``: 16UC1 mm or 32FC1 m, registered to the colour image);
  bad depth (encoding, size, all holes) is a counted, logged drop;
- ``RGBDPredictor``: wraps the Predictor; ``predict(window)`` computes the depth's TSDF and voxel -> pixel mapping on
  the grid placed at ``rgbd.grid_origin`` in the grid frame (z up), runs the model and returns the labels on an x, y,
  z grid in that frame (``rgbd.to_room_xyz``), which OutputBuilder draws with the model's class colours.

Parameters: ``input.mode``, ``topics.depth``, ``rgbd.*`` of SSC_NODE_PARAMS (documented in docs/ros.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ssc_core.data.rgbd import RGBDFrame, to_room_xyz
from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.geometry.poses import invert_transform
from ssc_core.types import FrameWindow, Prediction
from ssc_ros.messages import depth_image_to_metres
from ssc_ros.pipeline.health import DropCounter
from ssc_ros.pipeline.window_builder import Lookup, WindowBuilder

INPUT_MODES = ("camera", "rgbd")


def _dataset_of(predictor: Any) -> str | None:
    return ((getattr(predictor, "cfg", None) or {}).get("data") or {}).get("dataset")


class RGBDPredictor:
    """A Predictor of an indoor model as the node's worker needs it: ``predict(FrameWindow) -> Prediction`` on the
    x, y, z grid in ``rgbd.grid_frame``; ``rgbd_frame(FrameWindow)``, the RGB-D view it predicts; ``class_set``; and
    the window properties (no history, no points, no right image) that WindowBuilder reads."""

    history_offsets: list[int] = []
    frame_rate_hz = 30.0
    needs_points = False
    needs_right_image = False

    def __init__(self, predictor: Any, origin: tuple[float, float, float], subdivision: int = 4) -> None:
        dataset = _dataset_of(predictor)
        if dataset != "nyu":
            raise ConfigError(f"input.mode rgbd needs an indoor (RGB-D) model: the checkpoint's data.dataset is "
                              f"{dataset!r}, not 'nyu'")
        if len(origin) != 3 or subdivision < 1:
            raise ConfigError(f"rgbd.grid_origin needs 3 values and rgbd.tsdf_subdivision >= 1, got {origin}, "
                              f"{subdivision}")
        self.predictor = predictor
        self.origin = tuple(float(v) for v in origin)
        self.subdivision = int(subdivision)

    @property
    def class_set(self) -> Any:
        """The model's class set (NYU: 12 classes and their colours)."""
        return self.predictor.class_set

    def rgbd_frame(self, window: FrameWindow) -> RGBDFrame:
        """The RGB-D view of the window's current frame: its image, depth (metres), K and T_grid_cam (the inverse
        of the camera <- grid-frame transform TF gave). DataFormatError when the frame has no depth."""
        frame = window.current
        if frame.depth is None:
            raise DataFormatError(f"frame {frame.index}: the RGB-D model needs a depth image")
        return RGBDFrame(image_rgb=frame.image_left, depth_m=frame.depth, K=frame.calib.K,
                         T_grid_cam=invert_transform(frame.calib.T_cam0_velo), stamp_ns=frame.stamp_ns)

    def predict(self, window: FrameWindow) -> Prediction:
        """Labels and confidence on the x, y, z grid of the current frame's view (``rgbd_frame``), its TSDF and
        mapping computed on the grid at ``origin`` (``Predictor.predict_rgbd``)."""
        return to_room_xyz(self.predictor.predict_rgbd(self.rgbd_frame(window), self.origin, self.subdivision))


class RGBDBuilder(WindowBuilder):
    """WindowBuilder of the RGB-D mode: inputs image, depth, camera_info; the grid frame (``rgbd.grid_frame``) in
    place of the LiDAR frame; the depth decoded onto the Frame."""

    def __init__(self, predictor: RGBDPredictor, params: dict[str, Any], drops: DropCounter | None = None,
                 warn: Callable[[str], None] = print) -> None:
        super().__init__(predictor, params, drops, warn)
        self.keys = ["image", "depth", "camera_info"]

    def lidar_frame(self, items: dict[str, Any]) -> str:
        """The grid frame (``rgbd.grid_frame``)."""
        return self.p["rgbd.grid_frame"]

    def build(self, items: dict[str, Any], stamp_ns: int, lookup: Lookup, index: int = -1) -> FrameWindow | None:
        """The single-frame window of one set with its depth, or None (reason counted and logged)."""
        try:
            depth = depth_image_to_metres(items["depth"], f"depth ({items['depth'].header.frame_id})")
            if depth.shape != (int(items["image"].height), int(items["image"].width)):
                raise DataFormatError(f"depth {depth.shape[::-1]} and image {items['image'].width}x"
                                      f"{items['image'].height} differ: the depth must be registered to the image")
            if not np.any(depth > 0):
                raise DataFormatError("depth image holds no valid depth")
        except DataFormatError as exc:
            return self._reject("bad_depth", str(exc))
        window = super().build(items, stamp_ns, lookup, index)
        if window is not None:
            window.current.depth = depth
        return window


def input_pipeline(predictor: Any, params: dict[str, Any], drops: DropCounter | None = None,
                   warn: Callable[[str], None] = print) -> tuple[Any, WindowBuilder]:
    """The predictor and window builder of ``input.mode``: the Predictor and a WindowBuilder (camera), or an
    RGBDPredictor and an RGBDBuilder (rgbd). ConfigError for an unknown mode or a model that does not fit it."""
    mode = params.get("input.mode", "camera")
    if mode not in INPUT_MODES:
        raise ConfigError(f"input.mode must be one of {INPUT_MODES}, got {mode!r}")
    if mode == "camera":
        if _dataset_of(predictor) == "nyu":
            raise ConfigError("this checkpoint is an RGB-D (indoor) model: set input.mode to rgbd")
        return predictor, WindowBuilder(predictor, params, drops, warn)
    wrapped = RGBDPredictor(predictor, tuple(params["rgbd.grid_origin"]), int(params["rgbd.tsdf_subdivision"]))
    return wrapped, RGBDBuilder(wrapped, params, drops, warn)
