"""Inference: ``Predictor`` turns a checkpoint into ``predict(FrameWindow) -> Prediction`` (no dataset needed)."""

from ssc_core.inference.predictor import Predictor

__all__ = ["Predictor"]
