"""Per-expression J&F of predicted PNG folders against ground-truth PNG folders (the engine of
``tools/eval_jf.py``).

Predictions: ``<pred>/<video>/<exp_id>/<frame>.png``, single-channel PNGs (0 / non-zero, or palette) at the
GT's size, non-zero = foreground (a Ref-YouTube-VOS submission's 0/255 PNGs); any other file in a prediction
folder is an error. Ground truth, either the same binary layout ``<gt>/<video>/<exp_id>/<frame>.png``,
or palette PNGs ``<gt>/<video>/<frame>.png`` (value = object id) plus a ``meta_expressions.json`` that gives
each expression's ``obj_id``. Every GT frame is scored; the aggregation is the per-expression one of
``docs/formats_and_metrics.md`` §5.4 (J, F as fractions). Predicted sequences that the GT lacks are not
scored; they are listed in the result and in a warning. Inputs are read with :mod:`soc.data.io`, so a
missing or inconsistent file raises :class:`~soc.data.io.DataError` (or ``FileNotFoundError``) naming it.
"""

from __future__ import annotations

import logging
import os
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from ..data.datasets.common import check_name, read_json
from ..data.io import DataError, read_binary_png, read_palette_png, read_single_channel_png
from .metrics import db_eval_boundary, db_eval_iou, jf_aggregate

__all__ = [
    "GTFrame",
    "gt_sequences",
    "evaluate_folders",
    "format_table",
    "describe_unscored",
    "MISSING_POLICIES",
]

logger = logging.getLogger(__name__)

MISSING_POLICIES = ("error", "empty")  # a missing prediction PNG: an error, or scored as an empty mask
PREDICTION_FORMAT = "predictions must be single-channel PNGs (0 / non-zero, or palette) at the GT's size"


class GTFrame(NamedTuple):
    """One ground-truth frame of an expression."""

    name: str  # frame name (PNG stem), also the prediction's file name
    path: str  # the GT PNG
    obj_id: Optional[int]  # object id in a palette PNG; None for a binary PNG


def _pngs(folder: str) -> List[str]:
    return sorted(os.path.splitext(n)[0] for n in os.listdir(folder) if n.endswith(".png"))


def _dirs(folder: str) -> List[str]:
    return sorted(n for n in os.listdir(folder) if os.path.isdir(os.path.join(folder, n)))


def gt_sequences(gt_root: str, meta_file: Optional[str] = None) -> Dict[str, List[GTFrame]]:
    """The GT frames of every expression: ``{"<video>/<exp_id>": [GTFrame, ...]}``.

    Args:
        gt_root: binary layout ``<gt_root>/<video>/<exp_id>/<frame>.png``, or with ``meta_file`` the palette
            layout ``<gt_root>/<video>/<frame>.png``.
        meta_file: a ``meta_expressions.json`` with an ``obj_id`` per expression (selects the palette layout).
    """
    if not os.path.isdir(gt_root):
        raise DataError(f"GT folder not found: {gt_root}")
    seqs: Dict[str, List[GTFrame]] = {}
    if meta_file is None:
        for video in _dirs(gt_root):
            for exp_id in _dirs(os.path.join(gt_root, video)):
                folder = os.path.join(gt_root, video, exp_id)
                seqs[f"{video}/{exp_id}"] = [
                    GTFrame(f, os.path.join(folder, f + ".png"), None) for f in _pngs(folder)
                ]
        return seqs
    if not os.path.isfile(meta_file):
        raise DataError(f"meta-expressions file not found: {meta_file}")
    for video, vmeta in sorted(read_json(meta_file)["videos"].items()):
        folder = os.path.join(gt_root, check_name(video, meta_file, "video id"))
        if not os.path.isdir(folder):
            raise DataError(f"GT folder of video {video} not found: {folder}")
        frames = _pngs(folder)
        for exp_id, exp in vmeta["expressions"].items():
            check_name(exp_id, meta_file, f"video {video}: expression id")
            if "obj_id" not in exp:
                raise DataError(f"{meta_file}: video {video}, expression {exp_id} has no obj_id")
            oid = int(exp["obj_id"])
            seqs[f"{video}/{exp_id}"] = [GTFrame(fr, os.path.join(folder, fr + ".png"), oid) for fr in frames]
    return seqs


def _prediction_sequences(pred_root: str) -> List[str]:
    """The ``"<video>/<exp_id>"`` folders under ``pred_root``; a file in them that is not named ``*.png``
    raises :class:`DataError`."""
    keys = []
    for video in _dirs(pred_root):
        for exp_id in _dirs(os.path.join(pred_root, video)):
            folder = os.path.join(pred_root, video, exp_id)
            for name in sorted(os.listdir(folder)):
                if not name.endswith(".png"):
                    raise DataError(f"{os.path.join(folder, name)} is not a PNG: {PREDICTION_FORMAT}")
            keys.append(f"{video}/{exp_id}")
    return keys


def _read_prediction(path: str, shape: Tuple[int, ...]) -> np.ndarray:
    """A predicted mask as bool ``(H, W)``; :class:`DataError` with the expected format otherwise."""
    try:
        pred = read_single_channel_png(path)
    except DataError as e:
        raise DataError(f"{e}; {PREDICTION_FORMAT}") from e
    if pred.shape != shape:
        raise DataError(f"{path}: size {pred.shape} differs from the GT's {shape}; {PREDICTION_FORMAT}")
    return pred


def describe_unscored(keys: Sequence[str], shown: int = 5) -> str:
    """One line naming how many predicted sequences have no GT, and the first ``shown`` of them."""
    more = ", ..." if len(keys) > shown else ""
    return (
        f"{len(keys)} predicted sequence(s) have no ground truth and are not scored: "
        f"{', '.join(keys[:shown])}{more}"
    )


def evaluate_folders(
    pred_root: str,
    gt_root: str,
    meta_file: Optional[str] = None,
    missing: str = "error",
    bound_th: float = 0.008,
) -> dict:
    """Score the predictions under ``pred_root`` against the ground truth under ``gt_root``.

    Args:
        pred_root: ``<pred_root>/<video>/<exp_id>/<frame>.png``.
        gt_root, meta_file: see :func:`gt_sequences`.
        missing: one of :data:`MISSING_POLICIES`; with ``"empty"`` a missing prediction is an empty mask.
        bound_th: boundary tolerance of F, a fraction of the diagonal (< 1) or pixels (>= 1).

    Returns:
        ``{"J", "F", "J&F", "sequences": {"<video>/<exp_id>": {"J", "F"}}, "unscored_predictions":
        ["<video>/<exp_id>", ...]}`` (fractions; the last, sorted: predicted sequences the GT lacks).
    """
    if missing not in MISSING_POLICIES:
        raise ValueError(f"missing must be one of {MISSING_POLICIES}, not {missing!r}")
    if not os.path.isdir(pred_root):
        raise DataError(f"prediction folder not found: {pred_root}")
    gt_seqs = gt_sequences(gt_root, meta_file)
    unscored = sorted(set(_prediction_sequences(pred_root)) - set(gt_seqs))
    if unscored:
        logger.warning("%s under %s", describe_unscored(unscored), pred_root)
    per_expression = {}
    for key, frames in gt_seqs.items():
        if not frames:
            continue
        js, fs = [], []
        for frame in frames:
            if frame.obj_id is None:
                gt = read_binary_png(frame.path)
            else:
                gt = read_palette_png(frame.path) == frame.obj_id
            path = os.path.join(pred_root, *key.split("/"), frame.name + ".png")
            if os.path.isfile(path):
                pred = _read_prediction(path, gt.shape)
            elif missing == "empty":
                pred = np.zeros_like(gt)
            else:
                raise DataError(f"missing prediction: {path} (use --missing empty to score it as empty)")
            js.append(db_eval_iou(gt, pred))
            fs.append(db_eval_boundary(gt, pred, bound_th=bound_th))
        per_expression[key] = (float(np.mean(js)), float(np.mean(fs)))
    if not per_expression:
        raise DataError(f"no GT masks found under {gt_root}")
    scores = jf_aggregate(per_expression)
    scores["sequences"] = {k: {"J": j, "F": f} for k, (j, f) in per_expression.items()}
    scores["unscored_predictions"] = unscored
    return scores


def format_table(scores: dict) -> str:
    """Per-expression rows and the mean of :func:`evaluate_folders`' result, in percent, then the line of
    :func:`describe_unscored` when predicted sequences were not scored."""
    width = max([len("sequence")] + [len(k) for k in scores["sequences"]])
    lines = [f"{'sequence':<{width}}  {'J&F':>6}  {'J':>6}  {'F':>6}"]
    for key, v in scores["sequences"].items():
        lines.append(
            f"{key:<{width}}  {50 * (v['J'] + v['F']):6.2f}  {100 * v['J']:6.2f}  {100 * v['F']:6.2f}"
        )
    lines.append(
        f"{'mean':<{width}}  {100 * scores['J&F']:6.2f}  {100 * scores['J']:6.2f}  {100 * scores['F']:6.2f}"
    )
    if scores["unscored_predictions"]:
        lines.append(describe_unscored(scores["unscored_predictions"]))
    return "\n".join(lines)
