"""RefCOCO / RefCOCO+ / RefCOCOg as one-frame clips: ``load_refcoco`` and ``register_refcoco(name, root,
dataset, split)``.

Annotation files are COCO-style JSON with one "image" per expression, as MDETR
(``final_<dataset>_<split>.json``) and ReferFormer/SOC (``instances_<dataset>_<split>.json``, made by
ReferFormer's converter) ship them: each image has ``file_name``, ``height``, ``width``, ``caption`` and
``original_id`` (the COCO image id), MDETR's also ``dataset_name``; each annotation has ``image_id``, ``bbox``
(xywh), ``segmentation`` (polygons or RLE), ``area``, ``iscrowd`` and ``category_id``. Images are COCO
``train2014`` files.

Searched under ``root`` (``$SOC_DATASETS/coco``), first match wins:
``<dataset>/instances_<dataset>_<split>.json``,
``mdetr_annotations/final_<dataset>_<split>.json``, ``<dataset>/final_<dataset>_<split>.json``.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from typing import List, Optional

from detectron2.data import DatasetCatalog, MetadataCatalog

from ..io import DataError
from .common import check_name, read_json

__all__ = ["load_refcoco", "register_refcoco", "refcoco_annotation_file"]

logger = logging.getLogger(__name__)

DATASETS = ("refcoco", "refcoco+", "refcocog")


def refcoco_annotation_file(root: str, dataset: str, split: str) -> str:
    """The annotation file of ``dataset``/``split`` under ``root`` (see the module docstring)."""
    candidates = [
        os.path.join(root, dataset, f"instances_{dataset}_{split}.json"),
        os.path.join(root, "mdetr_annotations", f"final_{dataset}_{split}.json"),
        os.path.join(root, dataset, f"final_{dataset}_{split}.json"),
    ]
    for path in candidates:
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"no {dataset} {split} annotations under {root}; looked for {candidates}")


def load_refcoco(root: str, dataset: str, split: str, image_root: Optional[str] = None) -> List[dict]:
    """Load one referring-expression split as one-frame clip records.

    Args:
        root: folder holding the annotation files (and ``train2014/`` unless ``image_root`` is given).
        dataset: ``refcoco``, ``refcoco+`` or ``refcocog``.
        split: ``train``, ``val``, ``testA``, ``testB`` or ``test``, as the files exist.

    Records: ``video_id`` = COCO image id (``original_id``), ``exp_id`` = the expression's image id,
    one frame, ``obj_ids`` = [annotation id], ``annotations`` = ``{"type": "coco", ...}`` (decoded by the
    mapper).
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, not {dataset!r}")
    path = refcoco_annotation_file(root, dataset, split)
    image_root = image_root or os.path.join(root, "train2014")
    data = read_json(path)
    anns = defaultdict(list)
    for ann in data["annotations"]:
        if not ann.get("iscrowd", 0):
            anns[ann["image_id"]].append(ann)
    records, skipped = [], 0
    for img in data["images"]:
        caption = img.get("caption", "")
        if not isinstance(caption, str) or not caption.strip():
            raise DataError(f"{path}: empty caption for image id {img['id']}")
        img_anns = anns.get(img["id"], [])
        if not img_anns:  # nothing to refer to; the references resample such images
            skipped += 1
            continue
        ann = img_anns[0]  # one referred object per expression
        file_name = check_name(img["file_name"], path, f"image id {img['id']}: file_name")
        stem = os.path.splitext(file_name)[0]
        records.append(
            {
                "video_id": check_name(str(img.get("original_id", stem)), path, "original_id"),
                "exp_id": check_name(str(img["id"]), path, "image id"),
                "expression": caption,
                "file_names": [os.path.join(image_root, file_name)],
                "frame_names": [stem],
                "height": int(img["height"]),
                "width": int(img["width"]),
                "obj_ids": [int(ann["id"])],
                "annotations": {
                    "type": "coco",
                    "segmentation": ann["segmentation"],
                    "height": int(img["height"]),
                    "width": int(img["width"]),
                },
                "dataset_name": img.get("dataset_name", dataset),
            }
        )
    if skipped:
        logger.warning("%s: skipped %d expressions without a non-crowd annotation", path, skipped)
    return records


def register_refcoco(name: str, root: str, dataset: str, split: str) -> None:
    """Register ``dataset``/``split`` (RefCOCO family) under ``root`` as ``name`` (lazy)."""
    DatasetCatalog.register(name, lambda: load_refcoco(root, dataset, split))
    MetadataCatalog.get(name).set(evaluator_type="refcoco", root=root, split=split, dataset=dataset)
