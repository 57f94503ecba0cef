"""JHMDB-Sentences (evaluation only): ``load_jhmdb_sentences(root)`` and ``register_jhmdb_sentences(name,
root)``.

Files (``docs/formats_and_metrics.md`` §4): ``Rename_Images/<action>/<vid>/%05d.png`` (1-based),
``puppet_mask/<action>/<vid>/puppet_mask.mat`` (``part_mask`` (H, W, T)), ``jhmdb_annotation.txt`` (header
``video_id,query``) and the sample list ``jhmdb_sentences_samples_metadata.json`` (MTTR rows ``[video_id,
frame_path, mask_path, video_total_frames, query]``).

Samples: the loader **reads the sample list** when it exists, because the three frames per video are a random
draw and numbers are only comparable on the same draw (SOC ships its own list; put it at the root). Without
it, the loader draws three frames per video itself with ``random.Random(seed)`` (default seed 0) in file
order, from the frames that have masks (the ``part_mask`` length is read from the .mat header with
``scipy.io.whosmat``, no mask is decoded); ``datasets/prepare_jhmdb_sentences.py`` writes such a draw to disk.
"""

from __future__ import annotations

import csv
import logging
import os
import random
from typing import List, Optional

from detectron2.data import DatasetCatalog, MetadataCatalog

from ..io import DataError, mat_read_errors
from .common import TEMPORAL_FILE, check_name, read_json, read_temporal_subset

__all__ = ["load_jhmdb_sentences", "register_jhmdb_sentences", "jhmdb_samples", "jhmdb_image_id"]

logger = logging.getLogger(__name__)

SAMPLES_FILE = "jhmdb_sentences_samples_metadata.json"


def jhmdb_image_id(video_id: str, frame_idx: int) -> str:
    """The COCO image id of MTTR's JHMDB ground truth: ``v_<vid>_f_<frame 1-based>``."""
    return f"v_{video_id}_f_{frame_idx}"


def _under(root: str, path: object, anchor: str, source: str, key: str) -> str:
    """Re-root a path stored in the sample list ``source`` (``./jhmdb_sentences/<anchor>/...``) under
    ``root``; every component from ``anchor`` on must be a safe name (:func:`check_name`)."""
    parts = str(path).replace("\\", "/").split("/")
    if anchor not in parts:
        raise DataError(f"{source}: {key} {path!r} has no {anchor!r} component")
    tail = [check_name(p, source, f"{key} {path!r}: component") for p in parts[parts.index(anchor) :]]
    return os.path.join(root, *tail)


def _mat_length(path: str) -> int:
    import scipy.io

    if not os.path.isfile(path):
        raise FileNotFoundError(f"JHMDB puppet mask missing: {path}")
    try:
        shapes = {name: shape for name, shape, _ in scipy.io.whosmat(path)}
    except mat_read_errors() as e:
        raise DataError(f"cannot read JHMDB puppet mask {path}: {e}") from e
    if "part_mask" not in shapes or len(shapes["part_mask"]) != 3:
        raise DataError(f"{path}: no (H, W, T) 'part_mask' (variables {shapes})")
    return int(shapes["part_mask"][2])


def jhmdb_samples(root: str, seed: int = 0, frames_per_video: int = 3) -> List[list]:
    """Draw the sample list (MTTR row format, paths under ``root``) from the raw files."""
    text_file = os.path.join(root, "jhmdb_annotation.txt")
    if not os.path.isfile(text_file):
        raise FileNotFoundError(f"JHMDB sentences missing: {text_file}")
    with open(text_file, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != ["video_id", "query"]:
            raise DataError(f"{text_file}: header {header} is not video_id,query")
        rows = [r for r in reader if r]
    frame_dirs = {}
    image_root = os.path.join(root, "Rename_Images")
    for action in sorted(os.listdir(image_root)):
        adir = os.path.join(image_root, action)
        if os.path.isdir(adir):
            for vid in os.listdir(adir):
                frame_dirs[vid] = (action, os.path.join(adir, vid))
    rng = random.Random(seed)
    samples = []
    for lineno, row in enumerate(rows, 2):
        if len(row) != 2:
            raise DataError(f"{text_file}:{lineno}: expected 2 columns, got {row}")
        vid, query = row
        check_name(vid, f"{text_file}:{lineno}", "video id")
        if vid not in frame_dirs:
            raise FileNotFoundError(f"{text_file}:{lineno}: no frame folder Rename_Images/*/{vid}")
        action, fdir = frame_dirs[vid]
        frames = sorted(n for n in os.listdir(fdir) if n.endswith(".png"))
        mat = os.path.join(root, "puppet_mask", action, vid, "puppet_mask.mat")
        usable = frames[: _mat_length(mat)]  # trailing frames without masks cannot be evaluated
        for name in sorted(rng.sample(usable, min(frames_per_video, len(usable)))):
            samples.append([vid, os.path.join(fdir, name), mat, len(usable), query])
    return samples


def load_jhmdb_sentences(root: str, samples_file: Optional[str] = None, seed: int = 0) -> List[dict]:
    """Load JHMDB-Sentences under ``root``: one record per (video, drawn frame).

    Args:
        samples_file: the sample list (default ``<root>/jhmdb_sentences_samples_metadata.json`` when present).
        seed: seed of the draw when there is no sample list.
    """
    path = samples_file or os.path.join(root, SAMPLES_FILE)
    if os.path.isfile(path):
        samples = read_json(path)
    else:
        logger.warning("%s not found: drawing 3 frames per video with seed %d", path, seed)
        samples = jhmdb_samples(root, seed)
    temporal = read_temporal_subset(os.path.join(root, TEMPORAL_FILE))
    records = []
    for vid, frame_path, mask_path, total, query in samples:
        check_name(vid, path, "video id")
        if not str(query).strip():
            raise DataError(f"{path}: empty sentence for video {vid}")
        frame_path = _under(root, frame_path, "Rename_Images", path, f"video {vid}: frame path")
        frame_dir = os.path.dirname(frame_path)
        frame_idx = int(os.path.splitext(os.path.basename(frame_path))[0])
        total = int(total)
        if not 1 <= frame_idx <= total:
            raise DataError(f"{path}: video {vid} frame {frame_idx} outside its {total} usable frames")
        names = [f"{i:05d}" for i in range(1, total + 1)]
        record = {
            "video_id": vid,
            "exp_id": "0",
            "expression": query,
            "file_names": [os.path.join(frame_dir, n + ".png") for n in names],
            "frame_names": names,
            "annotated_frame": frame_idx - 1,
            "frame_idx": frame_idx,
            "image_id": jhmdb_image_id(vid, frame_idx),
            "obj_ids": [1],
            "annotations": {
                "type": "jhmdb_mat",
                "file": _under(root, mask_path, "puppet_mask", path, f"video {vid}: mask path"),
                "frame": frame_idx - 1,
            },
        }
        if temporal is not None:
            record["temporal"] = f"{vid}/0" in temporal
        records.append(record)
    return records


def register_jhmdb_sentences(name: str, root: str) -> None:
    """Register JHMDB-Sentences under ``root`` as ``name`` (lazy)."""
    DatasetCatalog.register(name, lambda: load_jhmdb_sentences(root))
    MetadataCatalog.get(name).set(evaluator_type="jhmdb_sentences", root=root, split="test")
