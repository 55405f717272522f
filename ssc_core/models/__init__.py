"""SSC models: ``build_model(cfg)`` builds the registered model named by ``cfg['model']['name']``."""

from ssc_core.models.registry import build_model, list_models, model_inputs, register_model

__all__ = ["build_model", "list_models", "model_inputs", "register_model"]
