"""Training and inference: the Trainer, its optimizer and resumable data stream, the predictor."""

from .optimizer import build_soc_optimizer, soc_lr_factor
from .predictor import SOCPredictor, to_instances
from .trainer import Trainer

__all__ = ["SOCPredictor", "Trainer", "build_soc_optimizer", "soc_lr_factor", "to_instances"]
