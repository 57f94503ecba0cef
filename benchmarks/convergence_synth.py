#!/usr/bin/env python
"""Convergence study on SynthRVOS: J&F (overall and temporal subset) against training iterations.

    python benchmarks/convergence_synth.py --output output/convergence [--iters 20000] [--eval-period 2500] \\
        [--config-file projects/SOC/configs/synthetic/soc_tiny_synth.yaml] [--resume] [--opts KEY VALUE ...]

Trains one config for ``--iters`` iterations (learning-rate drop at 80 %), evaluates ``DATASETS.TEST`` every
``--eval-period`` iterations through detectron2's ``EvalHook``, and writes ``convergence.json`` (one row per
evaluation, with the training loss around it) and ``convergence.png``. Uses the data `make demo` generates
(generated here if missing). ``--resume`` continues a killed run from its last checkpoint.
"""

import soc  # noqa: F401  (first: registers SOC; see soc/__init__.py on the import-time warnings)
import argparse
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from detectron2.data import MetadataCatalog  # noqa: E402
from detectron2.utils.logger import setup_logger  # noqa: E402

from soc.config import setup_cfg  # noqa: E402
from soc.engine import Trainer  # noqa: E402
from soc.engine.synth_demo import ensure_synthrvos  # noqa: E402
from soc.utils.curves import read_metrics  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = os.path.join(ROOT, "projects/SOC/configs/synthetic/soc_tiny_synth.yaml")


def evaluation_rows(records: list) -> list:
    """``[{"iteration", "J&F", "temporal J&F", "loss"}]`` from a ``metrics.json``: one row per evaluation,
    with the median ``total_loss`` of the training records logged since the previous evaluation."""
    rows, losses = [], []
    for r in records:
        if "total_loss" in r:
            losses.append(r["total_loss"])
        if "refvos/J&F" in r:
            losses.sort()
            rows.append(
                {
                    "iteration": r["iteration"] + 1,
                    "J&F": r["refvos/J&F"],
                    "temporal J&F": r.get("refvos/temporal/J&F", float("nan")),
                    "loss": losses[len(losses) // 2] if losses else float("nan"),
                }
            )
            losses = []
    return rows


def plot(rows: list, out_png: str, title: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    its = [r["iteration"] for r in rows]
    ax.plot(its, [r["J&F"] for r in rows], "o-", label="J&F")
    ax.plot(its, [r["temporal J&F"] for r in rows], "s--", label="temporal J&F")
    ax.set_xlabel("iteration")
    ax.set_ylabel("J&F on synthrvos_ytvos_valid")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)


def main(argv=None) -> list:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", default=DEFAULT_CONFIG)
    p.add_argument("--output", default="output/convergence")
    p.add_argument("--iters", type=int, default=20000)
    p.add_argument("--eval-period", type=int, default=2500)
    p.add_argument("--train-videos", type=int, default=96)
    p.add_argument("--valid-videos", type=int, default=24)
    p.add_argument("--seed", type=int, default=0, help="SynthRVOS seed (as make demo)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --output")
    p.add_argument("--opts", default=[], nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    args = p.parse_args(argv)
    if args.iters < 1 or not 0 < args.eval_period <= args.iters:
        p.error(f"need --iters >= 1 and 0 < --eval-period <= --iters (got {args.iters}, {args.eval_period})")

    os.makedirs(args.output, exist_ok=True)
    setup_logger(output=os.path.join(args.output, "log.txt"), name="soc")
    setup_logger(output=os.path.join(args.output, "log.txt"), name="detectron2")
    schedule = ["SOLVER.MAX_ITER", str(args.iters), "SOLVER.STEPS", f"({int(0.8 * args.iters)},)"]
    schedule += ["TEST.EVAL_PERIOD", str(args.eval_period), "SOLVER.CHECKPOINT_PERIOD", str(args.eval_period)]
    cfg = setup_cfg(args.config_file, ["OUTPUT_DIR", args.output, *schedule, *args.opts])
    ensure_synthrvos(
        MetadataCatalog.get(cfg.DATASETS.TEST[0]).root, args.train_videos, args.valid_videos, args.seed
    )

    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    trainer.train()

    rows = evaluation_rows(read_metrics(os.path.join(args.output, "metrics.json")))
    with open(os.path.join(args.output, "convergence.json"), "w") as f:
        json.dump({"config": args.config_file, "opts": args.opts, "rows": rows}, f, indent=2)
    plot(rows, os.path.join(args.output, "convergence.png"), os.path.basename(args.config_file))
    print("\n| iteration | J&F | temporal J&F | training loss |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r['iteration']} | {r['J&F']:.3f} | {r['temporal J&F']:.3f} | {r['loss']:.2f} |")
    return rows


if __name__ == "__main__":
    main()
