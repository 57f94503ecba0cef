"""Ref-YouTube-VOS: ``load_ref_ytvos(root, split)`` and ``register_ref_ytvos(name, root, split)``.

Layout (``docs/formats_and_metrics.md`` §1): ``meta_expressions/<split>/meta_expressions.json``,
``<split>/JPEGImages/<vid>/<frame>.jpg``, ``<split>/Annotations/<vid>/<frame>.png`` (train; SynthRVOS valid
too) and ``<split>/meta.json``.

Only the JSON files are read; frames and masks are paths, decoded by the mappers. The ``valid`` split is the
keys of ``meta_expressions/valid`` minus those of ``meta_expressions/test`` (the 202 submission videos).
"""

from __future__ import annotations

import logging
import os
from typing import Dict, List, Optional, Set

from detectron2.data import DatasetCatalog, MetadataCatalog

from ..io import DataError
from .common import TEMPORAL_FILE, check_name, read_json, read_temporal_subset

__all__ = ["load_ref_ytvos", "register_ref_ytvos", "load_ytvos_layout"]

logger = logging.getLogger(__name__)


def load_ytvos_layout(
    root: str,
    split: str,
    *,
    exclude_videos: Optional[Set[str]] = None,
    require_masks: bool = False,
    meta_videos: Optional[Dict[str, dict]] = None,
    meta_file: Optional[str] = None,
    img_root: Optional[str] = None,
    ann_root: Optional[str] = None,
    objects: Optional[Dict[str, dict]] = None,
    objects_file: Optional[str] = None,
) -> List[dict]:
    """Records of a Ref-YouTube-VOS-like tree (also the converted Ref-DAVIS17 layout).

    Args:
        root: dataset root holding ``meta_expressions/`` and ``<split>/``.
        split: folder name (``train``, ``valid``).
        exclude_videos: video ids to drop (the test keys for Ref-YouTube-VOS valid).
        require_masks: raise if the split has no ``Annotations`` or an expression has no ``obj_id``.
        meta_videos: the ``videos`` dict of a meta_expressions file already in memory (raw Ref-DAVIS17);
            default: read ``meta_expressions/<split>/meta_expressions.json``.
        meta_file: name used for that dict in error messages.
        img_root, ann_root: frame and annotation folders (default
        ``<root>/<split>/{JPEGImages,Annotations}``).
        objects, objects_file: the ``videos`` dict of ``meta.json`` and its name (default: read
            ``<root>/<split>/meta.json`` when it exists); used to check that every ``obj_id`` exists.

    Returns:
        one record per (video, expression); see ``DEVELOPERS.md`` and ``datasets/README.md``. Video ids,
        frame names and expression ids that cannot be one path component raise :class:`DataError`.
    """
    if meta_videos is None:
        meta_file = os.path.join(root, "meta_expressions", split, "meta_expressions.json")
        meta_videos = read_json(meta_file)["videos"]
    img_root = img_root or os.path.join(root, split, "JPEGImages")
    ann_root = ann_root or os.path.join(root, split, "Annotations")
    has_masks = os.path.isdir(ann_root)
    if require_masks and not has_masks:
        raise DataError(f"split {split!r} needs masks but {ann_root} does not exist")
    if objects is None:
        objects_file = os.path.join(root, split, "meta.json")
        objects = read_json(objects_file)["videos"] if os.path.isfile(objects_file) else None
    temporal = read_temporal_subset(os.path.join(root, "meta_expressions", split, TEMPORAL_FILE))

    records = []
    for vid, vmeta in meta_videos.items():
        check_name(vid, meta_file, "video id")
        if exclude_videos and vid in exclude_videos:
            continue
        frames = [check_name(f, meta_file, f"video {vid}: frame name") for f in vmeta["frames"]]
        if not frames:
            raise DataError(f"{meta_file}: video {vid} lists no frames")
        file_names = [os.path.join(img_root, vid, f + ".jpg") for f in frames]
        vid_objects = None
        if objects is not None and has_masks:
            if vid not in objects:
                raise DataError(f"{objects_file}: video {vid} of {meta_file} is missing")
            vid_objects = objects[vid].get("objects", {})
        for exp_id, exp in vmeta["expressions"].items():
            check_name(exp_id, meta_file, f"video {vid}: expression id")
            text = exp.get("exp", "")
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"{meta_file}: empty expression for video {vid}, exp_id {exp_id}")
            record = {
                "video_id": vid,
                "exp_id": str(exp_id),
                "expression": text,
                "file_names": file_names,
                "frame_names": frames,
                "obj_ids": [],
                "annotations": None,
            }
            obj_id = exp.get("obj_id")
            if obj_id is not None and has_masks:
                oid = int(obj_id)
                if vid_objects is not None:
                    if str(oid) not in vid_objects:
                        raise DataError(
                            f"{meta_file}: video {vid}, exp_id {exp_id} refers to object {oid}, which "
                            f"{objects_file} does not list (objects {sorted(vid_objects)})"
                        )
                    obj_frames = vid_objects[str(oid)].get("frames")
                    if obj_frames is not None:  # where the object is annotated: anchors for training windows
                        record["obj_frames"] = list(obj_frames)
                record["obj_ids"] = [oid]
                record["annotations"] = {
                    "type": "png",
                    "files": [os.path.join(ann_root, vid, f + ".png") for f in frames],
                }
            elif require_masks:
                raise DataError(f"{meta_file}: video {vid}, exp_id {exp_id} has no obj_id")
            if temporal is not None:
                record["temporal"] = f"{vid}/{exp_id}" in temporal
            records.append(record)
    return records


def load_ref_ytvos(root: str, split: str) -> List[dict]:
    """Load Ref-YouTube-VOS ``split`` (``train`` or ``valid``) under ``root``.

    ``train`` requires masks (``train/Annotations`` and an ``obj_id`` per expression). ``valid`` is
    ``meta_expressions/valid`` minus the videos of ``meta_expressions/test``; its records have ``obj_ids``
    and ``annotations`` only when the split ships masks (SynthRVOS), else ``[]`` and ``None``.
    """
    exclude = None
    if split == "valid":
        test_file = os.path.join(root, "meta_expressions", "test", "meta_expressions.json")
        if os.path.isfile(test_file):
            exclude = set(read_json(test_file)["videos"])
        else:
            logger.warning("%s is missing: using every video of meta_expressions/valid", test_file)
    return load_ytvos_layout(root, split, exclude_videos=exclude, require_masks=(split == "train"))


def register_ref_ytvos(name: str, root: str, split: str) -> None:
    """Register Ref-YouTube-VOS ``split`` under ``root`` as ``name`` (lazy: nothing is read until
    ``.get``)."""
    DatasetCatalog.register(name, lambda: load_ref_ytvos(root, split))
    MetadataCatalog.get(name).set(evaluator_type="ref_ytvos", root=root, split=split)
