"""Dataset mappers: record -> model input dict (``DEVELOPERS.md``, "Model input")."""

from .a2d_mapper import A2DTestMapper, A2DTrainMapper
from .clip_utils import build_clip_augmentation, sample_window, swap_left_right
from .refvos_mapper import RefVOSTestMapper, RefVOSTrainMapper

__all__ = [
    "RefVOSTrainMapper",
    "RefVOSTestMapper",
    "A2DTrainMapper",
    "A2DTestMapper",
    "swap_left_right",
    "sample_window",
    "build_clip_augmentation",
]
