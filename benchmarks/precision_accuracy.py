#!/usr/bin/env python
"""
Accuracy of the reduced inference precisions against float32: a trained checkpoint is evaluated on a split in
float32 and in each ``--precision`` (``MODEL.SOC.TEST.PRECISION``), on the same inputs, and the script prints
the J&F of each and the median (and 5th percentile) over all frames of all expressions of the IoU between
each precision's mask and the float32 mask (1 where both are empty).

    python benchmarks/precision_accuracy.py --precision bf16
    python benchmarks/precision_accuracy.py --precision bf16 --weights output/demo/train/model_final.pth \
        --config-file projects/SOC/configs/synthetic/soc_effnet_lite0_synth.yaml  # the `make demo` model

Defaults: the from-scratch Video Swin SynthRVOS config (``soc_tiny_synth.yaml``) on ``synthrvos_ytvos_valid``
with the weights of its convergence study (``output/convergence/demo/model_final.pth``, 20000 iterations).
Goal (issue 18):
|ΔJ&F| ≤ 0.005 and median IoU ≥ 0.98 for bf16.
"""

import soc  # noqa: F401  (first: registers SOC)
import argparse
import json
import os
import tempfile

import numpy as np
import torch
from detectron2.modeling import build_model

from soc.checkpoint import SOCCheckpointer
from soc.config import setup_cfg
from soc.engine.trainer import Trainer
from soc.evaluation.refvos_evaluator import expression_pairs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS = ("output/convergence/demo/model_final.pth",)


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-frame IoU of two (T, H, W) bool stacks; 1 where both are empty."""
    inter = np.logical_and(a, b).sum((1, 2))
    union = np.logical_or(a, b).sum((1, 2))
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config-file", default="projects/SOC/configs/synthetic/soc_tiny_synth.yaml")
    parser.add_argument("--weights", default=None, help=f"default: the first of {WEIGHTS} that exists")
    parser.add_argument("--dataset", default=None, help="default: the config's DATASETS.TEST[0]")
    parser.add_argument("--precision", nargs="+", default=["bf16"], choices=["bf16", "fp16"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", metavar="FILE", help="also write the results to FILE")
    parser.add_argument("--opts", default=[], nargs=argparse.REMAINDER)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    weights = args.weights or next((w for w in WEIGHTS if os.path.isfile(os.path.join(ROOT, w))), None)
    if weights is None:
        raise SystemExit(
            f"no trained weights: pass --weights (looked for {WEIGHTS}); benchmarks/convergence_synth.py "
            "trains them"
        )
    weights = os.path.join(ROOT, weights)
    config = os.path.join(ROOT, args.config_file)
    precisions = ["fp32", *args.precision]
    cfgs = {p: setup_cfg(config, [*args.opts, "MODEL.SOC.TEST.PRECISION", p]) for p in precisions}
    dataset = args.dataset or cfgs["fp32"].DATASETS.TEST[0]
    models = {}
    for p, cfg in cfgs.items():
        models[p] = build_model(cfg).eval()
        SOCCheckpointer(models[p]).load(weights)

    with tempfile.TemporaryDirectory() as tmp:
        evaluators = {p: Trainer.build_evaluator(cfgs[p], dataset, os.path.join(tmp, p)) for p in precisions}
        for e in evaluators.values():
            e.reset()
        ious = {p: [] for p in args.precision}
        for inputs in Trainer.build_test_loader(cfgs["fp32"], dataset):
            outputs = {}
            for p in precisions:
                with torch.no_grad():
                    outputs[p] = models[p](inputs)
                evaluators[p].process(inputs, outputs[p])
            ref = [o["pred_masks"].numpy() for _, o in expression_pairs(inputs, outputs["fp32"])]
            for p in args.precision:
                for r, (_, o) in zip(ref, expression_pairs(inputs, outputs[p])):
                    ious[p].append(mask_iou(o["pred_masks"].numpy(), r))
        scores = {p: evaluators[p].evaluate()["refvos"] for p in precisions}

    result = {"weights": weights, "dataset": dataset, "J&F": {p: scores[p]["J&F"] for p in precisions}}
    print(f"weights {weights}, {dataset}")
    print(f"fp32: J&F {scores['fp32']['J&F']:.4f}")
    for p in args.precision:
        frame_ious = np.concatenate(ious[p])
        delta = scores[p]["J&F"] - scores["fp32"]["J&F"]
        median, p5 = float(np.median(frame_ious)), float(np.percentile(frame_ious, 5))
        result[p] = {"delta_J&F": delta, "median_iou_vs_fp32": median, "p5_iou_vs_fp32": p5}
        ok = abs(delta) <= 0.005 and median >= 0.98
        print(
            f"{p}: J&F {scores[p]['J&F']:.4f} (Δ {delta:+.4f}); IoU vs fp32 over {frame_ious.size} frames: "
            f"median {median:.4f}, 5th percentile {p5:.4f}; goal (|ΔJ&F| <= 0.005, median >= 0.98) "
            f"{'met' if ok else 'NOT met'}"
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
