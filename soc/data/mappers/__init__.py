"""Dataset mappers: record -> model input dict (``DEVELOPERS.md``, "Model input"); one per data family, with
``is_train`` as in detectron2's ``DatasetMapper``."""

from .a2d_mapper import A2DMapper
from .clip_utils import build_clip_augmentation, sample_window, swap_left_right
from .refvos_mapper import RefVOSMapper

__all__ = [
    "RefVOSMapper",
    "A2DMapper",
    "swap_left_right",
    "sample_window",
    "build_clip_augmentation",
]
