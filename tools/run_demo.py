#!/usr/bin/env python
"""The `make demo` job: SynthRVOS -> train the small SOC config on the CPU -> J&F -> overlays -> summary.

    python tools/run_demo.py --output output/demo [--config-file ...] [--opts KEY VALUE ...]

Generates SynthRVOS (Ref-YouTube-VOS format) under ``$SOC_DATASETS/synthrvos/ytvos`` unless it is there
already, trains ``projects/SOC/configs/synthetic/soc_effnet_lite0_synth.yaml`` (``--config-file``
``.../soc_tiny_synth.yaml``: the from-scratch Video Swin config), evaluates J&F on the valid split
(overall and on the temporal subset), renders overlay videos of a few valid videos, plots the training curves
and writes ``summary.json``.
"""

import soc  # noqa: F401  (first: registers SOC; see soc/__init__.py on the import-time warnings)
import argparse
import json
import os
import time

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.utils.logger import setup_logger

from soc.config import setup_cfg
from soc.engine.synth_demo import ensure_synthrvos, train_and_evaluate
from soc.utils.curves import plot_curves, read_metrics
from soc.utils.visualization import render_overlays

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = os.path.join(ROOT, "projects/SOC/configs/synthetic/soc_effnet_lite0_synth.yaml")


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", default=DEFAULT_CONFIG)
    p.add_argument("--output", default="output/demo")
    p.add_argument("--train-videos", type=int, default=96)
    p.add_argument("--valid-videos", type=int, default=24)
    p.add_argument("--seed", type=int, default=0, help="SynthRVOS seed (valid uses seed + 1)")
    p.add_argument("--overlays", type=int, default=3, help="valid videos to render")
    p.add_argument("--opts", default=[], nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    return p


def main(argv=None) -> dict:
    args = get_parser().parse_args(argv)
    os.makedirs(args.output, exist_ok=True)
    setup_logger(output=os.path.join(args.output, "log.txt"), name="soc")
    setup_logger(output=os.path.join(args.output, "log.txt"), name="detectron2")
    cfg = setup_cfg(args.config_file, ["OUTPUT_DIR", os.path.join(args.output, "train")] + args.opts)

    valid_name = cfg.DATASETS.TEST[0]
    data_root = MetadataCatalog.get(valid_name).root
    t0 = time.perf_counter()
    ensure_synthrvos(data_root, args.train_videos, args.valid_videos, args.seed)
    generate_seconds = time.perf_counter() - t0

    run = train_and_evaluate(cfg)
    scores = run["results"]["refvos"]

    records = DatasetCatalog.get(valid_name)
    overlay_dir = os.path.join(args.output, "overlays")
    overlays = render_overlays(cfg, run["model"], records, overlay_dir, max_videos=args.overlays)

    curves_png = os.path.join(args.output, "training_curves.png")
    plot_curves(read_metrics(os.path.join(cfg.OUTPUT_DIR, "metrics.json")), curves_png)

    summary = {
        "J&F": scores["J&F"],
        "J": scores["J"],
        "F": scores["F"],
        "temporal": {k.split("/", 1)[1]: v for k, v in scores.items() if k.startswith("temporal/")},
        "train_seconds": run["train_seconds"],
        "eval_seconds": run["eval_seconds"],
        "iterations": run["iterations"],
        "generate_seconds": generate_seconds,
        "config": os.path.relpath(args.config_file, ROOT),
        "dataset_root": data_root,
        "files": {
            "checkpoint": os.path.join(cfg.OUTPUT_DIR, "model_final.pth"),
            "metrics": os.path.join(cfg.OUTPUT_DIR, "metrics.json"),
            "training_curves": curves_png,
            "overlays": overlays,
            "log": os.path.join(args.output, "log.txt"),
        },
    }
    with open(os.path.join(args.output, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    print(json.dumps(summary, indent=2))
    print(
        f"\nSOC demo: J&F {summary['J&F']:.3f} (J {summary['J']:.3f}, F {summary['F']:.3f}), "
        f"temporal subset J&F {summary['temporal'].get('J&F', float('nan')):.3f}, "
        f"{run['iterations']} iterations in {run['train_seconds']:.0f} s; summary in "
        f"{os.path.join(args.output, 'summary.json')}"
    )
    return summary


if __name__ == "__main__":
    from soc.utils.allocator import reexec_with_tcmalloc  # first: re-executes with tcmalloc (see there)

    reexec_with_tcmalloc()
    main()
