"""The SynthRVOS demo pipeline: generate the data once, train from scratch, evaluate once.

Shared by ``tools/run_demo.py`` (`make demo`) and ``benchmarks/ablation_synth.py``.
"""

import json
import logging
import os
import time
from typing import Dict

from detectron2.config import CfgNode

from soc.data.synthetic import generate

from .trainer import Trainer

logger = logging.getLogger(__name__)


def ensure_synthrvos(root: str, train_videos: int, valid_videos: int, seed: int) -> None:
    """Generate SynthRVOS train (``seed``) and valid (``seed + 1``) splits in the Ref-YouTube-VOS format under
    ``root``, unless a previous call wrote the same ones (recorded in ``root/synthrvos_demo.json``)."""
    stamp = os.path.join(root, "synthrvos_demo.json")
    wanted = {"train_videos": train_videos, "valid_videos": valid_videos, "seed": seed}
    if os.path.isfile(stamp):
        with open(stamp) as f:
            if json.load(f) == wanted:
                logger.info("SynthRVOS already at %s", root)
                return
    force = os.path.isdir(root)
    generate(root, "ytvos", train_videos, seed, split="train", force=force)
    generate(root, "ytvos", valid_videos, seed + 1, split="valid", force=force)
    with open(stamp, "w") as f:
        json.dump(wanted, f)


def train_and_evaluate(cfg: CfgNode) -> Dict:
    """Train ``cfg`` from scratch with SOC's :class:`Trainer`, then evaluate on ``DATASETS.TEST``.

    The evaluation runs once, after training, and outside the timed part: ``train_seconds`` is the wall time
    of the training loop with its logging and checkpointing.

    Returns ``{"results", "train_seconds", "eval_seconds", "iterations", "model"}``.
    """
    os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
    trainer = Trainer(cfg, final_eval=False)
    trainer.resume_or_load(resume=False)
    start = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - start
    model = trainer.model
    start = time.perf_counter()
    results = Trainer.test(cfg, model)
    eval_seconds = time.perf_counter() - start
    return {
        "results": results,
        "train_seconds": train_seconds,
        "eval_seconds": eval_seconds,
        "iterations": trainer.iter,  # == MAX_ITER after a complete run
        "model": model,
    }
