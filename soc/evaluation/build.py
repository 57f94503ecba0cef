"""``build_evaluator``: the evaluator of a dataset, chosen by its metadata's ``evaluator_type``."""

from __future__ import annotations

import os
from typing import Optional

from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluator

from .a2d_evaluator import A2DSentencesEvaluator, JHMDBSentencesEvaluator
from .long_rvos import LongRVOSEvaluator
from .mevis_evaluator import MevisEvaluator, ReVOSEvaluator
from .ref_davis_evaluator import RefDAVISEvaluator
from .refvos_evaluator import RefVOSEvaluator

__all__ = ["build_evaluator", "COCO_GT_FILES"]

# MTTR's COCO-format ground truth, used for mAP when it sits at the dataset root (else built from the masks).
COCO_GT_FILES = {
    "a2d_sentences": "a2d_sentences_{split}_annotations_in_coco_format.json",
    "jhmdb_sentences": "jhmdb_sentences_gt_annotations_in_coco_format.json",
}


def _coco_gt_json(meta, evaluator_type: str) -> Optional[str]:
    explicit = meta.get("gt_json", None)
    if explicit:
        return explicit
    root = meta.get("root", None)
    if root is None:
        return None
    path = os.path.join(root, COCO_GT_FILES[evaluator_type].format(split=meta.get("split", "test")))
    return path if os.path.isfile(path) else None


def build_evaluator(cfg, dataset_name: str, output_folder: Optional[str] = None) -> DatasetEvaluator:
    """The evaluator for ``dataset_name``.

    ``MetadataCatalog.get(dataset_name).evaluator_type`` selects it: ``ref_ytvos`` -> :class:`RefVOSEvaluator`
    (per-expression J&F; always writes the submission zip when ``output_folder`` is given), ``ref_davis`` ->
    :class:`RefDAVISEvaluator` (four annotator runs, unsupervised DAVIS protocol), ``a2d_sentences`` /
    ``jhmdb_sentences`` -> :class:`A2DSentencesEvaluator` / :class:`JHMDBSentencesEvaluator`, ``long_rvos`` ->
    :class:`LongRVOSEvaluator` (J&F, tIoU, vIoU, identity switches per expression type), ``mevis`` / ``revos``
    -> :class:`MevisEvaluator` / :class:`ReVOSEvaluator` (J&F, N-acc, T-acc, Final; ReVOS categories; the
    submission zip). ``cfg`` is not read (kept for detectron2's ``build_evaluator`` signature).
    """
    meta = MetadataCatalog.get(dataset_name)
    evaluator_type = meta.get("evaluator_type", None)
    if evaluator_type == "ref_ytvos":
        return RefVOSEvaluator(dataset_name, output_folder)
    if evaluator_type == "ref_davis":
        return RefDAVISEvaluator(dataset_name, output_folder)
    if evaluator_type == "a2d_sentences":
        return A2DSentencesEvaluator(dataset_name, output_folder, gt_json=_coco_gt_json(meta, evaluator_type))
    if evaluator_type == "jhmdb_sentences":
        return JHMDBSentencesEvaluator(
            dataset_name, output_folder, gt_json=_coco_gt_json(meta, evaluator_type)
        )
    if evaluator_type == "long_rvos":
        return LongRVOSEvaluator(dataset_name, output_folder)
    if evaluator_type == "mevis":
        return MevisEvaluator(dataset_name, output_folder)
    if evaluator_type == "revos":
        return ReVOSEvaluator(dataset_name, output_folder)
    raise NotImplementedError(
        f"no evaluator for dataset {dataset_name!r} with evaluator_type {evaluator_type!r} "
        "(expected ref_ytvos, ref_davis, a2d_sentences, jhmdb_sentences, long_rvos, mevis or revos)"
    )
