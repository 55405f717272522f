"""Losses shared by the SSC models."""

from ssc_core.losses.distill import class_centre_kd_losses, feature_mse_loss
from ssc_core.losses.lovasz import lovasz_softmax_loss
from ssc_core.losses.ssc import (
    binary_occupancy_loss,
    geo_scal_loss,
    scene_target,
    sem_scal_loss,
    weighted_ce_loss,
)
from ssc_core.losses.weights import resolve_class_weights

__all__ = [
    "binary_occupancy_loss",
    "class_centre_kd_losses",
    "feature_mse_loss",
    "geo_scal_loss",
    "lovasz_softmax_loss",
    "resolve_class_weights",
    "scene_target",
    "sem_scal_loss",
    "weighted_ce_loss",
]
