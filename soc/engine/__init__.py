"""Training-loop pieces used by train_net.py: optimizer, resumable data loading, checkpoint hooks."""
from .optimizer import build_soc_optimizer, soc_lr_factor

__all__ = ["build_soc_optimizer", "soc_lr_factor"]
