"""A2D-Sentences and JHMDB-Sentences evaluation (MTTR protocol, ``docs/formats_and_metrics.md`` §3.4, §4,
§5.5, §5.6).

A sample is one (sentence, video, annotated frame[, instance]) with one GT mask, identified by its COCO image
id (``v_<vid>_f_<frame>_i_<instance>`` for A2D, ``v_<vid>_f_<frame>`` for JHMDB; frame numbers 1-based).

- Precision@K, overall IoU and mean IoU use the top-scoring query of each sample with the epsilon IoU
  ``(I + 1e-6)/(U + 1e-6)`` and a strict ``IoU > K``.
- mAP@0.5:0.95, AP50, AP75, APs/m/l and AR use **every** query's mask and score, ranked across samples, with
  pycocotools ``COCOeval(iouType="segm")`` and ``useCats = 0``; the GT is built in memory from the records'
  masks (one annotation per image, ``area`` from the RLE) unless the dataset's COCO GT json is given.

All results are fractions in [0, 1] (COCO's -1 marks an empty area range).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
from typing import Dict, List, Optional

import numpy as np
from detectron2.evaluation import DatasetEvaluator
from pycocotools import mask as mask_util

from .metrics import a2d_summary, coco_mask_ap, sample_iou
from .refvos_evaluator import GTReader, as_numpy, expression_pairs, gather_on_main

__all__ = ["A2DSentencesEvaluator", "JHMDBSentencesEvaluator", "encode_mask"]

logger = logging.getLogger(__name__)


def encode_mask(mask: np.ndarray) -> dict:
    """COCO compressed RLE of a bool ``(H, W)`` mask, with ``counts`` as str (JSON- and pickle-friendly)."""
    rle = mask_util.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def _default_gt_reader(record: dict) -> Optional[np.ndarray]:
    if not record.get("annotations"):
        return None
    from soc.data.io import read_masks

    return read_masks(record)


class A2DSentencesEvaluator(DatasetEvaluator):
    """Precision@K, overall/mean IoU and COCO mask AP of referring segmentation on single annotated frames.

    Results on rank 0: ``{"a2d_sentences": {"mAP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10",
    "AR100", "P@0.5", ..., "P@0.9", "oIoU", "mIoU"}}`` (fractions), plus ``temporal/...`` P@K and IoUs over
    the samples whose inputs carry ``temporal=True`` (the SynthRVOS temporal subset), when there are any.
    """

    results_key = "a2d_sentences"

    def __init__(
        self,
        dataset_name: Optional[str] = None,
        output_dir: Optional[str] = None,
        *,
        gt_json: Optional[str] = None,
        gt_reader: Optional[GTReader] = None,
        distributed: bool = True,
    ):
        """
        Args:
            dataset_name: the registered dataset (named in the log).
            output_dir: folder for ``<results_key>_samples.json`` (per-sample IoUs); None writes nothing.
            gt_json: the benchmark's COCO-format GT (MTTR's ``*_annotations_in_coco_format.json``); default:
                build the GT from the records' masks.
            gt_reader: ``record -> bool (1, H, W)`` GT mask of the annotated frame; default
                ``soc.data.io.read_masks``. Unused with ``gt_json``.
            distributed: gather the per-sample records of all processes on rank 0.
        """
        self._dataset_name = dataset_name
        self._output_dir = output_dir
        self._gt_json = gt_json
        self._gt_reader = gt_reader or _default_gt_reader
        self._distributed = distributed
        self._gt_coco = None
        self.reset()

    def reset(self) -> None:
        self._samples: List[dict] = []

    # ------------------------------------------------------------------------------------------ process
    def image_id(self, record: dict) -> str:
        """The sample's COCO image id: the record's ``image_id``, else ``v_<vid>_f_<frame>_i_<instance>``."""
        if "image_id" in record:
            return str(record["image_id"])
        frame = int(record.get("frame_idx", int(record["annotated_frame"]) + 1))
        return f"v_{record['video_id']}_f_{frame}_i_{record.get('instance_id', record['exp_id'])}"

    def _gt_mask(self, record: dict, image_id: str) -> np.ndarray:
        if self._gt_json is not None:
            coco = self._load_gt_json()
            anns = coco.imgToAnns.get(image_id)
            if not anns:
                raise KeyError(f"{self._gt_json} has no annotation for image {image_id}")
            return coco.annToMask(anns[0]).astype(bool)
        gt = self._gt_reader(record)
        if gt is None:
            raise ValueError(f"sample {image_id} has no ground truth")
        gt = np.asarray(gt).astype(bool)
        return gt[0] if gt.ndim == 3 else gt

    def _load_gt_json(self):
        if self._gt_coco is None:
            from pycocotools.coco import COCO

            with contextlib.redirect_stdout(io.StringIO()):
                self._gt_coco = COCO(self._gt_json)
        return self._gt_coco

    @staticmethod
    def _annotated_position(record: dict, num_frames: int) -> int:
        if num_frames == 1:
            return 0
        keep = record.get("keep_frames")
        if keep is not None and len(keep) == 1:
            return int(keep[0])
        raise ValueError(
            f"{num_frames} output frames and no single 'keep_frames' index: which one is annotated?"
        )

    def process(self, inputs: List[dict], outputs: List[dict]) -> None:
        """
        Args:
            inputs: mapper dicts with the record's ``image_id`` (or ``video_id``,
                ``frame_idx``/``annotated_frame``, ``instance_id``/``exp_id``), GT source and, for SynthRVOS,
                its ``temporal`` flag; or groups of the samples of one (video, annotated frame)
                (``expressions``, with those keys per expression).
            outputs: model dicts with ``query_masks`` bool ``(T', N, H, W)`` and ``query_scores`` ``(T', N)``
                (every query, for mAP), or only ``pred_masks`` ``(T', H, W)`` and ``score`` (top-1 only: P@K
                and IoU are unchanged but mAP is then not the benchmark's); for a group a list of such dicts,
                one per expression (see :func:`~soc.evaluation.refvos_evaluator.expression_pairs`).
        """
        for inp, out in expression_pairs(inputs, outputs):
            image_id = self.image_id(inp)
            if "query_masks" in out:
                masks = as_numpy(out["query_masks"]).astype(bool)  # (T', N, H, W)
                t = self._annotated_position(inp, masks.shape[0])
                masks = masks[t]
                scores = as_numpy(out["query_scores"]).astype(np.float64)[t]  # (N,)
            else:
                pred = as_numpy(out["pred_masks"]).astype(bool)
                t = self._annotated_position(inp, pred.shape[0])
                masks = pred[t][None]
                scores = np.array([float(as_numpy(out.get("score", 1.0)))])
            gt = self._gt_mask(inp, image_id)
            if masks.shape[1:] != gt.shape:
                raise ValueError(f"{image_id}: predicted masks {masks.shape[1:]} vs GT {gt.shape}")
            top = int(np.argmax(scores))
            iou, inter, union = sample_iou(masks[top], gt)
            sample = {
                "image_id": image_id,
                "temporal": bool(inp.get("temporal", False)),
                "iou": iou,
                "I": inter,
                "U": union,
                "preds": [(encode_mask(m), float(s)) for m, s in zip(masks, scores)],
            }
            if self._gt_json is None:
                sample["gt"] = encode_mask(gt)
            self._samples.append(sample)

    # ----------------------------------------------------------------------------------------- evaluate
    def evaluate(self) -> Dict[str, Dict[str, float]]:
        """Gather the samples on rank 0 and compute the metrics; ``{}`` off rank 0."""
        parts = gather_on_main(self._samples, self._distributed)
        if parts is None:
            return {}
        samples, seen = [], set()
        for s in (s for part in parts for s in part):
            if s["image_id"] not in seen:  # a sample evaluated twice (e.g. a padded sampler) counts once
                seen.add(s["image_id"])
                samples.append(s)
        # one order, however the samples were grouped, batched or sharded: the same sums and the same file
        samples.sort(key=lambda s: s["image_id"])
        if not samples:
            logger.warning("no samples were evaluated")
            return {}
        results = a2d_summary(
            [s["iou"] for s in samples], [s["I"] for s in samples], [s["U"] for s in samples]
        )
        preds = [
            {"image_id": s["image_id"], "category_id": 1, "segmentation": rle, "score": score}
            for s in samples
            for rle, score in s["preds"]
        ]
        ap = coco_mask_ap(self._coco_gt(samples), preds)
        results = {
            **{k: ap[k] for k in ("mAP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100")},
            **results,
        }
        sub = [s for s in samples if s["temporal"]]
        if sub:
            t_res = a2d_summary([s["iou"] for s in sub], [s["I"] for s in sub], [s["U"] for s in sub])
            results.update({f"temporal/{k}": v for k, v in t_res.items()})
        logger.info(
            "%s (%s) over %d samples: mAP %.4f, oIoU %.4f, mIoU %.4f",
            self.results_key,
            self._dataset_name or "predictions",
            len(samples),
            results["mAP"],
            results["oIoU"],
            results["mIoU"],
        )
        if self._output_dir:
            os.makedirs(self._output_dir, exist_ok=True)
            with open(os.path.join(self._output_dir, f"{self.results_key}_samples.json"), "w") as f:
                json.dump({s["image_id"]: {"iou": s["iou"], "I": s["I"], "U": s["U"]} for s in samples}, f)
        return {self.results_key: results}

    def _coco_gt(self, samples: List[dict]) -> dict:
        """The COCO GT over the evaluated samples: from the json (restricted to them) or from their masks."""
        if self._gt_json is not None:
            full = self._load_gt_json().dataset
            ids = {s["image_id"] for s in samples}
            missing = len({im["id"] for im in full["images"]} - ids)
            if missing:
                logger.warning(
                    "%d images of %s were not evaluated; mAP covers the evaluated ones",
                    missing,
                    self._gt_json,
                )
            return {
                "images": [im for im in full["images"] if im["id"] in ids],
                "annotations": [a for a in full["annotations"] if a["image_id"] in ids],
                "categories": full.get("categories", [{"id": 1, "name": "dummy_class"}]),
            }
        images, annotations = [], []
        for i, s in enumerate(samples, 1):
            rle = s["gt"]
            h, w = rle["size"]
            images.append({"id": s["image_id"], "height": h, "width": w})
            annotations.append(
                {
                    "id": i,
                    "image_id": s["image_id"],
                    "category_id": 1,
                    "segmentation": rle,
                    "area": float(mask_util.area(rle)),
                    "bbox": [float(v) for v in mask_util.toBbox(rle)],
                    "iscrowd": 0,
                }
            )
        return {
            "images": images,
            "annotations": annotations,
            "categories": [{"id": 1, "name": "dummy_class"}],
        }


class JHMDBSentencesEvaluator(A2DSentencesEvaluator):
    """JHMDB-Sentences: the A2D metrics on ``v_<vid>_f_<frame>`` samples (one actor per video)."""

    results_key = "jhmdb_sentences"

    def image_id(self, record: dict) -> str:
        """The record's ``image_id``, else ``v_<vid>_f_<frame 1-based>``."""
        if "image_id" in record:
            return str(record["image_id"])
        return f"v_{record['video_id']}_f_{int(record.get('frame_idx', int(record['annotated_frame']) + 1))}"
