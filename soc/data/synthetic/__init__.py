"""SynthRVOS: procedurally generated referring-video data in the exact on-disk formats of the real benchmarks.

``python -m soc.data.synthetic --out DIR --format {ytvos,davis,a2d,jhmdb,long_rvos,mevis} --videos N --seed S
[--long]`` or ``generate(out, format, videos, seed, ...)``, which returns the ground truth it wrote (see
``generate``). ``--long`` (``long_videos=True``) draws 300-400-frame videos in which a look-alike object
leaves the frame and comes back.
"""

from .generate import DEFAULT_SIZES, DEFAULT_SPLITS, FORMATS, generate

__all__ = ["generate", "FORMATS", "DEFAULT_SIZES", "DEFAULT_SPLITS"]
