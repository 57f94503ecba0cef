#!/usr/bin/env python
"""The paper's Table 3 ablation on SynthRVOS: full SOC, without VOC, without the contrastive loss, without
both.

    python benchmarks/ablation_synth.py [--output output/ablation] [--variants ...] [--opts KEY VALUE ...]

Trains the small CPU config four ways with the same seed, data and iteration budget, evaluates each on the
SynthRVOS valid split and prints J&F overall and on the temporal subset (look-alike objects told apart by
motion only). Uses the data `make demo` generates (generated here if missing). Takes about 4x the demo's
training time; `--variants` runs a subset (e.g. two processes with OMP_NUM_THREADS=1, one per core).
"""

import soc  # noqa: F401  (first: registers SOC; see soc/__init__.py on the import-time warnings)
import argparse
import json
import os

from detectron2.data import MetadataCatalog
from detectron2.utils.logger import setup_logger

from soc.config import setup_cfg
from soc.engine.synth_demo import ensure_synthrvos, train_and_evaluate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONFIGS = os.path.join(ROOT, "projects/SOC/configs/synthetic")
VARIANTS = {
    "full": "soc_tiny_synth.yaml",
    "w/o VOC": "soc_tiny_no_voc.yaml",
    "w/o contrastive": "soc_tiny_no_contrastive.yaml",
    "w/o both": "soc_tiny_no_voc_no_contrastive.yaml",
}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", default="output/ablation")
    p.add_argument("--train-videos", type=int, default=96)
    p.add_argument("--valid-videos", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--variants",
        nargs="+",
        choices=list(VARIANTS),
        default=list(VARIANTS),
        help="a subset, e.g. to run in parallel",
    )
    p.add_argument("--opts", default=[], nargs=argparse.REMAINDER, help="overrides applied to every variant")
    args = p.parse_args(argv)
    setup_logger(output=os.path.join(args.output, "log.txt"), name="soc")

    table = {}
    for name in args.variants:
        yaml = VARIANTS[name]
        out = os.path.join(args.output, name.replace("/", "").replace(" ", "_"))
        cfg = setup_cfg(os.path.join(CONFIGS, yaml), ["OUTPUT_DIR", out, "SEED", "42"] + args.opts)
        ensure_synthrvos(
            MetadataCatalog.get(cfg.DATASETS.TEST[0]).root, args.train_videos, args.valid_videos, args.seed
        )
        scores = train_and_evaluate(cfg)["results"]["refvos"]
        table[name] = {"J&F": scores["J&F"], "temporal J&F": scores.get("temporal/J&F", float("nan"))}
        print(f"{name}: {table[name]}", flush=True)

    os.makedirs(args.output, exist_ok=True)
    with open(os.path.join(args.output, "ablation.json"), "w") as f:
        json.dump(table, f, indent=2)
    print("\n| variant | J&F | temporal J&F |\n|---|---|---|")
    for name, row in table.items():
        print(f"| {name} | {row['J&F']:.3f} | {row['temporal J&F']:.3f} |")
    return table


if __name__ == "__main__":
    main()
