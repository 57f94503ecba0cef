#!/usr/bin/env python
"""
MeViS no-target decision measured on SynthRVOS (issue 16: "report N-acc/T-acc with and without it").

    python benchmarks/mevis_no_target.py --max-iter 1600 --json benchmarks/results_mevis_no_target.json

(the committed result: 1600 iterations, 22.7 min of training on one thread of a shared 2-core CPU, then about
5 min of inference over the three evaluations).

Protocol (three disjoint SynthRVOS MeViS splits, each drawn with its own seed):

1. ``synthrvos_mevis_train`` (seed S, ``--train-videos``): trains the tiny MeViS config
   (``soc_tiny_mevis_synth.yaml``, its schedule unless ``--max-iter``), single thread; skipped when
   ``--weights`` is given or ``<output>/train/model_final.pth`` exists (``--retrain`` to force).
2. ``synthrvos_mevis_select`` (seed S + 2, ``--select-videos``, a ``valid_u``-like split with masks under
   ``$SOC_DATASETS/synthrvos/mevis_select``, registered here): the threshold is selected on it with
   ``tools/select_no_target_threshold.py`` (``soc.cli.select_no_target_threshold.select``: maximises Final).
3. ``synthrvos_mevis_valid_u`` (seed S + 1, ``--valid-videos``): the reporting split, never used for the
   choice. The model is run on it twice, with ``MODEL.SOC.TEST.NO_TARGET_THRESHOLD`` 0 (off) and with the
   selected threshold; J&F, N_acc, T_acc and Final of both runs are reported (and the run with the threshold
   is checked against the threshold applied to the scores of the run without it). For reference only, the
   JSON also gives the threshold that would have been best on the reporting split itself ("oracle").

The data are generated when missing (``$SOC_DATASETS/synthrvos/mevis{,_select}``, with a stamp file recording
the video counts and seed). All figures are fractions in [0, 1].
"""

import soc  # noqa: F401  (first: registers SOC)
import argparse
import json
import os
import time

import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import inference_on_dataset
from detectron2.utils.logger import setup_logger

from soc.checkpoint import SOCCheckpointer
from soc.cli.select_no_target_threshold import select
from soc.config import setup_cfg
from soc.data.datasets.mevis import register_mevis
from soc.data.synthetic import generate
from soc.engine.trainer import Trainer
from soc.evaluation.mevis_evaluator import (
    MevisEvaluator,
    mevis_summary,
    select_no_target_threshold,
    threshold_scores,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = "projects/SOC/configs/synthetic/soc_tiny_mevis_synth.yaml"
SELECT = "synthrvos_mevis_select"
KEYS = ("J&F", "J", "F", "N_acc", "T_acc", "Final")


def ensure_data(train_videos: int, valid_videos: int, select_videos: int, seed: int) -> dict:
    """Generate the train / valid_u / select splits unless the stamp says they are there; register select."""
    root = MetadataCatalog.get("synthrvos_mevis_train").root
    select_root = root + "_select"
    wanted = {"train_videos": train_videos, "valid_videos": valid_videos, "select_videos": select_videos}
    wanted["seed"] = seed
    stamp = os.path.join(root, "mevis_no_target.json")
    have = None
    if os.path.isfile(stamp):
        with open(stamp) as f:
            have = json.load(f)
    if have != wanted:
        force = os.path.isdir(root)
        generate(root, "mevis", train_videos, seed, split="train", force=force)
        generate(root, "mevis", valid_videos, seed + 1, split="valid_u", force=force)
        force = os.path.isdir(select_root)
        generate(select_root, "mevis", select_videos, seed + 2, split="valid_u", force=force)
        with open(stamp, "w") as f:
            json.dump(wanted, f)
    if SELECT not in DatasetCatalog.list():
        register_mevis(SELECT, select_root, "valid_u")
    return {"root": root, "select_root": select_root, **wanted}


def evaluate(cfg, model, dataset: str) -> MevisEvaluator:
    evaluator = MevisEvaluator(dataset, None, distributed=False)
    inference_on_dataset(model, Trainer.build_test_loader(cfg, dataset), evaluator)
    return evaluator


def rounded(summary: dict) -> dict:
    return {k: round(summary[k], 4) for k in KEYS if k in summary}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config-file", default=CONFIG)
    parser.add_argument("--output", default="output/mevis_no_target")
    parser.add_argument("--weights", default=None, help="a trained checkpoint (skips training)")
    parser.add_argument("--retrain", action="store_true", help="train even if <output>/train has a model")
    parser.add_argument("--max-iter", type=int, default=None, help="default: the config's SOLVER.MAX_ITER")
    parser.add_argument("--train-videos", type=int, default=96)
    parser.add_argument("--valid-videos", type=int, default=24)
    parser.add_argument("--select-videos", type=int, default=24)
    parser.add_argument("--seed", type=int, default=0, help="train seed; valid_u seed + 1, select seed + 2")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", metavar="FILE", help="also write the results to FILE")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    setup_logger(name="soc")
    setup_logger(name="detectron2")
    data = ensure_data(args.train_videos, args.valid_videos, args.select_videos, args.seed)
    config = os.path.join(ROOT, args.config_file)
    train_dir = os.path.join(args.output, "train")
    opts = ["OUTPUT_DIR", train_dir, "SEED", "0", "DATALOADER.NUM_WORKERS", "0"]
    if args.max_iter:  # the config's schedule shape: one LR step at 80 %
        opts += ["SOLVER.MAX_ITER", str(args.max_iter), "SOLVER.STEPS", f"({int(0.8 * args.max_iter)},)"]
    weights = args.weights or os.path.join(train_dir, "model_final.pth")
    train_info = {}  # kept beside the model, so that a later run that reuses it still reports the training
    info_file = os.path.join(train_dir, "mevis_no_target_train.json")
    if args.weights is None and (args.retrain or not os.path.isfile(weights)):
        cfg = setup_cfg(config, opts)
        os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
        trainer = Trainer(cfg, final_eval=False)
        trainer.resume_or_load(resume=False)
        start = time.perf_counter()
        trainer.train()
        train_info = {"train_seconds": round(time.perf_counter() - start, 1), "iterations": trainer.iter}
        with open(info_file, "w") as f:
            json.dump(train_info, f)
    elif args.weights is None and os.path.isfile(info_file):
        with open(info_file) as f:
            train_info = json.load(f)

    # 1. threshold selected on the held-out split (the CLI's function)
    chosen = select(config, SELECT, opts + ["MODEL.WEIGHTS", weights])
    threshold = chosen["threshold"]

    # 2. the reporting split, run without and with the threshold
    valid = "synthrvos_mevis_valid_u"
    runs = {}
    for name, value in (("without", 0.0), ("with", threshold)):
        run_opts = ["MODEL.WEIGHTS", weights, "MODEL.SOC.TEST.NO_TARGET_THRESHOLD", repr(value)]
        cfg = setup_cfg(config, opts + run_opts)
        model = Trainer.build_model(cfg)
        SOCCheckpointer(model, min_matched=cfg.MODEL.WEIGHTS_MIN_MATCHED).load(weights)
        runs[name] = evaluate(cfg, model, valid)
    scores_without = runs["without"].scores
    simulated = mevis_summary(threshold_scores(scores_without, threshold))
    measured = mevis_summary(runs["with"].scores.values())
    oracle, oracle_table = select_no_target_threshold(scores_without)
    n_target = sum(not s.gt_empty for s in scores_without.values())
    n_empty = sum(s.gt_empty for s in scores_without.values())

    result = {
        "protocol": "model trained on synthrvos_mevis_train (seed); threshold selected on "
        "synthrvos_mevis_select (seed+2, disjoint); reported on synthrvos_mevis_valid_u (seed+1)",
        "config": args.config_file,
        "weights": os.path.relpath(weights, ROOT) if os.path.isabs(weights) else weights,
        "data": data,
        "train_seconds": train_info.get("train_seconds"),
        "iterations": train_info.get("iterations"),
        "threads": args.threads,
        "threshold": threshold,
        "select_split": {"without": rounded(chosen["without"]), "with": rounded(chosen["with"])},
        "report_split": {
            "dataset": valid,
            "expressions": len(scores_without),
            "target_expressions": n_target,
            "no_target_expressions": n_empty,
            "without": rounded(mevis_summary(scores_without.values())),
            "with": rounded(measured),
        },
        # for reference only, never used: the best threshold had it been chosen on the reporting split itself
        "oracle_on_report_split": {"threshold": oracle, "with": rounded(dict(oracle_table)[oracle])},
        "with_matches_threshold_applied_to_scores": all(
            abs(simulated[k] - measured[k]) < 1e-9 for k in KEYS if k in measured
        ),
    }
    print(json.dumps(result, indent=1))
    for name in ("without", "with"):
        row = result["report_split"][name]
        print(f"{name:>7} threshold: " + ", ".join(f"{k} {row[k]:.4f}" for k in KEYS if k in row))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
    return result


if __name__ == "__main__":
    main()
