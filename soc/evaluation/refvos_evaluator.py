"""Ref-YouTube-VOS style evaluation: per-expression J and F, expression-weighted means, and the submission.

Protocol (``docs/formats_and_metrics.md`` §1.5, §5.4): for each (video, exp_id), J and F are computed on every
frame that has ground truth and averaged over those frames; J and F are then averaged over expressions (each
expression counts once, however many frames it has) and J&F = (J + F)/2. All scores are **fractions in
[0, 1]** (the server and papers print percent). No frame is skipped, no void, no id matching.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Set, Tuple

import numpy as np
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm

from ..data.build import ungroup
from .metrics import db_eval_boundary, db_eval_iou, jf_aggregate
from .ytvos_submission import write_expression_masks, zip_submission

__all__ = [
    "RefVOSEvaluator",
    "RefVOSState",
    "read_referred_masks",
    "as_numpy",
    "expression_pairs",
    "gather_on_main",
    "check_pred_masks",
]

logger = logging.getLogger(__name__)

GTReader = Callable[[dict], Optional[np.ndarray]]


@dataclass
class RefVOSState:
    """What one process of :class:`RefVOSEvaluator` accumulates and sends to rank 0 (small)."""

    # "<video>/<exp_id>" -> frame name -> (J, F) of that frame
    frames: Dict[str, Dict[str, Tuple[float, float]]] = field(default_factory=dict)
    # expressions predicted without ground truth (submission only)
    no_gt: Set[str] = field(default_factory=set)
    # expressions whose inputs carry ``temporal=True`` (the SynthRVOS temporal subset)
    temporal: Set[str] = field(default_factory=set)

    def update(self, other: "RefVOSState") -> None:
        """Add ``other``'s expressions; a clip split over two processes contributes its frames from both."""
        for key, per_frame in other.frames.items():
            self.frames.setdefault(key, {}).update(per_frame)
        self.no_gt |= other.no_gt
        self.temporal |= other.temporal


def as_numpy(x) -> np.ndarray:
    """A torch tensor (any device) or array-like as a numpy array."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def gather_on_main(part: Any, distributed: bool) -> Optional[List[Any]]:
    """Every process's ``part`` on the main process, in rank order; None on the others. Without
    ``distributed``, ``[part]``."""
    if not distributed:
        return [part]
    comm.synchronize()
    parts = comm.gather(part, dst=0)
    return parts if comm.is_main_process() else None


def check_pred_masks(inp: dict, masks: np.ndarray) -> np.ndarray:
    """``masks`` (T, H, W) after checking T against the input's frame names and (H, W) against its
    ``height``/``width`` when given; ``ValueError`` naming the expression otherwise."""
    key = f"{inp['video_id']}/{inp['exp_id']}"
    if masks.ndim != 3 or masks.shape[0] != len(inp["frame_names"]):
        raise ValueError(f"{key}: pred_masks of shape {masks.shape} for {len(inp['frame_names'])} frames")
    size = (inp.get("height"), inp.get("width"))
    if None not in size and tuple(masks.shape[1:]) != tuple(int(s) for s in size):
        raise ValueError(f"{key}: pred_masks are {masks.shape[1:]}, the original frame size is {size}")
    return masks


def expression_pairs(inputs: List[dict], outputs: List[Any]) -> Iterator[Tuple[dict, dict]]:
    """(input, output) of every expression of a batch.

    Args:
        inputs: mapper dicts: ungrouped (one ``expression``) or groups (``expressions``, E str; see
            :func:`soc.data.build.group_expressions`).
        outputs: the model's outputs: a dict for an ungrouped input, a list of E dicts for a group.

    Yields:
        an ungrouped input with its dict; for a group, each expression's input as
        :func:`soc.data.build.ungroup` gives it (shaped like an ungrouped input) with its dict, in order.
    """
    for inp, out in zip(inputs, outputs):
        if "expressions" not in inp:
            yield inp, out
            continue
        singles = ungroup(inp)
        if not isinstance(out, (list, tuple)) or len(out) != len(singles):
            got = f"a list of {len(out)}" if isinstance(out, (list, tuple)) else type(out).__name__
            raise ValueError(
                f"video {inp.get('video_id')}: a group of {len(singles)} expressions needs a list of as many "
                f"outputs, got {got}"
            )
        yield from zip(singles, out)


def read_referred_masks(record: dict) -> Optional[np.ndarray]:
    """Default GT reader: the referred object's masks for the frames of ``record["frame_names"]``.

    Args:
        record: a dataset record or mapper output with ``obj_ids``, ``annotations`` and ``frame_names``.

    Returns:
        bool ``(T, H, W)`` aligned with ``frame_names``, or None when the record has no ground truth (the
        Ref-YouTube-VOS valid split). PNG sources are matched to the frames by file stem, so a clip of a video
        reads only its own frames.
    """
    ann = record.get("annotations")
    if not ann or not record.get("obj_ids"):
        return None
    from soc.data.io import read_masks

    frames = None
    if ann.get("type") == "png" and "frame_names" in record:
        stems = {os.path.splitext(os.path.basename(p))[0]: i for i, p in enumerate(ann["files"])}
        missing = [n for n in record["frame_names"] if n not in stems]
        if missing:
            raise FileNotFoundError(
                f"{record.get('video_id')}/{record.get('exp_id')}: no annotation PNG for "
                f"frames {missing[:5]} among {os.path.dirname(ann['files'][0])}"
            )
        frames = [stems[n] for n in record["frame_names"]]
    return read_masks(record, frames)


class RefVOSEvaluator(DatasetEvaluator):
    """Per-expression J&F for Ref-YouTube-VOS-format datasets, and the Ref-YouTube-VOS submission.

    ``process`` reduces every (video, expression) to per-frame (J, F) pairs and, when an output folder is
    given, writes the submission PNGs ``<output_dir>/Annotations/<video>/<exp_id>/<frame>.png``; ``evaluate``
    gathers the pairs on rank 0, zips the submission (``<output_dir>/submission.zip``) and scores the
    expressions that have ground truth. Without any ground truth (the real valid split) it returns ``{}``.

    Results on rank 0: ``{"refvos": {"J&F", "J", "F"}}`` plus ``"temporal/J&F"``, ``"temporal/J"``,
    ``"temporal/F"`` over the expressions whose inputs carry ``temporal=True`` (the SynthRVOS temporal
    subset, flagged by the loaders), when there are any; fractions in [0, 1].
    """

    def __init__(
        self,
        dataset_name: Optional[str] = None,
        output_dir: Optional[str] = None,
        *,
        gt_reader: Optional[GTReader] = None,
        write_submission: bool = True,
        distributed: bool = True,
    ):
        """
        Args:
            dataset_name: the registered dataset (named in the log).
            output_dir: folder for the submission and ``refvos_per_expression.json`` (None: write nothing).
            gt_reader: ``record -> bool (T, H, W) | None``, the GT masks of the referred object for the
                record's frames; default :func:`read_referred_masks`.
            write_submission: write the ``Annotations/`` PNG tree and zip it.
            distributed: gather the records of all processes on rank 0.
        """
        self._dataset_name = dataset_name
        self._output_dir = output_dir
        self._gt_reader = gt_reader or read_referred_masks
        self._write_submission = write_submission and output_dir is not None
        self._distributed = distributed
        self.reset()

    def reset(self) -> None:
        self._scores = RefVOSState()

    # ------------------------------------------------------------------------------------------ process
    def process(self, inputs: List[dict], outputs: List[dict]) -> None:
        """
        Args:
            inputs: mapper dicts with ``video_id``, ``exp_id``, ``frame_names``, ``height``, ``width``, the
                record's GT source (``obj_ids``, ``annotations``) and, for SynthRVOS, its ``temporal`` flag;
                or groups of a video's expressions (``expressions``, with those keys per expression).
            outputs: model dicts with ``pred_masks`` bool ``(T, H, W)`` at the original size; for a group a
                list of such dicts, one per expression (see :func:`expression_pairs`).
        """
        for inp, out in expression_pairs(inputs, outputs):
            key = f"{inp['video_id']}/{inp['exp_id']}"
            masks = check_pred_masks(inp, as_numpy(out["pred_masks"]).astype(bool))
            if inp.get("temporal"):
                self._scores.temporal.add(key)
            if self._write_submission:
                write_expression_masks(
                    self._output_dir, inp["video_id"], inp["exp_id"], inp["frame_names"], masks
                )
            gt = self._gt_reader(inp)
            if gt is None:
                self._scores.no_gt.add(key)
                continue
            gt = np.asarray(gt).astype(bool)
            if gt.shape != masks.shape:
                raise ValueError(f"{key}: GT masks {gt.shape} and predicted masks {masks.shape} differ")
            j = np.atleast_1d(db_eval_iou(gt, masks))
            f = np.atleast_1d(db_eval_boundary(gt, masks))
            per_frame = self._scores.frames.setdefault(key, {})
            for name, jj, ff in zip(inp["frame_names"], j, f):
                per_frame[str(name)] = (float(jj), float(ff))

    # ----------------------------------------------------------------------------------------- evaluate
    def _state(self) -> RefVOSState:
        """What this process contributes to the gather."""
        return self._scores

    def evaluate(self) -> Dict[str, Dict[str, float]]:
        """Zip the submission and score; returns ``{}`` off rank 0 and when no expression has ground truth."""
        gathered = gather_on_main(self._state(), self._distributed)
        if gathered is None:
            return {}
        results = self._summarize(gathered)
        return {"refvos": results} if results else {}

    def _summarize(self, gathered: List[RefVOSState]) -> Dict[str, float]:
        total = RefVOSState()
        for part in gathered:
            total.update(part)
        frames, no_gt = total.frames, total.no_gt
        if self._write_submission:
            path = zip_submission(self._output_dir)
            logger.info(
                "Ref-YouTube-VOS submission (%d expressions) written to %s", len(frames) + len(no_gt), path
            )
        if no_gt and frames:
            logger.warning("%d expressions have no ground truth and are not scored", len(no_gt))
        if not frames:
            logger.info("no ground truth: no per-expression J&F")
            return {}
        # sorted: the means do not depend on the order in which the expressions were processed or gathered
        per_expression = {k: tuple(np.mean(list(v.values()), axis=0)) for k, v in sorted(frames.items())}
        results = jf_aggregate(per_expression)
        subset = {k: v for k, v in per_expression.items() if k in total.temporal}
        if subset:
            results.update({f"temporal/{m}": v for m, v in jf_aggregate(subset).items()})
        logger.info(
            "%s: per-expression J&F over %d expressions: %.4f (J %.4f, F %.4f)",
            self._dataset_name or "predictions",
            len(per_expression),
            results["J&F"],
            results["J"],
            results["F"],
        )
        if self._output_dir:
            os.makedirs(self._output_dir, exist_ok=True)
            with open(os.path.join(self._output_dir, "refvos_per_expression.json"), "w") as f:
                json.dump({k: {"J": v[0], "F": v[1]} for k, v in sorted(per_expression.items())}, f, indent=1)
        return results
