#!/usr/bin/env python
"""Per-expression J&F of predicted PNG masks against ground-truth PNGs (Ref-YouTube-VOS protocol).

    python tools/eval_jf.py --pred out/Annotations --gt gt/Annotations [--json scores.json] [--missing empty]
    python tools/eval_jf.py --pred out/Annotations --gt ref-youtube-vos/train/Annotations \\
        --meta-expressions ref-youtube-vos/meta_expressions/train/meta_expressions.json

Predictions: ``<pred>/<video>/<exp_id>/<frame>.png``, non-zero = foreground (the submission's 0/255 PNGs).
Ground truth, either the same binary layout ``<gt>/<video>/<exp_id>/<frame>.png``, or, with
``--meta-expressions``, the palette PNGs ``<gt>/<video>/<frame>.png`` (value = object id) from which each
expression's ``obj_id`` is taken.
Every GT frame is scored (J and F of DAVIS, default tolerance); an expression's J and F are means over its
frames, and J, F are means over expressions (J&F = (J + F)/2), as fractions. A missing prediction is an error
naming the file, unless ``--missing empty`` scores it as an empty mask.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List, Optional, Tuple

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from soc.evaluation.metrics import db_eval_boundary, db_eval_iou, jf_aggregate  # noqa: E402


class EvalError(RuntimeError):
    """A missing or inconsistent input file; the message names it."""


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="per-expression J&F of PNG masks (Ref-YouTube-VOS protocol)")
    parser.add_argument("--pred", required=True, help="predictions: <pred>/<video>/<exp_id>/<frame>.png")
    parser.add_argument(
        "--gt",
        required=True,
        help="GT: <gt>/<video>/<exp_id>/<frame>.png, or palette "
        "<gt>/<video>/<frame>.png with --meta-expressions",
    )
    parser.add_argument(
        "--meta-expressions",
        metavar="FILE",
        help="meta_expressions.json with an obj_id per " "expression; selects the palette GT layout",
    )
    parser.add_argument(
        "--json", metavar="OUT", help="write {J, F, J&F, sequences: {<video>/<exp_id>: {J, F}}}"
    )
    parser.add_argument(
        "--missing",
        choices=("error", "empty"),
        default="error",
        help="a missing prediction PNG: an error (default) or an empty mask",
    )
    parser.add_argument(
        "--bound-th",
        type=float,
        default=0.008,
        help="boundary tolerance: fraction of the diagonal (< 1) or pixels (>= 1)",
    )
    return parser


def read_binary_png(path: str) -> np.ndarray:
    """A PNG as a bool mask ``(H, W)``: any non-zero index / grey value / channel is foreground."""
    with Image.open(path) as img:
        arr = np.array(img)
    return arr.any(axis=-1) if arr.ndim == 3 else arr > 0


def read_index_png(path: str) -> np.ndarray:
    """A palette / grey PNG as its stored values ``(H, W)``; colour PNGs are refused (they carry no ids)."""
    with Image.open(path) as img:
        if img.mode not in ("P", "L"):
            raise EvalError(f"{path}: mode {img.mode!r}; object ids need a palette ('P') or 'L' PNG")
        return np.array(img)


def _pngs(folder: str) -> List[str]:
    return sorted(os.path.splitext(n)[0] for n in os.listdir(folder) if n.endswith(".png"))


def _dirs(folder: str) -> List[str]:
    return sorted(n for n in os.listdir(folder) if os.path.isdir(os.path.join(folder, n)))


def gt_sequences(gt_root: str, meta_file: Optional[str]) -> Dict[str, List[Tuple[str, str, Optional[int]]]]:
    """``{"<video>/<exp_id>": [(frame, GT png, object id or None for a binary PNG), ...]}``."""
    if not os.path.isdir(gt_root):
        raise EvalError(f"GT folder not found: {gt_root}")
    seqs: Dict[str, list] = {}
    if meta_file is None:
        for video in _dirs(gt_root):
            for exp_id in _dirs(os.path.join(gt_root, video)):
                folder = os.path.join(gt_root, video, exp_id)
                seqs[f"{video}/{exp_id}"] = [
                    (f, os.path.join(folder, f + ".png"), None) for f in _pngs(folder)
                ]
        return seqs
    if not os.path.isfile(meta_file):
        raise EvalError(f"meta-expressions file not found: {meta_file}")
    with open(meta_file, encoding="utf-8") as f:
        videos = json.load(f)["videos"]
    for video, vmeta in sorted(videos.items()):
        folder = os.path.join(gt_root, video)
        if not os.path.isdir(folder):
            raise EvalError(f"GT folder of video {video} not found: {folder}")
        frames = _pngs(folder)
        for exp_id, exp in vmeta["expressions"].items():
            if "obj_id" not in exp:
                raise EvalError(f"{meta_file}: video {video}, expression {exp_id} has no obj_id")
            oid = int(exp["obj_id"])
            seqs[f"{video}/{exp_id}"] = [(fr, os.path.join(folder, fr + ".png"), oid) for fr in frames]
    return seqs


def evaluate_folders(
    pred_root: str,
    gt_root: str,
    meta_file: Optional[str] = None,
    missing: str = "error",
    bound_th: float = 0.008,
) -> dict:
    """Score ``pred_root`` against ``gt_root``.

    Returns:
        ``{"J", "F", "J&F", "sequences": {"<video>/<exp_id>": {"J", "F"}}}`` (fractions).
    """
    if not os.path.isdir(pred_root):
        raise EvalError(f"prediction folder not found: {pred_root}")
    per_expression = {}
    for key, frames in gt_sequences(gt_root, meta_file).items():
        if not frames:
            continue
        js, fs = [], []
        for frame, gt_path, obj_id in frames:
            gt = read_binary_png(gt_path) if obj_id is None else read_index_png(gt_path) == obj_id
            path = os.path.join(pred_root, *key.split("/"), frame + ".png")
            if os.path.isfile(path):
                pred = read_binary_png(path)
            elif missing == "empty":
                pred = np.zeros_like(gt)
            else:
                raise EvalError(f"missing prediction: {path} (use --missing empty to score it as empty)")
            if pred.shape != gt.shape:
                raise EvalError(f"{path}: size {pred.shape} differs from the GT's {gt.shape}")
            js.append(db_eval_iou(gt, pred))
            fs.append(db_eval_boundary(gt, pred, bound_th=bound_th))
        per_expression[key] = (float(np.mean(js)), float(np.mean(fs)))
    if not per_expression:
        raise EvalError(f"no GT masks found under {gt_root}")
    scores = jf_aggregate(per_expression)
    scores["sequences"] = {k: {"J": j, "F": f} for k, (j, f) in per_expression.items()}
    return scores


def format_table(scores: dict) -> str:
    """Per-expression rows and the mean, in percent."""
    width = max([len("sequence")] + [len(k) for k in scores["sequences"]])
    lines = [f"{'sequence':<{width}}  {'J&F':>6}  {'J':>6}  {'F':>6}"]
    for key, v in scores["sequences"].items():
        lines.append(
            f"{key:<{width}}  {50 * (v['J'] + v['F']):6.2f}  {100 * v['J']:6.2f}  {100 * v['F']:6.2f}"
        )
    lines.append(
        f"{'mean':<{width}}  {100 * scores['J&F']:6.2f}  {100 * scores['J']:6.2f}  {100 * scores['F']:6.2f}"
    )
    return "\n".join(lines)


def main(argv=None) -> dict:
    args = get_parser().parse_args(argv)
    try:
        scores = evaluate_folders(args.pred, args.gt, args.meta_expressions, args.missing, args.bound_th)
    except EvalError as e:
        sys.exit(f"error: {e}")
    print(format_table(scores))
    n = len(scores["sequences"])
    print(f"{n} expressions: J&F {scores['J&F']:.6f}  J {scores['J']:.6f}  F {scores['F']:.6f}")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(scores, f, indent=1)
    return scores


if __name__ == "__main__":
    main()
