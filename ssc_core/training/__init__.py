"""Training shared by every model: ``Trainer`` (AMP, DDP via torchrun, TensorBoard, validation, atomic
checkpoints, exact resume), its ``TrainerHook`` seam, the ``train:`` settings and checkpoint files."""

from ssc_core.training.checkpoint import check_compatible, load_checkpoint, load_model_state, save_checkpoint
from ssc_core.training.hooks import TrainerHook
from ssc_core.training.settings import TrainSettings
from ssc_core.training.trainer import Trainer

__all__ = [
    "Trainer", "TrainerHook", "TrainSettings", "check_compatible", "load_checkpoint", "load_model_state",
    "save_checkpoint",
]
