"""``generate(out, format, videos, seed, ...)``: draw SynthRVOS videos and write them in a benchmark's format.

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
from typing import Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from .videos import draw_video
from .writers import A2D_ACTOR_ACTIONS, JHMDB_ACTIONS, A2DWriter, DavisWriter, JHMDBWriter, YtvosWriter

__all__ = ["generate", "FORMATS", "DEFAULT_SIZES", "DEFAULT_SPLITS"]

logger = logging.getLogger(__name__)

FORMATS = ("ytvos", "davis", "a2d", "jhmdb")
DEFAULT_SIZES = {"ytvos": (96, 160), "davis": (96, 160), "a2d": (320, 426), "jhmdb": (240, 320)}
DEFAULT_SPLITS = {"ytvos": "train", "davis": "valid", "a2d": "all", "jhmdb": "test"}
_SPLITS = {
    "ytvos": ("train", "valid"),
    "davis": ("train", "valid"),
    "a2d": ("train", "test", "all"),
    "jhmdb": ("test",),
}
_LAYOUT = {  # top-level entries a format may have under its root
    "ytvos": {"train", "valid", "test", "meta_expressions"},
    "davis": {"train", "valid", "meta_expressions", "DAVIS", "davis_text_annotations"},
    "a2d": {
        "Release",
        "text_annotations",
        "a2d_sentences_single_frame_train_annotations.json",
        "a2d_sentences_single_frame_test_annotations.json",
    },
    "jhmdb": {
        "Rename_Images",
        "puppet_mask",
        "jhmdb_annotation.txt",
        "jhmdb_sentences_samples_metadata.json",
        "temporal_expressions.json",
    },
}
_HEX = np.array(list("0123456789abcdef"))
_YT = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))


def _owned(fmt: str, split: str) -> Sequence[str]:
    if fmt == "ytvos":
        own = [split, os.path.join("meta_expressions", split)]
        if split == "valid":
            own += ["test", os.path.join("meta_expressions", "test")]
        return own
    return sorted(_LAYOUT[fmt])


def _prepare_out(out: str, fmt: str, split: str, force: bool) -> None:
    os.makedirs(out, exist_ok=True)
    owned = [os.path.join(out, p) for p in _owned(fmt, split)]
    clash = [p for p in owned if os.path.exists(p)]
    foreign = sorted(set(os.listdir(out)) - _LAYOUT[fmt])
    if (clash or foreign) and not force:
        raise FileExistsError(
            f"refusing to write SynthRVOS {fmt}/{split} into {out}: "
            + (f"{clash} exist" if clash else f"it holds {foreign}, which is not a {fmt} layout")
            + "; pass --force (force=True) to replace the generated paths"
        )
    for p in clash:
        shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)


def _frame_count(rng: np.random.Generator, frames: Tuple[int, int]) -> int:
    return int(rng.integers(frames[0], frames[1] + 1))


def _ytvos_names(rng: np.random.Generator, t: int) -> list:
    """5-step frame names; some videos start later, some have one 10-step gap (as in the real valid set)."""
    start = 5 * int(rng.integers(1, 30)) if rng.random() < 0.3 else 0
    steps = [5] * (t - 1)
    if t > 2 and rng.random() < 0.15:
        steps[int(rng.integers(t - 1))] = 10
    names = [start]
    for s in steps:
        names.append(names[-1] + s)
    return [f"{n:05d}" for n in names]


def _unique_id(rng: np.random.Generator, alphabet: np.ndarray, n: int, taken: set) -> str:
    while True:
        vid = "".join(rng.choice(alphabet, size=n))
        if vid not in taken:
            taken.add(vid)
            return vid


def _annotated_frames(t: int) -> list:
    """0-based indices of A2D's evenly spaced annotated frames (3, or 2 in very short videos)."""
    n = 3 if t >= 6 else 2
    return sorted({min(t - 1, max(0, int(round(k * t / (n + 1))) - 1)) for k in range(1, n + 1)})


def generate(
    out: str,
    format: str,
    videos: int,
    seed: int,
    *,
    frames: Tuple[int, int] = (8, 16),
    size: Optional[Tuple[int, int]] = None,
    split: Optional[str] = None,
    force: bool = False,
    temporal_fraction: float = 0.3,
    test_videos: Optional[int] = None,
    test_fraction: float = 0.25,
    progress: bool = True,
) -> dict:
    """Generate ``videos`` SynthRVOS videos under ``out`` in ``format`` and return the ground truth written.

    Args:
        out: dataset root (e.g. ``$SOC_DATASETS/synthrvos/ytvos``).
        format: ``ytvos``, ``davis``, ``a2d`` or ``jhmdb``.
        videos: number of videos of the split (ytvos ``valid``: with masks; see ``test_videos``).
        seed: everything is a function of it.
        frames: (min, max) frames per video.
        size: (H, W); default 96x160 (ytvos, davis), 320x426 (a2d), 240x320 (jhmdb).
        split: ytvos/davis ``train`` | ``valid``; a2d ``train`` | ``test`` | ``all`` (both subsets in one
        root,
            a ``test_fraction`` of the videos flagged test); jhmdb ``test``. Default: ytvos ``train``,
            davis ``valid``, a2d ``all``, jhmdb ``test``.
        force: replace previously generated paths of this format/split.
        temporal_fraction: share of videos with a look-alike pair told apart by motion only.
        test_videos: ytvos ``valid`` only: extra videos listed in ``meta_expressions/test`` (and so in
            ``meta_expressions/valid``), without masks; default ``max(1, videos // 4)``.
        progress: show a tqdm bar.

    Returns:
        ``{"format", "root", "split", "seed", "videos": {video_id: {...}}, "temporal": {"<vid>/<exp_id>"}}``;
        per video ``frames`` uint8 (T, H, W, 3) as drawn (before JPEG/mp4 compression), ``frame_names``,
        ``masks`` {object id: bool (T, H, W)} (ids as in the format: palette values; A2D instance ids;
        JHMDB the actor is ``actor``), ``objects``, ``expressions`` {exp_id: {"exp", "obj_id", "temporal",
        "family"}}, ``split``; A2D/JHMDB also ``annotated_frames`` (0-based), JHMDB ``mask_frames``,
        ``action``.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, not {format!r}")
    split = split or DEFAULT_SPLITS[format]
    if split not in _SPLITS[format]:
        raise ValueError(f"format {format} has splits {_SPLITS[format]}, not {split!r}")
    if videos < 1:
        raise ValueError("videos must be >= 1")
    if not 1 <= frames[0] <= frames[1]:
        raise ValueError(f"bad frame range {frames}")
    h, w = size or DEFAULT_SIZES[format]
    if format == "a2d" and (h % 2 or w % 2):
        raise ValueError(f"a2d frames are encoded as yuv420p mp4 and need even sides, got {h}x{w}")
    _prepare_out(out, format, split, force)

    n_extra = 0
    if format == "ytvos" and split == "valid":
        n_extra = max(1, videos // 4) if test_videos is None else test_videos
    n_temporal = int(round(temporal_fraction * videos))
    temporal_ids = set(np.random.default_rng(seed).permutation(videos)[:n_temporal].tolist())
    writer = {
        "ytvos": lambda: YtvosWriter(out, split),
        "davis": lambda: DavisWriter(out, split),
        "a2d": lambda: A2DWriter(out),
        "jhmdb": lambda: JHMDBWriter(out),
    }[format]()
    taken: set = set()
    for i in tqdm(range(videos + n_extra), desc=f"SynthRVOS {format}/{split}", disable=not progress):
        rng = np.random.default_rng([seed, i])
        t = _frame_count(rng, frames)
        annotated = _annotated_frames(t) if format == "a2d" else None
        video = draw_video(rng, h, w, t, temporal=i in temporal_ids, style=format, annotated=annotated)
        item = {"video": video}
        if format == "ytvos":
            item.update(vid=_unique_id(rng, _HEX, 10, taken), frame_names=_ytvos_names(rng, t))
            writer.add(item, extra=i >= videos)
        elif format == "davis":
            first = video.scene.objects[0]
            item.update(
                vid=f"{first.colour}-{first.shape}-{i:03d}", frame_names=[f"{k:05d}" for k in range(t)]
            )
            writer.add(item)
        elif format == "a2d":
            subset = {"train": 0, "test": 1}.get(split, int(rng.random() < test_fraction))
            codes = {o.obj_id: int(rng.choice(A2D_ACTOR_ACTIONS)) for o in video.scene.objects}
            item.update(
                vid=_unique_id(rng, _YT, 11, taken),
                frame_names=[f"{k + 1:05d}" for k in range(t)],
                subset=subset,
                codes=codes,
                annotated=annotated,
            )
            writer.add(item)
        else:
            action = str(rng.choice(JHMDB_ACTIONS))
            n_masks = (
                t - 1 if (t > 3 and rng.random() < 0.3) else t
            )  # JHMDB: masks may stop before the frames
            drawn = sorted(rng.choice(n_masks, size=min(3, n_masks), replace=False).tolist())
            item.update(
                vid=f"Synth_clip_{i:04d}_{action}_f_cm_np1_fr_med_0",
                action=action,
                frame_names=[f"{k + 1:05d}" for k in range(t)],
                mask_frames=n_masks,
                annotated=drawn,
            )
            writer.add(item)
    if format == "a2d":
        truth = writer.finish(missed=[_unique_id(np.random.default_rng([seed, 2**32 - 1]), _YT, 11, taken)])
    else:
        truth = writer.finish()
    truth.update(format=format, root=out, split=split, seed=seed)
    return truth
