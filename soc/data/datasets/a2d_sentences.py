"""A2D-Sentences: ``load_a2d_sentences(root, split)`` and ``register_a2d_sentences(name, root, split)``.

Files read (``docs/formats_and_metrics.md`` §3): ``Release/videoset.csv`` (9 columns, no header; column 9:
0 train, 1 test), ``text_annotations/a2d_missed_videos.txt``, ``text_annotations/a2d_annotation.txt``
(header ``video_id,instance_id,query``) and the ``instance`` field of each
``text_annotations/a2d_annotation_with_instances/<vid>/<frame:05d>.h5``. When MTTR's cache
``a2d_sentences_single_frame_<split>_annotations.json`` (rows ``[query, video_id, frame_idx, instance_id]``)
exists at the root, it replaces the text/h5 scan (``datasets/prepare_a2d_sentences.py`` writes it).

One record per sample = (sentence, video, annotated frame, instance), for every annotated frame whose h5
lists the instance, as MTTR builds them. Frames stay in ``Release/clips320H/<vid>.mp4`` and are decoded by
the mapper; a record therefore has ``video_file`` instead of per-frame ``file_names``, and ``annotated_frame``
is the 0-based index of the supervised frame in the decoded video (h5 frame number - 1).
"""

from __future__ import annotations

import csv
import logging
import os
from typing import Dict, List, Optional

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog

from ..io import DataError, import_h5py
from .common import TEMPORAL_FILE, check_name, read_json, read_temporal_subset

__all__ = ["load_a2d_sentences", "register_a2d_sentences", "a2d_samples", "a2d_image_id"]

logger = logging.getLogger(__name__)

_SUBSETS = {"train": 0, "test": 1}
CACHE_FILE = "a2d_sentences_single_frame_{split}_annotations.json"


def a2d_image_id(video_id: str, frame_idx: int, instance_id) -> str:
    """The COCO image id MTTR's ground truth uses for a sample: ``v_<vid>_f_<frame 1-based>_i_<instance>``."""
    return f"v_{video_id}_f_{frame_idx}_i_{instance_id}"


def _read_split_videos(root: str, split: str) -> List[str]:
    videoset = os.path.join(root, "Release", "videoset.csv")
    missed_file = os.path.join(root, "text_annotations", "a2d_missed_videos.txt")
    if not os.path.isfile(videoset):
        raise FileNotFoundError(f"A2D video list missing: {videoset}")
    missed = set()
    if os.path.isfile(missed_file):
        with open(missed_file) as f:
            missed = {line.strip() for line in f if line.strip()}
    videos = []
    with open(videoset, newline="") as f:
        for lineno, row in enumerate(csv.reader(f), 1):
            if not row:
                continue
            if len(row) != 9:
                raise DataError(f"{videoset}:{lineno}: expected 9 columns, got {len(row)}")
            check_name(row[0], f"{videoset}:{lineno}", "video id")
            try:
                subset = int(float(row[8]))
            except ValueError as e:
                raise DataError(f"{videoset}:{lineno}: bad subset flag {row[8]!r}") from e
            if subset == _SUBSETS[split] and row[0] not in missed:
                videos.append(row[0])
    return videos


def _read_text_annotations(root: str, videos: set) -> List[tuple]:
    path = os.path.join(root, "text_annotations", "a2d_annotation.txt")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"A2D sentences missing: {path}")
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header != ["video_id", "instance_id", "query"]:
            raise DataError(f"{path}: header {header} is not video_id,instance_id,query")
        for lineno, row in enumerate(reader, 2):
            if not row:
                continue
            if len(row) != 3:
                raise DataError(f"{path}:{lineno}: expected 3 columns, got {row}")
            vid, inst, query = row
            if vid not in videos:
                continue
            try:
                inst_id = int(inst)
            except ValueError:  # the "1 (copy)" row of T6bNPuKV-wY; MTTR drops it
                logger.warning("%s:%d: skipping row with instance id %r (video %s)", path, lineno, inst, vid)
                continue
            if not query.strip():
                raise DataError(f"{path}:{lineno}: empty sentence for video {vid}, instance {inst_id}")
            rows.append((vid, inst_id, query))
    return rows


def a2d_samples(root: str, split: str) -> List[list]:
    """Scan the text file and h5 ``instance`` lists into MTTR's sample rows
    ``[query, video_id, frame_idx (1-based), instance_id]`` (the content of its cache file)."""
    h5py = import_h5py()

    videos = _read_split_videos(root, split)
    rows = _read_text_annotations(root, set(videos))
    ann_root = os.path.join(root, "text_annotations", "a2d_annotation_with_instances")
    frame_instances: Dict[str, List[tuple]] = {}  # vid -> [(frame_idx, [instances])], read once per video
    samples = []
    for vid, inst_id, query in rows:
        if vid not in frame_instances:
            vdir = os.path.join(ann_root, vid)
            if not os.path.isdir(vdir):
                raise FileNotFoundError(f"A2D annotations of video {vid} missing: {vdir}")
            entries = []
            for name in sorted(n for n in os.listdir(vdir) if n.endswith(".h5")):
                path = os.path.join(vdir, name)
                try:
                    with h5py.File(path, "r") as f:
                        instances = [int(v) for v in np.asarray(f["instance"]).reshape(-1)]
                except (OSError, KeyError, ValueError) as e:
                    raise DataError(f"cannot read A2D annotation {path}: {e}") from e
                entries.append((int(os.path.splitext(name)[0]), instances))
            frame_instances[vid] = entries
        found = False
        for frame_idx, instances in frame_instances[vid]:
            if inst_id in instances:  # frames without the instance have no mask: skipped, as in MTTR/CMPC-V
                samples.append([query.lower(), vid, frame_idx, inst_id])
                found = True
        if not found:
            logger.warning(
                "A2D: instance %d of video %s (%r) is in none of the h5 files under %s; no sample",
                inst_id,
                vid,
                query,
                os.path.join(ann_root, vid),
            )
    return samples


def load_a2d_sentences(root: str, split: str, samples_file: Optional[str] = None) -> List[dict]:
    """Load A2D-Sentences ``split`` (``train`` or ``test``) under ``root``.

    Args:
        samples_file: an MTTR-format sample cache; default
        ``<root>/a2d_sentences_single_frame_<split>_annotations.json``
            when it exists, else the samples are built from the text file and the h5 ``instance`` lists.
    """
    if split not in _SUBSETS:
        raise ValueError(f"A2D-Sentences has splits {sorted(_SUBSETS)}, not {split!r}")
    cache = samples_file or os.path.join(root, CACHE_FILE.format(split=split))
    samples = read_json(cache) if os.path.isfile(cache) else a2d_samples(root, split)
    temporal = read_temporal_subset(os.path.join(root, "text_annotations", TEMPORAL_FILE))
    ann_root = os.path.join(root, "text_annotations", "a2d_annotation_with_instances")
    records = []
    for query, vid, frame_idx, inst_id in (s[:4] for s in samples):
        check_name(vid, cache, "video id")
        frame_idx, inst_id = int(frame_idx), int(inst_id)
        if not str(query).strip():
            raise DataError(f"{cache}: empty sentence for video {vid}, instance {inst_id}")
        record = {
            "video_id": vid,
            "exp_id": str(inst_id),
            "expression": query,
            "video_file": os.path.join(root, "Release", "clips320H", f"{vid}.mp4"),
            "annotated_frame": frame_idx - 1,
            "frame_idx": frame_idx,
            "instance_id": inst_id,
            "image_id": a2d_image_id(vid, frame_idx, inst_id),
            "obj_ids": [inst_id],
            "annotations": {"type": "a2d_h5", "file": os.path.join(ann_root, vid, f"{frame_idx:05d}.h5")},
        }
        if temporal is not None:
            record["temporal"] = f"{vid}/{inst_id}" in temporal
        records.append(record)
    return records


def register_a2d_sentences(name: str, root: str, split: str) -> None:
    """Register A2D-Sentences ``split`` under ``root`` as ``name`` (lazy)."""
    DatasetCatalog.register(name, lambda: load_a2d_sentences(root, split))
    MetadataCatalog.get(name).set(evaluator_type="a2d_sentences", root=root, split=split)
