"""MeViS (v1, v2) and ReVOS evaluation (``docs/formats_and_metrics.md`` §9).

Per expression, over every listed frame of its video, with the ground truth the union of its objects' masks
(empty in every frame for a no-target expression): J and F per frame as DAVIS (§5.1, §5.2; both 1 when GT and
prediction are empty, F with ``bound_th`` 0.008), averaged over the frames. Then, as the official
``eval_mevis.py``: J and F are means over all expressions (no-target ones included), J&F = (J + F)/2.

MeViS v2 adds, with "predicted empty" meaning that every frame's mask is empty:

- N-acc: the share of no-target expressions predicted empty;
- T-acc: the share of target expressions not predicted empty;
- Final = (J&F + N-acc + T-acc)/3.

They are reported as ``N_acc`` and ``T_acc``: detectron2's ``print_csv_format`` drops keys that contain "-".

ReVOS (VISA's ``eval_revos.py``): expressions with ``type_id`` 2 are left out; each expression's J and F are
rounded to 2 decimals in percent before averaging; J&F of the referring (``type_id`` 0) and reasoning (1)
expressions are (J + F)/2 of their means, and overall is the mean of the two categories (not of the
expressions). All scores are returned as fractions in [0, 1].
"""

from __future__ import annotations

import json
import logging
import os
from typing import Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np
from detectron2.evaluation import DatasetEvaluator

from ..data.io import has_ground_truth, read_masks
from .metrics import db_eval_boundary, db_eval_iou
from .refvos_evaluator import as_numpy, check_pred_masks, expression_pairs, gather_on_main
from .ytvos_submission import write_expression_masks, zip_submission

__all__ = [
    "MevisScores",
    "score_mevis_expression",
    "mevis_summary",
    "revos_summary",
    "threshold_scores",
    "select_no_target_threshold",
    "MevisEvaluator",
    "ReVOSEvaluator",
]

logger = logging.getLogger(__name__)


class MevisScores(NamedTuple):
    """One expression: J, F of the prediction; whether GT and prediction are empty in every frame; the
    model's clip score; J, F that an all-empty prediction would get (for the no-target threshold); ReVOS
    ``type_id`` (None for MeViS)."""

    J: float
    F: float
    gt_empty: bool
    pred_empty: bool
    score: float = float("nan")
    empty_J: float = float("nan")
    empty_F: float = float("nan")
    type_id: Optional[int] = None


def score_mevis_expression(
    gt: np.ndarray, pred: np.ndarray, score: float = float("nan"), type_id: Optional[int] = None
) -> MevisScores:
    """Scores of one expression.

    Args:
        gt: bool ``(T, H, W)``, the union of the referred objects' masks (all-False: no target).
        pred: bool ``(T, H, W)``, the predicted masks.
        score: the model's clip-level score of the prediction.
    """
    gt, pred = np.asarray(gt, bool), np.asarray(pred, bool)
    if gt.shape != pred.shape or gt.ndim != 3:
        raise ValueError(f"GT masks {gt.shape} and predicted masks {pred.shape} must be the same (T, H, W)")
    empty = np.zeros_like(gt)
    j, f = np.atleast_1d(db_eval_iou(gt, pred)), np.atleast_1d(db_eval_boundary(gt, pred))
    ej, ef = np.atleast_1d(db_eval_iou(gt, empty)), np.atleast_1d(db_eval_boundary(gt, empty))
    return MevisScores(
        float(j.mean()),
        float(f.mean()),
        not gt.any(),
        not pred.any(),
        float(score),
        float(ej.mean()),
        float(ef.mean()),
        type_id,
    )


def mevis_summary(scores: Iterable[MevisScores]) -> Dict[str, float]:
    """``{"J&F", "J", "F"}`` over every expression, plus ``"T_acc"`` (T-acc) when some expression has a
    target, ``"N_acc"`` when some has none and ``"Final"`` when both exist (MeViS v2); NaN J&F without
    expressions."""
    scores = list(scores)
    if not scores:
        return {"J&F": float("nan"), "J": float("nan"), "F": float("nan")}
    j = float(np.mean([s.J for s in scores]))
    f = float(np.mean([s.F for s in scores]))
    out = {"J&F": (j + f) / 2, "J": j, "F": f}
    targets = [not s.pred_empty for s in scores if not s.gt_empty]
    no_targets = [s.pred_empty for s in scores if s.gt_empty]
    if targets:
        out["T_acc"] = float(np.mean(targets))
    if no_targets:
        out["N_acc"] = float(np.mean(no_targets))
    if targets and no_targets:
        out["Final"] = (out["J&F"] + out["N_acc"] + out["T_acc"]) / 3
    return out


REVOS_CATEGORIES = {0: "referring", 1: "reasoning"}  # type_id 2 is left out of every figure


def revos_summary(scores: Iterable[MevisScores]) -> Dict[str, float]:
    """ReVOS figures as VISA computes them: ``"<category>/{J,F,J&F}"`` for referring and reasoning and
    ``"J"``, ``"F"``, ``"J&F"`` overall (the mean of the two categories); per-expression values rounded to
    0.01 % first. A category without expressions gives NaN."""
    scores = list(scores)
    out: Dict[str, float] = {}
    for type_id, name in REVOS_CATEGORIES.items():
        members = [s for s in scores if s.type_id == type_id]
        j = float(np.mean([round(100 * s.J, 2) for s in members])) / 100 if members else float("nan")
        f = float(np.mean([round(100 * s.F, 2) for s in members])) / 100 if members else float("nan")
        out.update({f"{name}/J": j, f"{name}/F": f, f"{name}/J&F": (j + f) / 2})
    for key in ("J", "F", "J&F"):
        out[key] = float(np.mean([out[f"{name}/{key}"] for name in REVOS_CATEGORIES.values()]))
    return out


def threshold_scores(scores: Mapping[str, MevisScores], threshold: float) -> List[MevisScores]:
    """The expressions' scores had every prediction whose clip score is below ``threshold`` been emptied."""
    return [
        s._replace(J=s.empty_J, F=s.empty_F, pred_empty=True) if s.score < threshold else s
        for s in scores.values()
    ]


def select_no_target_threshold(
    scores: Mapping[str, MevisScores], candidates: Optional[Sequence[float]] = None
) -> Tuple[float, List[Tuple[float, Dict[str, float]]]]:
    """The clip-score threshold that maximises Final on held-out expressions (ties: the smallest).

    Args:
        scores: per expression, scored without a threshold (:class:`MevisEvaluator`'s ``scores``).
        candidates: thresholds to try; default 0 (off), the midpoint between each two consecutive distinct
            clip scores, and the midpoint between the largest and 1 (everything empty; left out when the
            largest is 1, as ``MODEL.SOC.TEST.NO_TARGET_THRESHOLD`` must be in [0, 1]). Midpoints, not the
            scores themselves: a threshold equal to a score puts that expression on the decision boundary,
            where printing the value rounded, or any tiny numerical change of the score, flips it.

    Returns:
        (best threshold, [(threshold, :func:`mevis_summary` with it)] for every candidate, in order).
    """
    if candidates is None:
        values = sorted({s.score for s in scores.values() if np.isfinite(s.score)})
        edges = values + [1.0] if values and values[-1] < 1.0 else values
        candidates = [0.0] + [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
    table = [(float(t), mevis_summary(threshold_scores(scores, t))) for t in candidates]
    if not table or "Final" not in table[0][1]:
        raise ValueError("selecting the no-target threshold needs target and no-target expressions")
    best = max(table, key=lambda row: (row[1]["Final"], -row[0]))
    return best[0], table


class MevisEvaluator(DatasetEvaluator):
    """MeViS scores and submission of whole-video predictions.

    ``process`` writes ``<output_dir>/Annotations/<video>/<exp_id>/<frame>.png`` (0/255, original size) and
    scores the expressions that have ground truth; ``evaluate`` zips the PNGs into
    ``<output_dir>/submission.zip`` with the video folders at the archive root (as MeViS's server expects) and
    returns ``{"mevis": mevis_summary(...)}`` (plus ``"temporal/J&F"`` over SynthRVOS's temporal subset), or
    ``{}`` without ground truth (the ``valid`` split). ``self.scores`` keeps the gathered per-expression
    :class:`MevisScores` for :func:`select_no_target_threshold`.
    """

    result_key = "mevis"

    def __init__(
        self,
        dataset_name: Optional[str] = None,
        output_dir: Optional[str] = None,
        *,
        write_submission: bool = True,
        distributed: bool = True,
    ):
        """
        Args:
            dataset_name: the registered dataset (named in the log).
            output_dir: folder of the submission and ``<result_key>_per_expression.json`` (None: nothing).
            write_submission: write the PNGs and the zip.
            distributed: gather the scores of all processes on rank 0.
        """
        self._dataset_name = dataset_name
        self._output_dir = output_dir
        self._write_submission = write_submission and output_dir is not None
        self._distributed = distributed
        self.reset()

    def reset(self) -> None:
        self._scores: Dict[str, MevisScores] = {}
        self._temporal: List[str] = []
        self._no_gt = 0
        self.scores: Dict[str, MevisScores] = {}

    def process(self, inputs: List[dict], outputs: List[dict]) -> None:
        """
        Args:
            inputs: mapper dicts of MeViS / ReVOS records (``video_id``, ``exp_id``, ``frame_names``,
                ``height``, ``width``, ``annotations``, ``type_id``), or groups of a video's expressions.
            outputs: model dicts with ``pred_masks`` bool ``(T, H, W)`` at the original size and ``score``
                (a list of them for a group).
        """
        for inp, out in expression_pairs(inputs, outputs):
            key = f"{inp['video_id']}/{inp['exp_id']}"
            pred = check_pred_masks(inp, as_numpy(out["pred_masks"]).astype(bool))
            if self._write_submission:
                write_expression_masks(
                    self._output_dir, inp["video_id"], inp["exp_id"], inp["frame_names"], pred
                )
            if not has_ground_truth(inp):
                self._no_gt += 1
                continue
            gt = read_masks(inp)
            if gt.shape != pred.shape:
                raise ValueError(f"{key}: GT masks {gt.shape} and predicted masks {pred.shape} differ")
            self._scores[key] = score_mevis_expression(
                gt, pred, out.get("score", float("nan")), inp.get("type_id")
            )
            if inp.get("temporal"):
                self._temporal.append(key)

    def summarize(self, scores: Mapping[str, MevisScores]) -> Dict[str, float]:
        """The benchmark's figures of gathered per-expression scores."""
        return mevis_summary(scores.values())

    def evaluate(self) -> Dict[str, Dict[str, float]]:
        """Gather on rank 0, zip the submission and aggregate; ``{}`` off rank 0 and without ground truth."""
        gathered = gather_on_main((self._scores, self._temporal, self._no_gt), self._distributed)
        if gathered is None:
            return {}
        self.scores = {k: v for part in gathered for k, v in part[0].items()}
        temporal = {k for part in gathered for k in part[1]}
        if self._write_submission:
            path = zip_submission(self._output_dir, top_folder=False)
            logger.info("%s submission written to %s", self.result_key, path)
        if not self.scores:
            logger.info("no ground truth: no %s scores", self.result_key)
            return {}
        self.scores = dict(sorted(self.scores.items()))
        results = self.summarize(self.scores)
        subset = {k: v for k, v in self.scores.items() if k in temporal}
        if subset:
            results.update({f"temporal/{m}": v for m, v in self.summarize(subset).items() if "/" not in m})
        logger.info(
            "%s: %s over %d expressions: J&F %.4f",
            self._dataset_name or "predictions",
            self.result_key,
            len(self.scores),
            results["J&F"],
        )
        if self._output_dir:
            os.makedirs(self._output_dir, exist_ok=True)
            path = os.path.join(self._output_dir, f"{self.result_key}_per_expression.json")
            with open(path, "w") as f:
                json.dump({k: s._asdict() for k, s in self.scores.items()}, f, indent=1)
        return {self.result_key: results}


class ReVOSEvaluator(MevisEvaluator):
    """:class:`MevisEvaluator` with ReVOS's figures (:func:`revos_summary`): ``{"revos": {...}}``."""

    result_key = "revos"

    def summarize(self, scores: Mapping[str, MevisScores]) -> Dict[str, float]:
        return revos_summary(list(scores.values()))
