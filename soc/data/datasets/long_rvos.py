"""Long-RVOS: ``load_long_rvos(root, split)``, ``register_long_rvos(name, root, split)`` and the reader of its
per-object masks, ``read_long_rvos_masks(record)``.

Layout (``docs/formats_and_metrics.md`` §8): ``<split>/meta_expressions.json``,
``<split>/JPEGImages/<video>/<frame>.jpg`` and ``<split>/Annotations/<video>/<obj_id>/<frame>.png`` (one
binary PNG per object and frame in which it is visible; no PNG = the object is absent from that frame). Only
the JSON is read at load time; frames and masks are paths. Splits without an ``Annotations`` folder give
records without ground truth.
"""

from __future__ import annotations

import os
from typing import List, Optional, Sequence

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog

from ..io import DataError, check_same_size, read_image, read_single_channel_png
from .common import TEMPORAL_FILE, check_name, read_json, read_temporal_subset

__all__ = [
    "META_FILE",
    "EXPRESSION_TYPES",
    "load_long_rvos",
    "register_long_rvos",
    "long_rvos_mask_files",
    "read_long_rvos_masks",
]

META_FILE = "meta_expressions.json"  # in each split's folder
EXPRESSION_TYPES = ("static", "dynamic", "hybrid")


def load_long_rvos(root: str, split: str) -> List[dict]:
    """Load Long-RVOS ``split`` (``train``, ``valid`` or ``test``) under ``root``.

    Returns:
        one record per (video, expression) with the keys of ``DEVELOPERS.md`` plus ``expression_type``
        (``"static"``, ``"dynamic"``, ``"hybrid"``, or None when the JSON gives no ``type``) and, for
        SynthRVOS, ``temporal``. With masks, ``obj_ids`` is ``[obj_id]`` and ``annotations`` is
        ``{"type": "long_rvos", "dir": <Annotations/<video>>, "objects": [every obj_id that an expression
        of the video refers to]}``; without, ``[]`` and None. ``train`` requires masks. Unsafe names, an
        ``obj_id`` that is not an integer and an unknown ``type`` raise :class:`DataError` naming the file.
    """
    meta_file = os.path.join(root, split, META_FILE)
    videos = read_json(meta_file)["videos"]
    img_root = os.path.join(root, split, "JPEGImages")
    ann_root = os.path.join(root, split, "Annotations")
    has_masks = os.path.isdir(ann_root)
    if split == "train" and not has_masks:
        raise DataError(f"split 'train' needs masks but {ann_root} does not exist")
    temporal = read_temporal_subset(os.path.join(root, split, TEMPORAL_FILE))

    records = []
    for vid, vmeta in videos.items():
        check_name(vid, meta_file, "video id")
        frames = [check_name(f, meta_file, f"video {vid}: frame name") for f in vmeta["frames"]]
        if not frames:
            raise DataError(f"{meta_file}: video {vid} lists no frames")
        file_names = [os.path.join(img_root, vid, f + ".jpg") for f in frames]
        expressions = vmeta["expressions"]
        obj_ids = {k: _obj_id(e.get("obj_id"), meta_file, vid, k) for k, e in expressions.items()}
        objects = sorted({o for o in obj_ids.values() if o is not None})
        for exp_id, exp in expressions.items():
            check_name(exp_id, meta_file, f"video {vid}: expression id")
            text = exp.get("exp", "")
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"{meta_file}: empty expression for video {vid}, exp_id {exp_id}")
            kind = exp.get("type")
            if kind is not None and kind not in EXPRESSION_TYPES:
                raise DataError(
                    f"{meta_file}: video {vid}, exp_id {exp_id} has type {kind!r}, "
                    f"not one of {EXPRESSION_TYPES}"
                )
            record = {
                "video_id": vid,
                "exp_id": str(exp_id),
                "expression": text,
                "expression_type": kind,
                "file_names": file_names,
                "frame_names": frames,
                "obj_ids": [],
                "annotations": None,
            }
            if has_masks and obj_ids[exp_id] is not None:
                record["obj_ids"] = [obj_ids[exp_id]]
                record["annotations"] = {
                    "type": "long_rvos",
                    "dir": os.path.join(ann_root, vid),
                    "objects": objects,
                }
            elif split == "train":
                raise DataError(f"{meta_file}: video {vid}, exp_id {exp_id} has no obj_id")
            if temporal is not None:
                record["temporal"] = f"{vid}/{exp_id}" in temporal
            records.append(record)
    return records


def _obj_id(value: object, meta_file: str, vid: str, exp_id: str) -> Optional[int]:
    """The integer object id of an expression (a string of digits in the JSON), or None when absent."""
    if value is None:
        return None
    text = str(value)
    if not text.isdigit():
        raise DataError(f"{meta_file}: video {vid}, exp_id {exp_id} has obj_id {value!r}, not an integer")
    return int(text)


def register_long_rvos(name: str, root: str, split: str) -> None:
    """Register Long-RVOS ``split`` under ``root`` as ``name`` (lazy: nothing is read until ``.get``)."""
    DatasetCatalog.register(name, lambda: load_long_rvos(root, split))
    MetadataCatalog.get(name).set(evaluator_type="long_rvos", root=root, split=split)


def long_rvos_mask_files(record: dict, obj_id: int) -> List[Optional[str]]:
    """Per frame of ``record["frame_names"]``, the mask PNG of object ``obj_id``, or None where there is none
    (the object is absent). A video without a folder for the object has it in no frame."""
    folder = os.path.join(_source(record)["dir"], str(obj_id))
    present = set(os.listdir(folder)) if os.path.isdir(folder) else set()
    return [
        os.path.join(folder, n + ".png") if n + ".png" in present else None for n in record["frame_names"]
    ]


def read_long_rvos_masks(
    record: dict, obj_id: Optional[int] = None, frames: Optional[Sequence[int]] = None
) -> np.ndarray:
    """Masks of one object (default: the referred object(s) ``record["obj_ids"]``, united) over the frames of
    ``record["frame_names"]``.

    Args:
        record: a Long-RVOS record or a mapper output carrying its keys.
        obj_id: any object of the video (e.g. one of ``annotations["objects"]``).
        frames: 0-based indices into ``record["frame_names"]`` to read (default: every frame); only their
            PNGs are opened.

    Returns:
        bool ``(T, H, W)`` (``T = len(frames)``) at the frame size (``height``, ``width`` of the record, else
        that of its first frame); all-False in frames without a PNG. A PNG of another size raises
        :class:`DataError`.
    """
    _source(record)
    ids = [obj_id] if obj_id is not None else [int(o) for o in record.get("obj_ids") or []]
    if not ids:
        raise DataError(f"record {record.get('video_id')}/{record.get('exp_id')} has no ground truth")
    if record.get("height") is not None:
        size = (int(record["height"]), int(record["width"]))
    else:
        size = read_image(record["file_names"][0]).shape[:2]
    idx = range(len(record["frame_names"])) if frames is None else frames
    out = np.zeros((len(idx),) + tuple(size), dtype=bool)
    for oid in ids:
        files = long_rvos_mask_files(record, oid)
        for t, path in enumerate(files[i] for i in idx):
            if path is not None:
                mask = read_single_channel_png(path)
                check_same_size([mask], [path], "annotation", size)
                out[t] |= mask
    return out


def _source(record: dict) -> dict:
    ann = record.get("annotations")
    if not ann or ann.get("type") != "long_rvos":
        raise DataError(
            f"record {record.get('video_id')}/{record.get('exp_id')} has no Long-RVOS masks "
            f"(annotations {ann!r})"
        )
    return ann
