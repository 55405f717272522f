"""Building the node's Predictor from its parameters, and running it at a chosen precision."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch

from ssc_core.errors import ConfigError
from ssc_core.types import FrameWindow, Prediction

PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


class PrecisionPredictor:
    """Wraps a Predictor: ``predict`` runs under torch.autocast(dtype) on CUDA devices; every other property of
    the Predictor contract is forwarded unchanged."""

    def __init__(self, predictor: Any, precision: str) -> None:
        if precision not in PRECISIONS:
            raise ConfigError(f"model.precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        device = torch.device(getattr(predictor, "device", "cpu"))
        if PRECISIONS[precision] is not None and device.type != "cuda":
            raise ConfigError(f"model.precision {precision} needs a CUDA device (model.device is {device})")
        self.predictor = predictor
        self.precision = precision
        self._device_type = device.type

    def __getattr__(self, name: str) -> Any:
        return getattr(self.__dict__["predictor"], name)

    def predict(self, window: FrameWindow) -> Prediction:
        """The wrapped predictor's prediction, computed under autocast when precision is not fp32."""
        dtype = PRECISIONS[self.precision]
        ctx = torch.autocast(self._device_type, dtype=dtype) if dtype is not None else nullcontext()
        with ctx:
            return self.predictor.predict(window)


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
