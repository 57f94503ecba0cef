"""SynthRVOS: procedurally generated referring-video data in the exact on-disk formats of the real benchmarks.

``python -m soc.data.synthetic --out DIR --format {ytvos,davis,a2d,jhmdb} --videos N --seed S`` or
``generate(out, format, videos, seed, ...)``, which returns the ground truth it wrote (see ``generate``).
"""

from .generate import DEFAULT_SIZES, DEFAULT_SPLITS, FORMATS, generate

__all__ = ["generate", "FORMATS", "DEFAULT_SIZES", "DEFAULT_SPLITS"]
