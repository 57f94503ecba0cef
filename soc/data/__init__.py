"""SOC data: benchmark registration (``datasets``), clip mappers (``mappers``), SynthRVOS (``synthetic``)
and the
shared format readers (``io``)."""

from .build import build_soc_mapper
from .datasets import (
    load_a2d_sentences,
    load_jhmdb_sentences,
    load_ref_davis17,
    load_ref_ytvos,
    load_refcoco,
    register_a2d_sentences,
    register_jhmdb_sentences,
    register_ref_davis17,
    register_ref_ytvos,
    register_refcoco,
)
from .io import DataError, davis_palette, mttr_window, read_image, read_masks, read_palette_png
from .mappers import (
    A2DTestMapper,
    A2DTrainMapper,
    RefVOSTestMapper,
    RefVOSTrainMapper,
    swap_left_right,
)

__all__ = [
    "register_ref_ytvos",
    "register_ref_davis17",
    "register_a2d_sentences",
    "register_jhmdb_sentences",
    "register_refcoco",
    "load_ref_ytvos",
    "load_ref_davis17",
    "load_a2d_sentences",
    "load_jhmdb_sentences",
    "load_refcoco",
    "RefVOSTrainMapper",
    "RefVOSTestMapper",
    "A2DTrainMapper",
    "A2DTestMapper",
    "build_soc_mapper",
    "swap_left_right",
    "read_masks",
    "read_image",
    "read_palette_png",
    "davis_palette",
    "mttr_window",
    "DataError",
]
