"""SOC data: benchmark registration (``datasets``), clip mappers (``mappers``), SynthRVOS (``synthetic``)
and the shared format readers (``io``)."""

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
from .io import (
    DataError,
    centered_window,
    davis_palette,
    read_binary_png,
    read_image,
    read_masks,
    read_palette_png,
)
from .mappers import A2DMapper, RefVOSMapper, swap_left_right

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
    "RefVOSMapper",
    "A2DMapper",
    "build_soc_mapper",
    "swap_left_right",
    "read_masks",
    "read_image",
    "read_palette_png",
    "read_binary_png",
    "davis_palette",
    "centered_window",
    "DataError",
]
