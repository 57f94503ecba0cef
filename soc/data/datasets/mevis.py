"""MeViS (v1, v2) and ReVOS: one loader for their shared files, ``load_mevis(meta_file, image_root,
mask_file)``, the two layouts (``mevis_files``, ``revos_files``), their registration and the reader of the
COCO-RLE masks, ``read_mevis_masks(record)``.

Files (``docs/formats_and_metrics.md`` §9): ``meta_expressions.json`` ``{"videos": {video: {"frames": [...],
"expressions": {exp_id: {"exp", "obj_id": [int], "anno_id": [int | str], ReVOS: "type_id"}}}}}`` and
``mask_dict.json`` ``{str(anno_id): [COCO RLE or null per frame, in the order of "frames"]}``. An expression
refers to the union of its objects; an empty ``anno_id`` list (MeViS v2) refers to nothing.

Choices: the text is lower-cased with whitespace collapsed (the official loader); an unsorted or repeated
``frames`` list is an error, because the official loader indexes ``mask_dict`` by the sorted position and the
official evaluator by the listed one, which agree only on a sorted list. Everything that the masks depend on
is checked at load time (the mask file is parsed once and kept for the mappers): a bad file stops with a
:class:`DataError` naming the file and the key.
"""

from __future__ import annotations

import functools
import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image

from ..io import DataError, normalize_expression, read_image
from .common import TEMPORAL_FILE, check_name, read_json, read_temporal_subset

__all__ = [
    "MEVIS_MASKS",
    "load_mevis",
    "mevis_files",
    "revos_files",
    "register_mevis",
    "register_revos",
    "load_mask_dict",
    "read_mevis_masks",
]

MEVIS_MASKS = "mevis_rle"  # the ``annotations["type"]`` of these records


def mevis_files(root: str, split: str) -> Tuple[str, str, str]:
    """MeViS v1/v2 (``train``, ``valid_u``, ``valid``): ``<root>/<split>/{meta_expressions.json,
    JPEGImages, mask_dict.json}``. Returns (meta file, image root, mask file)."""
    folder = os.path.join(root, split)
    return (
        os.path.join(folder, "meta_expressions.json"),
        os.path.join(folder, "JPEGImages"),
        os.path.join(folder, "mask_dict.json"),
    )


def revos_files(root: str, split: str) -> Tuple[str, str, str]:
    """ReVOS (``train``, ``valid``): ``<root>/meta_expressions_<split>_.json``, ``<root>/JPEGImages`` and
    one ``<root>/mask_dict.json`` for both splits. Returns (meta file, image root, mask file)."""
    return (
        os.path.join(root, f"meta_expressions_{split}_.json"),
        os.path.join(root, "JPEGImages"),
        os.path.join(root, "mask_dict.json"),
    )


@functools.lru_cache(maxsize=2)
def load_mask_dict(path: str) -> Dict[str, list]:
    """The parsed ``mask_dict.json`` (kept: the loader and the mappers of a process share one copy)."""
    masks = read_json(path)
    if not isinstance(masks, dict):
        raise DataError(f"{path}: expected an object {{anno_id: [RLE or null per frame]}}")
    return masks


def load_mevis(
    meta_file: str, image_root: str, mask_file: Optional[str] = None, *, require_masks: bool = False
) -> List[dict]:
    """Records of a MeViS / ReVOS split.

    Args:
        meta_file: the split's expression file.
        image_root: folder of ``<video>/<frame>.jpg``.
        mask_file: ``mask_dict.json``; None or a missing file gives records without ground truth.
        require_masks: a missing ``mask_file`` is an error (training splits).

    Returns:
        one record per (video, expression) with the keys of ``DEVELOPERS.md``: ``obj_ids`` (the ``obj_id``
        list), ``anno_ids`` (str), ``type_id`` (ReVOS; None otherwise) and, with masks, ``height``, ``width``
        and ``annotations = {"type": "mevis_rle", "file": mask_file, "anno_ids": [...]}`` (an empty list:
        no target); without masks ``annotations`` is None.
    """
    data = read_json(meta_file)
    videos = data.get("videos") if isinstance(data, dict) else None
    if not isinstance(videos, dict):
        raise DataError(f"{meta_file}: no 'videos' object")
    has_masks = mask_file is not None and os.path.isfile(mask_file)
    if require_masks and not has_masks:
        raise DataError(f"{meta_file}: training needs masks but {mask_file} does not exist")
    mask_dict = load_mask_dict(mask_file) if has_masks else None
    temporal = read_temporal_subset(os.path.join(os.path.dirname(meta_file), TEMPORAL_FILE))

    records = []
    for vid, vmeta in videos.items():
        check_name(vid, meta_file, "video id")
        frames = _frames(vmeta, meta_file, vid)
        file_names = [os.path.join(image_root, vid, f + ".jpg") for f in frames]
        for path in file_names:
            if not os.path.isfile(path):
                raise DataError(f"{meta_file}: video {vid} lists frame {path}, which does not exist")
        size = _frame_size(file_names[0]) if has_masks else None
        expressions = vmeta.get("expressions")
        if not isinstance(expressions, dict):
            raise DataError(f"{meta_file}: video {vid} has no 'expressions' object")
        for exp_id, exp in expressions.items():
            check_name(exp_id, meta_file, f"video {vid}: expression id")
            where = f"{meta_file}: video {vid}, exp_id {exp_id}"
            text = exp.get("exp")
            if not isinstance(text, str) or not text.strip():
                raise DataError(f"{where}: empty or missing 'exp'")
            obj_ids = [_int(o, where, "obj_id") for o in _list(exp, "obj_id", where)]
            anno_ids = [str(_int(a, where, "anno_id")) for a in _list(exp, "anno_id", where)]
            record = {
                "video_id": vid,
                "exp_id": str(exp_id),
                "expression": normalize_expression(text),
                "file_names": file_names,
                "frame_names": frames,
                "obj_ids": obj_ids,
                "anno_ids": anno_ids,
                "type_id": exp.get("type_id"),
                "annotations": None,
            }
            if has_masks:
                for anno in anno_ids:
                    _check_masks(mask_dict, anno, mask_file, where, frames, size)
                record.update(height=size[0], width=size[1])
                record["annotations"] = {"type": MEVIS_MASKS, "file": mask_file, "anno_ids": anno_ids}
            if temporal is not None:
                record["temporal"] = f"{vid}/{exp_id}" in temporal
            records.append(record)
    return records


def _frames(vmeta: dict, meta_file: str, vid: str) -> List[str]:
    frames = [check_name(f, meta_file, f"video {vid}: frame name") for f in vmeta.get("frames") or []]
    if not frames:
        raise DataError(f"{meta_file}: video {vid} lists no frames")
    if frames != sorted(set(frames)):
        raise DataError(
            f"{meta_file}: video {vid}: 'frames' is not sorted or repeats a frame (the official loader and "
            "evaluator then index mask_dict differently); sort the list and mask_dict's lists alike"
        )
    return frames


def _frame_size(path: str) -> Tuple[int, int]:
    try:
        with Image.open(path) as img:
            return img.size[1], img.size[0]
    except OSError as e:
        raise DataError(f"cannot read frame {path}: {e}") from e


def _list(exp: dict, key: str, where: str) -> list:
    value = exp.get(key, [])
    if not isinstance(value, list):
        raise DataError(f"{where}: '{key}' is {value!r}, not a list")
    return value


def _int(value: object, where: str, key: str) -> int:
    if isinstance(value, bool) or not str(value).isdigit():
        raise DataError(f"{where}: {key} {value!r} is not a non-negative integer")
    return int(value)


def _check_masks(
    mask_dict: dict, anno: str, mask_file: str, where: str, frames: Sequence[str], size: Tuple[int, int]
) -> None:
    """Every frame has an entry (RLE of the frame size, or null) under ``mask_dict[anno]``."""
    masks = mask_dict.get(anno)
    if masks is None:
        raise DataError(f"{mask_file}: anno_id {anno} (of {where}) is not a key")
    if not isinstance(masks, list) or len(masks) != len(frames):
        count = len(masks) if isinstance(masks, list) else type(masks).__name__
        raise DataError(
            f"{mask_file}: anno_id {anno} has {count} masks for the {len(frames)} frames of {where}"
        )
    for name, rle in zip(frames, masks):
        if rle is None:
            continue
        if not isinstance(rle, dict) or "counts" not in rle or "size" not in rle:
            raise DataError(f"{mask_file}: anno_id {anno}, frame {name}: not a COCO RLE or null")
        if tuple(rle["size"]) != tuple(size):
            raise DataError(
                f"{mask_file}: anno_id {anno}, frame {name}: RLE size {rle['size']} (H, W), the frame is "
                f"{list(size)}"
            )


def read_mevis_masks(record: dict, frames: Optional[Sequence[int]] = None) -> np.ndarray:
    """Ground truth of a MeViS / ReVOS record (or mapper output carrying its keys): per frame, the union of
    the masks of ``annotations["anno_ids"]`` (a null RLE adds nothing).

    Args:
        frames: 0-based indices into ``record["frame_names"]`` (default: every frame).

    Returns:
        bool ``(T, H, W)``; all-False for an expression without target.
    """
    from pycocotools import mask as mask_util

    ann = record["annotations"]
    idx = range(len(record["frame_names"])) if frames is None else frames
    if record.get("height") is not None:
        size = (int(record["height"]), int(record["width"]))
    else:
        size = read_image(record["file_names"][0]).shape[:2]
    out = np.zeros((len(idx),) + tuple(size), dtype=bool)
    mask_dict = load_mask_dict(ann["file"])
    for anno in ann["anno_ids"]:
        for t, i in enumerate(idx):
            rle = mask_dict[str(anno)][i]
            if rle is not None:
                out[t] |= mask_util.decode(rle).astype(bool)
    return out


def register_mevis(name: str, root: str, split: str) -> None:
    """Register MeViS (v1 or v2) ``split`` under ``root`` as ``name`` (lazy). ``train`` requires
    ``mask_dict.json``; ``valid_u`` has it; ``valid`` (the submission split) has none."""
    meta, images, masks = mevis_files(root, split)
    DatasetCatalog.register(name, lambda: load_mevis(meta, images, masks, require_masks=split == "train"))
    MetadataCatalog.get(name).set(evaluator_type="mevis", root=root, split=split)


def register_revos(name: str, root: str, split: str) -> None:
    """Register ReVOS ``split`` (``train``, ``valid``) under ``root`` as ``name`` (lazy)."""
    meta, images, masks = revos_files(root, split)
    DatasetCatalog.register(name, lambda: load_mevis(meta, images, masks, require_masks=split == "train"))
    MetadataCatalog.get(name).set(evaluator_type="revos", root=root, split=split)
