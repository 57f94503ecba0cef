"""Long-RVOS evaluation (``docs/formats_and_metrics.md`` §8): per-expression J, F, tIoU, vIoU and identity
switches, averaged over expressions overall and per expression type.

Pure functions first (tested on hand-made arrays), then :class:`LongRVOSEvaluator` (model outputs) and
:func:`evaluate_long_rvos_folder` (prediction PNGs on disk, a missing PNG being an empty mask). Per
expression, over every listed frame of its video:

- J and F per frame as DAVIS (§5.1, §5.2; 1 when both masks are empty), averaged over the frames;
- tIoU = |frames where GT and prediction are both non-empty| / |frames where either is|;
- vIoU = (sum of J over the frames where both are non-empty) / |frames where either is|;
  tIoU = vIoU = 1 when GT and prediction are empty everywhere;
- switches: on the frames where the prediction is non-empty, its identity is the GT object of the video with
  the highest IoU with it (ties: the smaller id), or none when it overlaps no object; the count of
  consecutive identities (frames of no identity skipped) that differ.

J, F, tIoU and vIoU are means over expressions (each counts once), J&F = (J + F)/2; ``switches`` is the total
over expressions. All but ``switches`` are fractions in [0, 1].
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Set, Tuple

import numpy as np
from detectron2.evaluation import DatasetEvaluator

from ..data.datasets.long_rvos import EXPRESSION_TYPES, read_long_rvos_masks
from ..data.io import DataError, read_single_channel_png
from .metrics import db_eval_boundary, db_eval_iou
from .refvos_evaluator import as_numpy, check_pred_masks, expression_pairs, gather_on_main

__all__ = [
    "LongRVOSScores",
    "temporal_ious",
    "best_matching_objects",
    "identity_switches",
    "score_expression",
    "long_rvos_aggregate",
    "long_rvos_summary",
    "LongRVOSEvaluator",
    "evaluate_long_rvos_folder",
]

logger = logging.getLogger(__name__)


class LongRVOSScores(NamedTuple):
    """The scores of one expression (J, F, tIoU, vIoU fractions; ``switches`` a count)."""

    J: float
    F: float
    tIoU: float
    vIoU: float
    switches: int


# ------------------------------------------------------------------------------------------- metrics
def temporal_ious(gt_present: np.ndarray, pred_present: np.ndarray, j: np.ndarray) -> Tuple[float, float]:
    """tIoU and vIoU of one expression.

    Args:
        gt_present, pred_present: bool ``(T,)``, frames whose GT / predicted mask is non-empty.
        j: ``(T,)`` per-frame J.

    Returns:
        (tIoU, vIoU); (1, 1) when neither mask is non-empty in any frame.
    """
    gt_present, pred_present = np.asarray(gt_present, bool), np.asarray(pred_present, bool)
    both = gt_present & pred_present
    either = int((gt_present | pred_present).sum())
    if either == 0:
        return 1.0, 1.0
    return float(both.sum()) / either, float(np.asarray(j, np.float64)[both].sum()) / either


def best_matching_objects(
    ious: np.ndarray, obj_ids: Sequence[int], pred_present: np.ndarray
) -> List[Optional[int]]:
    """The identity of a prediction in each frame.

    Args:
        ious: ``(K, T)`` IoU of the predicted mask with each of the video's K >= 1 GT objects per frame.
        obj_ids: the K object ids, in the order of ``ious``'s rows (ties go to the first).
        pred_present: bool ``(T,)``, frames whose predicted mask is non-empty.

    Returns:
        per frame the id of the object with the highest IoU, or None when the prediction is empty or overlaps
        no object (all IoUs 0).
    """
    ious = np.asarray(ious, np.float64)
    best = ious.argmax(axis=0)  # (T,), the first row among equal ones
    present = np.asarray(pred_present, bool)
    return [obj_ids[k] if present[t] and ious[k, t] > 0 else None for t, k in enumerate(best)]


def identity_switches(identities: Sequence[Optional[int]]) -> int:
    """How many times consecutive identities differ, frames without identity (None) skipped:
    ``[1, None, 1, 2, 2, None, 1]`` has 2 switches (1 → 2, 2 → 1)."""
    known = [i for i in identities if i is not None]
    return sum(a != b for a, b in zip(known, known[1:]))


def score_expression(
    gt: np.ndarray,
    pred: np.ndarray,
    obj_id: int,
    others: Iterable[Tuple[int, np.ndarray]] = (),
) -> LongRVOSScores:
    """All scores of one expression over its video.

    Args:
        gt: bool ``(T, H, W)``, the referred object's masks (empty where it is absent).
        pred: bool ``(T, H, W)``, the predicted masks (empty where nothing is predicted).
        obj_id: the referred object's id (its identity in ``switches``).
        others: ``(id, masks (T, H, W))`` of the video's other objects, read one at a time.
    """
    gt, pred = np.asarray(gt, bool), np.asarray(pred, bool)
    if gt.shape != pred.shape or gt.ndim != 3:
        raise ValueError(f"GT masks {gt.shape} and predicted masks {pred.shape} must be the same (T, H, W)")
    j = np.atleast_1d(db_eval_iou(gt, pred))
    f = np.atleast_1d(db_eval_boundary(gt, pred))
    pred_present = pred.any(axis=(1, 2))
    tiou, viou = temporal_ious(gt.any(axis=(1, 2)), pred_present, j)
    ids, rows = [obj_id], [np.where(pred_present, j, 0.0)]  # where the prediction is non-empty, J is its IoU
    for oid, masks in others:
        ids.append(int(oid))
        rows.append(np.where(pred_present, np.atleast_1d(db_eval_iou(np.asarray(masks, bool), pred)), 0.0))
    order = np.argsort(ids, kind="stable")  # ties to the smaller id
    identities = best_matching_objects(np.stack(rows)[order], [ids[k] for k in order], pred_present)
    return LongRVOSScores(float(j.mean()), float(f.mean()), tiou, viou, identity_switches(identities))


def long_rvos_aggregate(scores: Iterable[LongRVOSScores]) -> Dict[str, float]:
    """``{"J&F", "J", "F", "tIoU", "vIoU", "switches"}``: means over expressions, J&F = (J + F)/2, and the
    total number of switches (NaN means and 0 switches when there is no expression)."""
    arr = np.array([tuple(s) for s in scores], dtype=np.float64).reshape(-1, len(LongRVOSScores._fields))
    if not len(arr):
        nan = float("nan")
        return {"J&F": nan, "J": nan, "F": nan, "tIoU": nan, "vIoU": nan, "switches": 0.0}
    j, f, tiou, viou = (float(x) for x in arr[:, :4].mean(axis=0))
    return {
        "J&F": (j + f) / 2,
        "J": j,
        "F": f,
        "tIoU": tiou,
        "vIoU": viou,
        "switches": float(arr[:, 4].sum()),
    }


# ----------------------------------------------------------------------------------------- evaluator
@dataclass
class LongRVOSState:
    """What one process of :class:`LongRVOSEvaluator` accumulates and sends to rank 0."""

    scores: Dict[str, LongRVOSScores] = field(default_factory=dict)  # "<video>/<exp_id>" -> scores
    subsets: Dict[str, List[str]] = field(default_factory=dict)  # key -> its type and/or "temporal"
    no_gt: Set[str] = field(default_factory=set)

    def update(self, other: "LongRVOSState") -> None:
        self.scores.update(other.scores)
        self.subsets.update(other.subsets)
        self.no_gt |= other.no_gt


class LongRVOSEvaluator(DatasetEvaluator):
    """Long-RVOS scores of whole-video predictions (one input = one expression over every listed frame, as
    :class:`~soc.data.mappers.RefVOSMapper` maps records for inference).

    Results on rank 0: ``{"long_rvos": {"J&F", "J", "F", "tIoU", "vIoU", "switches"}}`` plus the same six
    prefixed ``static/``, ``dynamic/``, ``hybrid/`` for the expression types present and ``temporal/`` for
    the inputs carrying ``temporal=True`` (SynthRVOS); ``{}`` without ground truth.
    """

    def __init__(
        self,
        dataset_name: Optional[str] = None,
        output_dir: Optional[str] = None,
        *,
        distributed: bool = True,
    ):
        """
        Args:
            dataset_name: the registered dataset (named in the log).
            output_dir: folder for ``long_rvos_per_expression.json`` (None: write nothing).
            distributed: gather the scores of all processes on rank 0.
        """
        self._dataset_name = dataset_name
        self._output_dir = output_dir
        self._distributed = distributed
        self.reset()

    def reset(self) -> None:
        self._state = LongRVOSState()

    def process(self, inputs: List[dict], outputs: List[dict]) -> None:
        """
        Args:
            inputs: mapper dicts of Long-RVOS records (``video_id``, ``exp_id``, ``frame_names``,
                ``obj_ids``, ``annotations``, ``expression_type``, optionally ``height``, ``width`` and
                ``temporal``), or groups of a video's expressions (``soc.data.build.group_expressions``).
            outputs: model dicts with ``pred_masks`` bool ``(T, H, W)`` at the original size, T = number of
                frame names (a list of them for a group).
        """
        for inp, out in expression_pairs(inputs, outputs):
            key = f"{inp['video_id']}/{inp['exp_id']}"
            pred = check_pred_masks(inp, as_numpy(out["pred_masks"]).astype(bool))
            if not inp.get("annotations") or not inp.get("obj_ids"):
                self._state.no_gt.add(key)
                continue
            self._state.scores[key] = _score_input(inp, read_long_rvos_masks(inp), pred)
            self._state.subsets[key] = _subsets(inp)

    def evaluate(self) -> Dict[str, Dict[str, float]]:
        """Gather on rank 0 and aggregate; ``{}`` off rank 0 and when no expression has ground truth."""
        gathered = gather_on_main(self._state, self._distributed)
        if gathered is None:
            return {}
        total = LongRVOSState()
        for part in gathered:
            total.update(part)
        if total.no_gt:
            logger.warning("%d expressions have no ground truth and are not scored", len(total.no_gt))
        if not total.scores:
            return {}
        results = long_rvos_summary(total.scores, total.subsets)
        logger.info(
            "%s: Long-RVOS over %d expressions: J&F %.4f, tIoU %.4f, vIoU %.4f, %d identity switches",
            self._dataset_name or "predictions",
            len(total.scores),
            results["J&F"],
            results["tIoU"],
            results["vIoU"],
            results["switches"],
        )
        if self._output_dir:
            os.makedirs(self._output_dir, exist_ok=True)
            with open(os.path.join(self._output_dir, "long_rvos_per_expression.json"), "w") as f:
                json.dump({k: s._asdict() for k, s in sorted(total.scores.items())}, f, indent=1)
        return {"long_rvos": results}


def long_rvos_summary(scores: Dict[str, LongRVOSScores], subsets: Dict[str, List[str]]) -> Dict[str, float]:
    """Overall scores (:func:`long_rvos_aggregate`), then per subset (the expression types in the order of
    ``EXPRESSION_TYPES``, then ``temporal``) those of its expressions, prefixed ``"<subset>/"``."""
    results = long_rvos_aggregate(scores.values())
    for name in EXPRESSION_TYPES + ("temporal",):
        members = [s for k, s in scores.items() if name in subsets.get(k, ())]
        if members:
            results.update({f"{name}/{m}": v for m, v in long_rvos_aggregate(members).items()})
    return results


def _subsets(inp: dict) -> List[str]:
    names = [inp["expression_type"]] if inp.get("expression_type") else []
    return names + (["temporal"] if inp.get("temporal") else [])


def _score_input(inp: dict, gt: np.ndarray, pred: np.ndarray) -> LongRVOSScores:
    """Scores of one input with GT ``gt`` (its referred object); the video's other objects are read one at a
    time."""
    key = f"{inp['video_id']}/{inp['exp_id']}"
    if gt.shape != pred.shape:
        raise ValueError(f"{key}: GT masks {gt.shape} and predicted masks {pred.shape} differ")
    referred = [int(o) for o in inp["obj_ids"]]
    others = (
        (o, read_long_rvos_masks(inp, o)) for o in inp["annotations"]["objects"] if int(o) not in referred
    )
    return score_expression(gt, pred, referred[0], others)


# ------------------------------------------------------------------------------------ PNG predictions
def evaluate_long_rvos_folder(pred_dir: str, records: Sequence[dict]) -> Dict[str, Dict[str, float]]:
    """Score prediction PNGs ``<pred_dir>/<video>/<exp_id>/<frame>.png`` (single-channel, non-zero =
    foreground, at the frame size) against the Long-RVOS records that have ground truth.

    A missing PNG is an empty prediction; as in the official scripts, an expression whose video has no
    folder at all scores 0 on J, F, tIoU and vIoU. Returns ``{"long_rvos": ...}`` as
    :meth:`LongRVOSEvaluator.evaluate` does (``{}`` when no record has ground truth).
    """
    scores: Dict[str, LongRVOSScores] = {}
    subsets: Dict[str, List[str]] = {}
    for rec in records:
        if not rec.get("annotations") or not rec.get("obj_ids"):
            continue
        key = f"{rec['video_id']}/{rec['exp_id']}"
        subsets[key] = _subsets(rec)
        if not os.path.isdir(os.path.join(pred_dir, rec["video_id"])):
            logger.warning("%s: no prediction folder for video %s", pred_dir, rec["video_id"])
            scores[key] = LongRVOSScores(0.0, 0.0, 0.0, 0.0, 0)
            continue
        gt = read_long_rvos_masks(rec)
        pred = np.zeros_like(gt)
        for t, name in enumerate(rec["frame_names"]):
            path = os.path.join(pred_dir, rec["video_id"], rec["exp_id"], name + ".png")
            if os.path.isfile(path):
                mask = read_single_channel_png(path)
                if mask.shape != gt.shape[1:]:
                    raise DataError(f"{path} is {mask.shape}, the frame size is {gt.shape[1:]}")
                pred[t] = mask
        scores[key] = _score_input(rec, gt, pred)
    return {"long_rvos": long_rvos_summary(scores, subsets)} if scores else {}
