#!/usr/bin/env python
"""Long videos: does the window association (``MODEL.SOC.TEST.ASSOCIATION iou_embedding``) keep the referred
object better than the authors' independent windows?

    OMP_NUM_THREADS=1 python benchmarks/long_video_association.py [--weights model.pth] [--videos 6] \\
        [--seed 0] [--clip-lengths 12] [--overlaps 0 4] [--associations independent iou_embedding] \\
        [--score-weights 0] [--presence-threshold 0.5] [--output output/long_video_association]

A trained SOC model segments the long SynthRVOS split (``synthrvos_long_valid``: the Long-RVOS layout, 300-400
frames per video, a look-alike pair in every video whose first object leaves the frame and comes back;
generated under ``$SOC_DATASETS/synthrvos/long_rvos`` when missing) once per combination of window length
(``MODEL.SOC.TEST.CLIP_LENGTH``), overlap (``WINDOW_OVERLAP``) and association (``iou_embedding`` once per
``--score-weights`` value, ``ASSOCIATION_SCORE_WEIGHT``), through the streaming
:class:`~soc.engine.SOCPredictor` (all expressions of a video at once), and :class:`LongRVOSEvaluator`
scores it (``docs/formats_and_metrics.md`` §8). The same masks are also scored emptied in the frames where
the chosen query's per-frame score is below ``--presence-threshold``: the model thresholds the chosen
query's mask in every frame and has no notion of absence, while the referred object is out of view in a good
share of a long video's frames. Prints the two
tables and writes ``long_video_association.json``; one setting takes about 10 minutes for 6 videos on one
CPU thread.

Weights: ``--weights``, else the latest ``model_*.pth`` of the convergence study
(``output/convergence/demo``, config ``projects/SOC/configs/synthetic/soc_tiny_synth.yaml``).
"""

import soc  # noqa: F401  (first: registers SOC; see soc/__init__.py on the import-time warnings)
import argparse
import glob
import itertools
import json
import os
import time
from collections import defaultdict
from typing import Dict, List, Optional, Tuple

import torch  # noqa: E402
from detectron2.data import DatasetCatalog, MetadataCatalog  # noqa: E402

from soc.config import setup_cfg  # noqa: E402
from soc.data.io import normalize_expression, read_image  # noqa: E402
from soc.data.synthetic import generate  # noqa: E402
from soc.engine import SOCPredictor  # noqa: E402
from soc.evaluation import LongRVOSEvaluator  # noqa: E402
from soc.modeling.windows import ASSOCIATIONS  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = os.path.join(ROOT, "projects/SOC/configs/synthetic/soc_tiny_synth.yaml")
CONVERGENCE_DIR = os.path.join(ROOT, "output/convergence/demo")
DATASET = "synthrvos_long_valid"
COLUMNS = ("J&F", "J", "F", "tIoU", "vIoU", "switches", "static/J&F", "dynamic/J&F", "hybrid/J&F")


def ensure_long_split(root: str, videos: int, seed: int) -> None:
    """Generate the long SynthRVOS valid split (``videos`` videos, ``seed``) under ``root`` unless a previous
    call wrote the same one (recorded in ``root/synthrvos_long.json``)."""
    stamp = os.path.join(root, "synthrvos_long.json")
    wanted = {"videos": videos, "seed": seed}
    if os.path.isfile(stamp):
        with open(stamp) as f:
            if json.load(f) == wanted:
                return
    generate(root, "long_rvos", videos, seed, split="valid", long_videos=True, force=os.path.isdir(root))
    with open(stamp, "w") as f:
        json.dump(wanted, f)


def latest_checkpoint(folder: str) -> str:
    """The ``model_*.pth`` of ``folder`` with the highest iteration (names are zero-padded)."""
    found = sorted(glob.glob(os.path.join(folder, "model_*.pth")))
    if not found:
        raise FileNotFoundError(f"no model_*.pth in {folder}: pass --weights")
    return found[-1]


def evaluate_setting(
    config_file: str, opts: List[str], by_video: Dict[str, List[dict]], presence_threshold: float
) -> Tuple[Dict[str, float], Optional[Dict[str, float]]]:
    """Long-RVOS scores of one inference setting, with ``seconds`` (inference and scoring, all videos); then
    those of the same masks emptied in the frames where the chosen query's score is below
    ``presence_threshold`` (None when it is 0)."""
    predictor = SOCPredictor(setup_cfg(config_file, opts))
    evaluators = [LongRVOSEvaluator(DATASET, distributed=False) for _ in range(1 + (presence_threshold > 0))]
    start = time.perf_counter()
    for records in by_video.values():
        frames = (read_image(path) for path in records[0]["file_names"])  # read lazily, in listed order
        outputs = predictor(frames, [normalize_expression(r["expression"]) for r in records])
        evaluators[0].process(records, [{"pred_masks": o["pred_masks"]} for o in outputs])
        if len(evaluators) > 1:
            gated = [o["pred_masks"] & (o["scores"] >= presence_threshold)[:, None, None] for o in outputs]
            evaluators[1].process(records, [{"pred_masks": m} for m in gated])
    results = [e.evaluate()["long_rvos"] for e in evaluators]
    results[0]["seconds"] = time.perf_counter() - start
    return results[0], (results[1] if len(results) > 1 else None)


def print_table(rows: List[dict], title: str) -> None:
    """A markdown table of ``rows`` (settings and their scores)."""
    present = [c for c in COLUMNS if c in rows[0]]
    head = "| CLIP_LENGTH | WINDOW_OVERLAP | ASSOCIATION | SCORE_WEIGHT | "
    print(f"\n{title}\n\n{head}" + " | ".join(present) + " |")
    print("|---" * (len(present) + 4) + "|")
    for r in rows:
        cells = [f"{r[c]:.0f}" if c == "switches" else f"{r[c]:.3f}" for c in present]
        weight = "" if r["score_weight"] is None else f"{r['score_weight']:g}"
        print(
            f"| {r['clip_length']} | {r['overlap']} | {r['association']} | {weight} | "
            + " | ".join(cells)
            + " |"
        )


def main(argv=None) -> List[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", default=DEFAULT_CONFIG)
    p.add_argument("--weights", default=None, help=f"default: the latest model_*.pth in {CONVERGENCE_DIR}")
    p.add_argument("--videos", type=int, default=6, help="videos of the long split (generated if needed)")
    p.add_argument("--seed", type=int, default=0, help="seed of the long split")
    p.add_argument("--clip-lengths", type=int, nargs="+", default=[12])
    p.add_argument("--overlaps", type=int, nargs="+", default=[0, 4])
    p.add_argument("--associations", nargs="+", default=list(ASSOCIATIONS), choices=ASSOCIATIONS)
    p.add_argument(
        "--score-weights",
        type=float,
        nargs="+",
        default=[0.0],
        help="iou_embedding: the ASSOCIATION_SCORE_WEIGHT values to run (each is one setting)",
    )
    p.add_argument(
        "--presence-threshold",
        type=float,
        default=0.5,
        help="also score the masks emptied where the chosen query's per-frame score is below this (0: off)",
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--output", default="output/long_video_association")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    weights = args.weights or latest_checkpoint(CONVERGENCE_DIR)
    ensure_long_split(MetadataCatalog.get(DATASET).root, args.videos, args.seed)
    by_video = defaultdict(list)
    for record in DatasetCatalog.get(DATASET):
        by_video[record["video_id"]].append(record)
    n_exp = sum(len(v) for v in by_video.values())
    n_frames = sum(len(v[0]["frame_names"]) for v in by_video.values())
    print(f"{weights}: {len(by_video)} videos, {n_frames} frames, {n_exp} expressions")

    associations = [
        (name, weight)
        for name in args.associations
        for weight in (args.score_weights if name == "iou_embedding" else [None])
    ]
    rows, gated_rows = [], []
    for length, overlap, (association, weight) in itertools.product(
        args.clip_lengths, args.overlaps, associations
    ):
        opts = ["MODEL.WEIGHTS", weights, "MODEL.DEVICE", "cpu", "MODEL.SOC.TEST.CLIP_LENGTH", str(length)]
        opts += ["MODEL.SOC.TEST.WINDOW_OVERLAP", str(overlap), "MODEL.SOC.TEST.ASSOCIATION", association]
        if weight is not None:
            opts += ["MODEL.SOC.TEST.ASSOCIATION_SCORE_WEIGHT", str(weight)]
        setting = {
            "clip_length": length,
            "overlap": overlap,
            "association": association,
            "score_weight": weight,
        }
        results, gated = evaluate_setting(args.config_file, opts, by_video, args.presence_threshold)
        rows.append({**setting, **results})
        if gated is not None:
            gated_rows.append({**setting, **gated})
        name = association if weight is None else f"{association} (score weight {weight:g})"
        print(f"L={length} V={overlap} {name}: J&F {results['J&F']:.3f}, {results['seconds']:.0f} s")

    os.makedirs(args.output, exist_ok=True)
    with open(os.path.join(args.output, "long_video_association.json"), "w") as f:
        json.dump(
            {
                "weights": weights,
                "videos": args.videos,
                "seed": args.seed,
                "presence_threshold": args.presence_threshold,
                "rows": rows,
                "gated_rows": gated_rows,
            },
            f,
            indent=1,
        )
    print_table(rows, "Masks as predicted:")
    if gated_rows:
        print_table(gated_rows, f"Masks emptied where the chosen query's score < {args.presence_threshold}:")
    return rows


if __name__ == "__main__":
    main()
