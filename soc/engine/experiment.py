"""Train-then-evaluate runs on SynthRVOS, shared by ``tools/run_demo.py`` and ``benchmarks/ablation_synth.py``."""
import logging
import os
import time
from collections import defaultdict
from typing import Dict, List, Sequence

import numpy as np
import torch
from PIL import Image
from detectron2.config import CfgNode, get_cfg
from detectron2.data import detection_utils as utils
from detectron2.engine import hooks

from soc.config import add_soc_config
from soc.data import build_soc_mapper
from soc.utils.video_io import write_gif, write_mp4
from soc.utils.visualization import overlay

logger = logging.getLogger(__name__)


def setup_cfg(config_file: str, opts: Sequence[str] = ()) -> CfgNode:
    """A frozen config from a YAML file and ``KEY VALUE`` overrides."""
    cfg = get_cfg()
    add_soc_config(cfg)
    cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts))
    cfg.freeze()
    return cfg


def train_and_evaluate(cfg: CfgNode, trainer_cls) -> Dict:
    """Train ``cfg`` from scratch with ``trainer_cls`` (train_net's Trainer), then evaluate on DATASETS.TEST.

    The evaluation runs once, after training, and outside the timed part: ``train_seconds`` is the wall time of
    the training loop with its logging and checkpointing.

    Returns ``{"results", "train_seconds", "eval_seconds", "iterations", "model"}``.
    """
    os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
    trainer = trainer_cls(cfg)
    trainer.resume_or_load(resume=False)
    # DefaultTrainer's EvalHook would evaluate at the end of train(); evaluate explicitly instead.
    trainer._hooks = [h for h in trainer._hooks if not isinstance(h, hooks.EvalHook)]
    start = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - start
    model = trainer.model
    start = time.perf_counter()
    results = trainer_cls.test(cfg, model)
    eval_seconds = time.perf_counter() - start
    return {
        "results": results,
        "train_seconds": train_seconds,
        "eval_seconds": eval_seconds,
        "iterations": trainer.iter,  # == MAX_ITER after a complete run
        "model": model,
    }


@torch.no_grad()
def render_overlays(cfg: CfgNode, model, records: List[dict], out_dir: str, max_videos: int = 3) -> List[str]:
    """Overlay every expression of up to ``max_videos`` videos (temporal ones first) as gif, mp4 and PNG frames.

    Returns the written gif paths.
    """
    by_video = defaultdict(list)
    for r in records:
        by_video[r["video_id"]].append(r)
    videos = sorted(by_video, key=lambda v: (not any(r.get("temporal") for r in by_video[v]), v))[:max_videos]
    mapper = build_soc_mapper(cfg, cfg.DATASETS.TEST[0], is_train=False)
    model.eval()
    written = []
    for video in videos:
        exps = sorted(by_video[video], key=lambda r: int(r["exp_id"]))[:7]
        masks = [model([mapper(dict(r))])[0]["pred_masks"].cpu().numpy() for r in exps]
        frames = [utils.read_image(f, format="RGB") for f in exps[0]["file_names"]]
        frames_out = [overlay(frame, [m[t] for m in masks]) for t, frame in enumerate(frames)]
        folder = os.path.join(out_dir, video)
        os.makedirs(folder, exist_ok=True)
        write_gif(frames_out, os.path.join(folder, "overlay.gif"))
        write_mp4(frames_out, os.path.join(folder, "overlay.mp4"))
        # a still of the middle frame, with the frames on the left and the legend in a text file
        middle = len(frames) // 2
        strip = np.concatenate([frames[middle], frames_out[middle]], axis=1)
        Image.fromarray(strip).save(os.path.join(folder, "frame.png"))
        with open(os.path.join(folder, "expressions.txt"), "w") as f:
            f.writelines(
                f"{k}\t{'temporal' if r.get('temporal') else 'plain'}\t{r['expression']}\n" for k, r in enumerate(exps)
            )
        written.append(os.path.join(folder, "overlay.gif"))
    return written
