#!/usr/bin/env python
"""Where a trained model loses J: choosing the object, or the shape of the masks.

    python benchmarks/query_oracle_synth.py --config-file CONFIG --weights MODEL.pth [--dataset NAME]

Evaluates every query's masks on a split with ground truth and prints the region similarity J (mean over
expressions of the per-frame mean, as the evaluator) three ways:

- ``selected``: the query that SOC's inference selects (what the benchmark scores);
- ``best query``: the query with the best mean J over the video (a perfect choice of one query per video);
- ``best query per frame``: in each frame the best of the queries, over the frames that show the object (an
  upper bound for mask shape that no choice of query can pass).

It also reports J on the frames where the referred object is absent (1 for an empty mask) and how often the
selected query is the best one. Defaults: ``synthrvos_ytvos_valid``.
"""

import soc  # noqa: F401  (first: registers SOC; see soc/__init__.py on the import-time warnings)
import argparse
import json
from typing import Dict, List

import numpy as np
import torch
from detectron2.checkpoint import DetectionCheckpointer

from soc.config import setup_cfg
from soc.engine import Trainer
from soc.evaluation.metrics import db_eval_iou
from soc.evaluation.refvos_evaluator import expression_pairs, read_referred_masks


def expression_stats(gt: np.ndarray, query_masks: np.ndarray, selected: np.ndarray) -> Dict[str, List[float]]:
    """
    Args:
        gt: bool (T, H, W) ground truth. query_masks: bool (T, N, H, W) every query's masks. selected: bool
            (T, H, W) the prediction.

    Returns:
        lists to pool over expressions: per-expression means (``selected``, ``best_query``, ``chose_best``)
        and per-frame values (``selected_present``, ``best_query_present``, ``best_per_frame_present``,
        ``selected_absent``).
    """
    T, N = query_masks.shape[:2]
    per_query = np.array(
        [[db_eval_iou(gt[t], query_masks[t, n]) for t in range(T)] for n in range(N)]
    )  # N, T
    chosen = np.array([db_eval_iou(gt[t], selected[t]) for t in range(T)])
    best = int(per_query.mean(1).argmax())
    present = gt.reshape(T, -1).any(1)
    same = bool(np.array_equal(query_masks[:, best], selected))
    return {
        "selected": [chosen.mean()],
        "best_query": [per_query[best].mean()],
        "chose_best": [float(same)],
        "selected_present": list(chosen[present]),
        "best_query_present": list(per_query[best][present]),
        "best_per_frame_present": list(per_query.max(0)[present]),
        "selected_absent": list(chosen[~present]),
    }


def main(argv=None) -> Dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True)
    p.add_argument("--weights", required=True)
    p.add_argument("--dataset", default="synthrvos_ytvos_valid")
    p.add_argument("--json", default=None, help="also write the figures to this file")
    args = p.parse_args(argv)
    cfg = setup_cfg(
        args.config_file, ["MODEL.WEIGHTS", args.weights, "MODEL.SOC.TEST.ALL_QUERY_MASKS", "True"]
    )
    model = Trainer.build_model(cfg).eval()
    DetectionCheckpointer(model).load(args.weights)
    pooled: Dict[str, List[float]] = {}
    with torch.no_grad():
        for inputs in Trainer.build_test_loader(cfg, args.dataset):
            for inp, out in expression_pairs(inputs, model(inputs)):
                gt = np.asarray(read_referred_masks(inp)).astype(bool)
                stats = expression_stats(
                    gt, out["query_masks"].cpu().numpy(), out["pred_masks"].cpu().numpy()
                )
                for k, v in stats.items():
                    pooled.setdefault(k, []).extend(v)
    figures = {k: float(np.mean(v)) for k, v in pooled.items()}
    figures["expressions"] = len(pooled["selected"])
    for k, v in figures.items():
        print(f"{k:>24}: {v:.3f}" if isinstance(v, float) else f"{k:>24}: {v}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=1)
    return figures


if __name__ == "__main__":
    main()
