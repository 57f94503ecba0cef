"""Select ``MODEL.SOC.TEST.NO_TARGET_THRESHOLD`` on a held-out MeViS split (one with masks, e.g. valid_u).

    python tools/select_no_target_threshold.py --dataset mevis2_valid_u \\
        --config-file projects/SOC/configs/mevis/soc_swin_t_scratch.yaml MODEL.WEIGHTS model_final.pth

The model runs once without a threshold; every threshold (0 = off, and the midpoints between consecutive clip
scores) is then scored from the per-expression results (an expression below it scores as an all-empty
prediction), and the one that maximises Final = (J&F + N-acc + T-acc)/3 is printed with N-acc and T-acc with
and without it. Train and pick on different splits: the threshold is then used on ``valid`` with
``MODEL.SOC.TEST.NO_TARGET_THRESHOLD``.
"""

import argparse
import json
from typing import List, Optional

from detectron2.data import DatasetCatalog
from detectron2.evaluation import inference_on_dataset

from soc.checkpoint import SOCCheckpointer
from soc.config import setup_cfg
from soc.data.io import has_ground_truth
from soc.engine import Trainer
from soc.evaluation.mevis_evaluator import MevisEvaluator, select_no_target_threshold


def select(config_file: str, dataset: str, opts: List[str]) -> dict:
    """Run the model on ``dataset`` without a threshold and return ``{"threshold", "without", "with",
    "table"}`` (figures as :func:`~soc.evaluation.mevis_evaluator.mevis_summary` gives them)."""
    cfg = setup_cfg(config_file, list(opts) + ["MODEL.SOC.TEST.NO_TARGET_THRESHOLD", "0.0"])
    if not cfg.MODEL.WEIGHTS:
        raise ValueError("selecting the no-target threshold needs a trained model: set MODEL.WEIGHTS")
    if not any(has_ground_truth(r) for r in DatasetCatalog.get(dataset)):  # before hours of inference
        raise ValueError(
            f"{dataset} has no ground-truth masks (no mask_dict.json, e.g. the server's valid split): select "
            "the threshold on a held-out split with masks, e.g. valid_u"
        )
    model = Trainer.build_model(cfg)
    SOCCheckpointer(model, min_matched=cfg.MODEL.WEIGHTS_MIN_MATCHED).load(cfg.MODEL.WEIGHTS)
    evaluator = MevisEvaluator(dataset, None, distributed=False)
    inference_on_dataset(model, Trainer.build_test_loader(cfg, dataset), evaluator)
    best, table = select_no_target_threshold(evaluator.scores)
    rows = dict(table)
    return {"threshold": best, "without": rows[0.0], "with": rows[best], "table": table}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tools/select_no_target_threshold.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--dataset", required=True, help="a registered split with masks, e.g. mevis2_valid_u")
    parser.add_argument("--output", help="write the result as JSON here")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides, e.g. MODEL.WEIGHTS x.pth")
    args = parser.parse_args(argv)
    result = select(args.config_file, args.dataset, args.opts)
    keys = ("J&F", "N_acc", "T_acc", "Final")
    for name in ("without", "with"):
        print(f"{name:>7}: " + ", ".join(f"{k} {result[name][k]:.4f}" for k in keys))
    print(f"MODEL.SOC.TEST.NO_TARGET_THRESHOLD {result['threshold']!r}")  # repr: the exact value
    if args.output:
        with open(args.output, "w") as f:
            json.dump(result, f, indent=1)
    return 0
