"""Building the node's Predictor from its parameters, and running it at a chosen precision."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

import torch

from ssc_core.errors import ConfigError
from ssc_core.types import FrameWindow, Prediction

if TYPE_CHECKING:
    from ssc_core.data.rgbd import RGBDFrame

PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}
CPU_PRECISIONS = ("fp32", "bf16")  # CPU autocast runs bf16; fp16 needs CUDA


class PrecisionPredictor:
    """Wraps a Predictor: ``predict`` (a FrameWindow) and ``predict_rgbd`` (an RGB-D view, the node's rgbd mode) run
    under torch.autocast(device type, dtype); every other property of the Predictor contract is forwarded
    unchanged. fp16 needs a CUDA device, bf16 runs on CUDA and CPU (ConfigError otherwise)."""

    def __init__(self, predictor: Any, precision: str) -> None:
        if precision not in PRECISIONS:
            raise ConfigError(f"model.precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        device = torch.device(getattr(predictor, "device", "cpu"))
        if precision not in CPU_PRECISIONS and device.type != "cuda":
            raise ConfigError(f"model.precision {precision} needs a CUDA device (model.device is {device}); "
                              f"on the CPU use one of {list(CPU_PRECISIONS)}")
        self.predictor = predictor
        self.precision = precision
        self._device_type = device.type

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["predictor"], name)

    def autocast(self) -> AbstractContextManager:
        """torch.autocast at the precision on the predictor's device type (a no-op for fp32)."""
        dtype = PRECISIONS[self.precision]
        return torch.autocast(self._device_type, dtype=dtype) if dtype is not None else nullcontext()

    def predict(self, window: FrameWindow) -> Prediction:
        """The wrapped predictor's prediction of ``window``, computed under ``autocast()``."""
        with self.autocast():
            return self.predictor.predict(window)

    def predict_rgbd(self, frame: RGBDFrame, origin: tuple[float, float, float] | None = None,
                     subdivision: int = 4) -> Prediction:
        """The wrapped predictor's ``predict_rgbd`` of an RGB-D view (same arguments), computed under
        ``autocast()``."""
        with self.autocast():
            return self.predictor.predict_rgbd(frame, origin, subdivision)


def build_predictor(checkpoint: str, config: str = "", device: str = "auto", precision: str = "fp32") -> Any:
    """Predictor for the node: ``Predictor.from_checkpoint(checkpoint, device, config)`` (config loaded by name or
    path when given), wrapped for ``precision``. Raises SSCError subclasses with a clear message."""
    from ssc_core.config import load_config
    from ssc_core.inference.predictor import Predictor

    if not checkpoint:
        raise ConfigError("model.checkpoint is required (a checkpoint written by ssc-train)")
    cfg = load_config(config) if config else None
    predictor = Predictor.from_checkpoint(checkpoint, device=None if device == "auto" else device, config=cfg)
    return PrecisionPredictor(predictor, precision) if precision != "fp32" else predictor
