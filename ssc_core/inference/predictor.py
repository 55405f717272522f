"""Predictor: a trained model + its config -> ``predict(FrameWindow) -> Prediction``, with no dataset.

This is what ``ssc-infer``, ``ssc-bag`` and the ROS node call. The window goes through the same
``window_to_sample`` as training, so deployment sees exactly the tensors the model was trained on.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ssc_core.data.label_maps import SEMANTIC_KITTI, ClassSet
from ssc_core.data.point_sources import point_source_name, point_source_requires
from ssc_core.data.rgbd import RGBDFrame, rgbd_frame_to_sample
from ssc_core.data.sweeps import window_offsets
from ssc_core.data.transforms import collate, window_to_sample
from ssc_core.errors import ConfigError, DataFormatError
from ssc_core.models.registry import model_inputs
from ssc_core.training.checkpoint import (
    check_compatible,
    class_set_from_dict,
    load_checkpoint,
    load_model_state,
)
from ssc_core.training.distributed import resolve_device
from ssc_core.types import FrameWindow, GridSpec, Prediction

DEFAULT_FRAME_RATE_HZ = 10.0


class Predictor:
    """Runs ``model`` on frame windows.

    model: an ``nn.Module`` following the model contract (``model(batch)["ssc_logits"]`` (B, C, X, Y, Z));
    cfg: the whole config it was built from (``data`` section used for the inputs and the grid);
    device: 'cpu', 'cuda', 'cuda:1' or None/'auto'; class_set: labels of the logits (SemanticKITTI if None).
    The model is put in eval mode and moved to the device.
    """

    def __init__(
        self, model: nn.Module, cfg: dict, device: str | torch.device | None = "cpu", class_set: ClassSet | None = None
    ) -> None:
        self.cfg = cfg
        self.data_cfg = dict(cfg.get("data") or {})
        self.device = resolve_device(None if device is None else str(device))
        self.model = model.to(self.device).eval()
        self._class_set = class_set or SEMANTIC_KITTI
        self._grid = GridSpec.from_dict(self.data_cfg.get("grid") or {})
        offsets = self.data_cfg.get("history_offsets") or []
        if any(not isinstance(o, int) or o >= 0 for o in offsets):
            raise ConfigError(f"data.history_offsets must be negative integers, got {offsets!r}")
        self._history_offsets = window_offsets(self.data_cfg)
        self._inputs = model_inputs(cfg)

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, device: str | torch.device | None = "cpu", config: dict | None = None
    ) -> Predictor:
        """Build the model from the checkpoint's own config and load its weights. With ``config`` (a parsed
        config the caller means to use), its ``model``/``data`` sections must match the checkpoint's
        (CheckpointMismatchError listing what differs) and ``config`` is used, so keys that do not change the
        model (where depth files live, splits) can be set for the machine at hand."""
        from ssc_core.models import build_model

        ckpt = load_checkpoint(path, map_location="cpu")
        stored_cfg = copy.deepcopy(ckpt["config"])
        class_set = class_set_from_dict(ckpt["class_set"])
        if config is not None:
            check_compatible(ckpt, config=config, source=str(path))
            stored_cfg = copy.deepcopy(config)
        else:
            check_compatible(ckpt, grid=GridSpec.from_dict(stored_cfg.get("data", {}).get("grid") or {}),
                             source=str(path))
        model = build_model(stored_cfg)
        load_model_state(model, ckpt["model"], source=str(path))
        return cls(model, stored_cfg, device=device, class_set=class_set)

    # ------------------------------------------------------------------------------------------ properties
    @property
    def history_offsets(self) -> list[int]:
        """Frame offsets (negative, oldest first) of the history frames the model wants, e.g. [-12, -9, -6, -3]:
        ``data.history_offsets`` and, with ``data.sweeps``, the sweep frames (``sweeps.window_offsets``)."""
        return list(self._history_offsets)

    @property
    def frame_rate_hz(self) -> float:
        """Sensor frame rate the offsets refer to (``data.frame_rate_hz``, 10 Hz for KITTI by default)."""
        return float(self.data_cfg.get("frame_rate_hz", DEFAULT_FRAME_RATE_HZ))

    @property
    def inputs(self) -> frozenset[str]:
        """The sensor streams the model reads ('image', 'image_right', 'points'; ``models.model_inputs``)."""
        return self._inputs

    @property
    def needs_image(self) -> bool:
        """True when frames must carry the left image and the camera calibration."""
        return "image" in self._inputs

    @property
    def needs_points(self) -> bool:
        """True when frames must carry the LiDAR scan (``points_velo``: the point source or the sweeps' source
        reads it, or the model declares the scan as its input)."""
        return "points" in self._inputs

    @property
    def needs_right_image(self) -> bool:
        """True when frames must carry ``image_right`` (a stereo depth source or ``data.use_right_image``)."""
        return "image_right" in self._inputs

    def sample_cfg(self, data_cfg: dict | None = None) -> dict:
        """The ``data:`` section samples are built with at inference: ``data_cfg`` (default the config's) without
        the streams the model does not read, so a frame without them still makes a sample (e.g. L2COcc-D's
        LiDAR ``points`` feed only its teacher: dropped; a LiDAR-only model gets no camera entries). A point source
        that makes its points from the images (SGN's stereo pseudo-points) stays."""
        cfg = dict(self.data_cfg if data_cfg is None else data_cfg)
        if not self.needs_points and "points_velo" in point_source_requires(point_source_name(cfg)):
            cfg["points"] = {**(cfg.get("points") or {}), "source": "none"}
        if not self.needs_image:
            cfg.update(use_left_image=False, use_right_image=False)
            cfg["stereo_depth"] = {**(cfg.get("stereo_depth") or {}), "source": "none"}
        return cfg

    @property
    def grid(self) -> GridSpec:
        """The grid of the predictions."""
        return self._grid

    @property
    def class_set(self) -> ClassSet:
        """The labels of the predictions."""
        return self._class_set

    # ------------------------------------------------------------------------------------------ inference
    @torch.inference_mode()
    def sample_logits(self, sample: dict) -> torch.Tensor:
        """The model's ``ssc_logits`` for one sample (``window_to_sample`` or ``rgbd_sample`` output): (C, X, Y, Z)
        float32 on the predictor's device. DataFormatError when they do not fit the class set and grid."""
        batch = collate([sample])
        batch = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        logits = self.model(batch)["ssc_logits"]
        expected = (1, self._class_set.num_classes, *self._grid.dims)
        if tuple(logits.shape) != expected:
            raise DataFormatError(f"model returned ssc_logits of shape {tuple(logits.shape)}, expected {expected} "
                                  "(classes x data.grid.dims)")
        return logits[0].float()

    def predict_logits(self, window: FrameWindow, data_cfg: dict | None = None) -> torch.Tensor:
        """The model's ``ssc_logits`` for one window: (C, X, Y, Z) float32 on the predictor's device.
        ``data_cfg`` replaces the config's ``data:`` section for building the inputs (e.g. a dataset's
        ``point_source_cfg(sequence)``, which tells file-based point sources where the frame's files are)."""
        return self.sample_logits(window_to_sample(window, self.sample_cfg(data_cfg)))

    def _prediction(self, logits: torch.Tensor, grid: GridSpec, stamp_ns: int) -> Prediction:
        probs = torch.softmax(logits, dim=0)
        confidence, labels = probs.max(dim=0)
        return Prediction(labels=labels.to(torch.uint8).cpu().numpy(),
                          confidence=confidence.cpu().numpy().astype(np.float32), grid=grid, stamp_ns=int(stamp_ns))

    def predict(self, window: FrameWindow, data_cfg: dict | None = None) -> Prediction:
        """Labels (X, Y, Z) uint8 train ids = argmax, and confidence (X, Y, Z) float32 = softmax probability of
        that label, on ``self.grid`` in the current frame's LiDAR frame, stamped with the current frame's stamp.
        ``data_cfg``: see ``predict_logits``. Raises DataFormatError for malformed windows (``window_to_sample``)."""
        return self._prediction(self.predict_logits(window, data_cfg), self._grid, window.current.stamp_ns)

    def predict_sample(self, sample: dict, stamp_ns: int = 0) -> Prediction:
        """The Prediction of a ready-made sample (e.g. an NYU dataset item) on ``self.grid``."""
        return self._prediction(self.sample_logits(sample), self._grid, stamp_ns)

    def predict_rgbd(self, frame: RGBDFrame, origin: tuple[float, float, float] | None = None,
                     subdivision: int = 4) -> Prediction:
        """Predict an RGB-D view (indoor models, ``data.dataset: nyu``): the depth's TSDF and voxel -> pixel mapping
        are computed on the grid (``rgbd_frame_to_sample``), placed at ``origin`` (room-frame corner of voxel
        (0, 0, 0); default ``data.grid.origin``). The Prediction's arrays are in the grid's NYU index order
        (room x, z, y) with that origin; ``rgbd.to_room_xyz`` turns them into an x, y, z grid for outputs."""
        grid = self._grid if origin is None else replace(self._grid, origin=tuple(float(v) for v in origin))
        sample = rgbd_frame_to_sample(frame, grid, self.data_cfg, subdivision)
        return self._prediction(self.sample_logits(sample), grid, frame.stamp_ns)
