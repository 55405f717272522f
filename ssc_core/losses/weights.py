"""Class weights for the SSC cross entropy, chosen by name in a config."""

from __future__ import annotations

import torch

from ssc_core.errors import ConfigError


def resolve_class_weights(spec: str | list | None, class_set: str, num_classes: int) -> torch.Tensor:
    """(num_classes,) float32 weights from a config value.

    ``spec``: a list of floats; 'sgn' (the values SGN hard-codes: 10 / ln(f + 0.001) rounded, SemanticKITTI or
    KITTI-360); 'frequency' (1 / ln(f + 0.001) from the class set); 'uniform' or None (all ones)."""
    if spec is None or spec == "uniform":
        weights = [1.0] * num_classes
    elif isinstance(spec, (list, tuple)):
        weights = [float(w) for w in spec]
    elif spec == "sgn":
        if class_set == "semantic_kitti":
            from ssc_core.data.label_maps import SGN_SEMANTIC_KITTI_CLASS_WEIGHTS as weights
        elif class_set == "kitti360":
            from ssc_core.data.kitti360 import SGN_KITTI360_CLASS_WEIGHTS as weights
        else:
            raise ConfigError(f"model.class_weights 'sgn' exists for semantic_kitti and kitti360, not {class_set!r}")
    elif spec == "frequency":
        from ssc_core.data.label_maps import get_class_set

        weights = get_class_set(class_set).class_weights().tolist()
    else:
        raise ConfigError(f"model.class_weights must be a list, 'sgn', 'frequency' or 'uniform', got {spec!r}")
    if len(weights) != num_classes:
        raise ConfigError(f"model.class_weights has {len(weights)} values but the model has {num_classes} classes")
    return torch.tensor(list(weights), dtype=torch.float32)
