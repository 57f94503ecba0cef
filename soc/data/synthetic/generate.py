"""``generate(out, format, videos, seed, ...)``: draw SynthRVOS videos and write them in a benchmark's format.

Every format-specific choice (layout, ids, names, annotated frames, index files) belongs to the format's
writer (``writers.WRITERS``); this module only loops over the videos.

Determinism: video i is drawn from ``numpy.random.default_rng([seed, i])`` and the temporal videos are a
seeded choice of ``round(temporal_fraction * videos)`` indices, so the same arguments give byte-identical
files.

Overwriting: each format owns some paths under ``out`` (e.g. ytvos ``train``: ``train/`` and
``meta_expressions/train/``). Generation refuses, unless ``force``, when an owned path exists or when ``out``
holds anything that is not part of the format's layout; so another split can be added next to an existing
one (ytvos train + valid in one root), but nothing is overwritten. ``force`` deletes the owned paths first and
leaves everything else alone.
"""

from __future__ import annotations

import logging
import os
import shutil
from typing import Optional, Tuple

import numpy as np
from tqdm import tqdm

from . import long_rvos_writer, mevis_writer  # noqa: F401  (add the long_rvos and mevis formats to WRITERS)
from .videos import draw_video
from .writers import WRITERS, SynthWriter

__all__ = ["generate", "FORMATS", "DEFAULT_SIZES", "DEFAULT_SPLITS", "DEFAULT_FRAMES", "LONG_FRAMES"]

logger = logging.getLogger(__name__)

FORMATS = tuple(WRITERS)
DEFAULT_SIZES = {name: w.default_size for name, w in WRITERS.items()}
DEFAULT_SPLITS = {name: w.default_split for name, w in WRITERS.items()}
DEFAULT_FRAMES = (8, 16)  # frames per video (min, max)
LONG_FRAMES = (300, 400)  # the same with long_videos


def _prepare_out(out: str, writer: SynthWriter, force: bool) -> None:
    os.makedirs(out, exist_ok=True)
    owned = [os.path.join(out, p) for p in writer.owned_paths()]
    clash = [p for p in owned if os.path.exists(p)]
    foreign = sorted(set(os.listdir(out)) - writer.layout)
    if (clash or foreign) and not force:
        raise FileExistsError(
            f"refusing to write SynthRVOS {writer.name}/{writer.split} into {out}: "
            + (f"{clash} exist" if clash else f"it holds {foreign}, which is not a {writer.name} layout")
            + "; pass --force (force=True) to replace the generated paths"
        )
    for p in clash:
        shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)


def _frame_count(rng: np.random.Generator, frames: Tuple[int, int]) -> int:
    return int(rng.integers(frames[0], frames[1] + 1))


def generate(
    out: str,
    format: str,
    videos: int,
    seed: int,
    *,
    frames: Optional[Tuple[int, int]] = None,
    size: Optional[Tuple[int, int]] = None,
    split: Optional[str] = None,
    force: bool = False,
    long_videos: bool = False,
    temporal_fraction: Optional[float] = None,
    test_videos: Optional[int] = None,
    test_fraction: float = 0.25,
    progress: bool = True,
) -> dict:
    """Generate ``videos`` SynthRVOS videos under ``out`` in ``format`` and return the ground truth written.

    Args:
        out: dataset root (e.g. ``$SOC_DATASETS/synthrvos/ytvos``).
        format: ``ytvos``, ``davis``, ``a2d``, ``jhmdb``, ``long_rvos`` or ``mevis``.
        videos: number of videos of the split (ytvos ``valid``: with masks; see ``test_videos``).
        seed: everything is a function of it.
        frames: (min, max) frames per video; default ``DEFAULT_FRAMES`` (8, 16), ``LONG_FRAMES`` (300, 400)
            with ``long_videos``.
        size: (H, W); default 96x160 (ytvos, davis, long_rvos, mevis), 320x426 (a2d), 240x320 (jhmdb).
        split: ytvos/davis ``train`` | ``valid``; a2d ``train`` | ``test`` | ``all`` (both subsets in one
            root); jhmdb ``test``; long_rvos ``train`` | ``valid`` | ``test``; mevis ``train`` | ``valid_u`` |
            ``valid``. Default: ytvos ``train``, davis ``valid``, a2d ``all``, jhmdb ``test``, long_rvos
            ``valid``, mevis ``train``.
        force: replace previously generated paths of this format/split.
        long_videos: looping motions that stay true over hundreds of frames, the first object of every
            look-alike pair leaving the frame and coming back (see :mod:`.scene`).
        temporal_fraction: share of videos with a look-alike pair told apart by motion only; default 0.3,
            1 with ``long_videos``.
        test_videos: ytvos ``valid`` only: extra videos listed in ``meta_expressions/test`` (and so in
            ``meta_expressions/valid``), without masks; default ``max(1, videos // 4)``.
        test_fraction: a2d ``all`` only: share of the videos flagged test.
        progress: show a tqdm bar.

    Returns:
        ``{"format", "root", "split", "seed", "videos": {video_id: {...}}, "temporal": {"<vid>/<exp_id>"}}``;
        per video ``frames`` uint8 (T, H, W, 3) as drawn (before JPEG/mp4 compression), ``frame_names``,
        ``masks`` {object id: bool (T, H, W)} (ids as in the format: palette values; A2D instance ids;
        JHMDB the actor is ``actor``), ``objects``, ``expressions`` {exp_id: {"exp", "obj_id", "temporal",
        "family"}}, ``split``; A2D/JHMDB also ``annotated_frames`` (0-based), JHMDB ``mask_frames``,
        ``action``.
    """
    if format not in WRITERS:
        raise ValueError(f"format must be one of {FORMATS}, not {format!r}")
    writer_cls = WRITERS[format]
    split = split or writer_cls.default_split
    if split not in writer_cls.splits:
        raise ValueError(f"format {format} has splits {writer_cls.splits}, not {split!r}")
    if videos < 1:
        raise ValueError("videos must be >= 1")
    frames = frames or (LONG_FRAMES if long_videos else DEFAULT_FRAMES)
    if temporal_fraction is None:
        temporal_fraction = 1.0 if long_videos else 0.3
    if not 1 <= frames[0] <= frames[1]:
        raise ValueError(f"bad frame range {frames}")
    h, w = size or writer_cls.default_size
    writer_cls.check_size(h, w)
    writer = writer_cls(out, split, seed=seed, test_videos=test_videos, test_fraction=test_fraction)
    _prepare_out(out, writer, force)

    n_temporal = int(round(temporal_fraction * videos))
    temporal_ids = set(np.random.default_rng(seed).permutation(videos)[:n_temporal].tolist())
    total = videos + writer.num_extra(videos)
    for i in tqdm(range(total), desc=f"SynthRVOS {format}/{split}", disable=not progress):
        rng = np.random.default_rng([seed, i])
        t = _frame_count(rng, frames)
        annotated = writer.annotated_frames(t)
        video = draw_video(
            rng,
            h,
            w,
            t,
            temporal=i in temporal_ids,
            style=format,
            annotated=annotated,
            long_videos=long_videos,
        )
        writer.add(writer.describe(rng, i, video, extra=i >= videos))
    truth = writer.finish()
    truth.update(format=format, root=out, split=split, seed=seed)
    return truth
