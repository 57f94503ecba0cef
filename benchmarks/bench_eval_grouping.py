#!/usr/bin/env python
"""
Ref-YouTube-VOS-style evaluation with a video's expressions grouped into one test sample (the backbone runs
once per video, the text-dependent network once for all of its expressions) against one sample per
expression (the backbone runs once per expression).

What runs is ``Trainer.test`` for one dataset: ``Trainer.build_test_loader``
(``TEST.MAX_EXPRESSIONS_PER_SAMPLE`` 0 = grouped, 1 = ungrouped), ``Trainer.build_evaluator``
(``RefVOSEvaluator``: per-expression J&F and the submission PNGs + zip) and detectron2's
``inference_on_dataset``, on a SynthRVOS valid split (ytvos format) generated into a temporary folder. Each
mode runs once to warm up, then ``--repeat`` times, alternating the modes; the minimum wall time of each is
reported, with the backbone's passes and time (forward hooks) and the ratio ungrouped / grouped. The J&F of
both modes is printed too (equal up to float32 rounding).

Grouping saves the backbone passes of all but one expression of a video and the decoding of its frames for
each of them; what remains per expression is the text-dependent network, post-processing and the
evaluator. The model is the synthetic config (default ``soc_tiny_instant_test.yaml``: Video-Swin with 24
channels, 64-pixel short side) with random weights, on the CPU, so the figures are the pipeline's on a small
model, not a full-size model's. Nothing is asserted.

    OMP_NUM_THREADS=1 python benchmarks/bench_eval_grouping.py --videos 6 --frames 6 10 --repeat 3
"""

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "projects/SOC/configs/synthetic/soc_tiny_instant_test.yaml"
MODES = {"ungrouped": 1, "grouped": 0}  # TEST.MAX_EXPRESSIONS_PER_SAMPLE


class BackboneTimer:
    """Number of backbone passes and the seconds spent in them (pre/post forward hooks)."""

    def __init__(self, backbone):
        self.calls, self.seconds, self._start = 0, 0.0, 0.0
        backbone.register_forward_pre_hook(self._before)
        backbone.register_forward_hook(self._after)

    def reset(self) -> None:
        self.calls, self.seconds = 0, 0.0

    def _before(self, module, args) -> None:
        self._start = time.perf_counter()

    def _after(self, module, args, out) -> None:
        self.calls += 1
        self.seconds += time.perf_counter() - self._start


def run_once(model, cfg, dataset_name: str, output_dir: str, timer: BackboneTimer) -> dict:
    """One ``Trainer.test``-like evaluation: wall time, backbone passes and time, samples, results."""
    from detectron2.evaluation import inference_on_dataset

    from soc.engine import Trainer

    loader = Trainer.build_test_loader(cfg, dataset_name)
    evaluator = Trainer.build_evaluator(cfg, dataset_name, output_dir)
    timer.reset()
    start = time.perf_counter()
    results = inference_on_dataset(model, loader, evaluator)
    return {
        "seconds": time.perf_counter() - start,
        "backbone_seconds": timer.seconds,
        "backbone_passes": timer.calls,
        "samples": len(loader),
        "results": results.get("refvos", {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config-file", default=str(CONFIG))
    parser.add_argument("--videos", type=int, default=6, help="SynthRVOS valid videos (with masks)")
    parser.add_argument("--frames", type=int, nargs=2, default=(6, 10), help="min, max frames per video")
    parser.add_argument("--size", type=int, nargs=2, default=(96, 160), help="frame height, width (pixels)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per mode (after one warm-up)")
    parser.add_argument("--seed", type=int, default=0, help="SynthRVOS seed")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    args = parser.parse_args()

    import soc  # noqa: F401  (before detectron2, see soc/__init__.py)
    import torch
    from detectron2.data import DatasetCatalog
    from detectron2.modeling import build_model

    from soc.config import setup_cfg
    from soc.data import register_ref_ytvos
    from soc.data.synthetic import generate

    cfgs = {}
    for mode, k in MODES.items():
        cfgs[mode] = setup_cfg(
            args.config_file, ["MODEL.DEVICE", "cpu", *args.opts, "TEST.MAX_EXPRESSIONS_PER_SAMPLE", str(k)]
        )
    torch.manual_seed(0)
    model = build_model(cfgs["grouped"]).eval()
    timer = BackboneTimer(model.backbone)
    with tempfile.TemporaryDirectory() as tmp:
        generate(
            tmp,
            "ytvos",
            args.videos,
            args.seed,
            frames=tuple(args.frames),
            size=tuple(args.size),
            split="valid",
            progress=False,
        )
        name = f"bench_eval_grouping_{uuid.uuid4().hex[:8]}"
        register_ref_ytvos(name, tmp, "valid")
        records = DatasetCatalog.get(name)
        videos = len({r["video_id"] for r in records})
        runs = {mode: [] for mode in MODES}
        for i in range(args.repeat + 1):  # run 0 warms up
            for mode in MODES:
                run = run_once(model, cfgs[mode], name, f"{tmp}/out_{mode}_{i}", timer)
                if i > 0:
                    runs[mode].append(run)
    best = {mode: min(r, key=lambda x: x["seconds"]) for mode, r in runs.items()}
    print(
        f"SynthRVOS valid: {videos} videos, {len(records)} expressions "
        f"({len(records) / videos:.1f} per video), "
        f"{args.frames[0]}-{args.frames[1]} frames of {args.size[0]}x{args.size[1]}; "
        f"{Path(args.config_file).name}, {torch.get_num_threads()} thread(s); min of {args.repeat} run(s)"
    )
    print(
        f"{'mode':<10} {'samples':>7} {'backbone':>8} {'time (s)':>9} {'backbone (s)':>12} {'s/expr':>7}  J&F"
    )
    for mode, r in best.items():
        print(
            f"{mode:<10} {r['samples']:>7} {r['backbone_passes']:>8} {r['seconds']:>9.2f} "
            f"{r['backbone_seconds']:>12.2f} {r['seconds'] / len(records):>7.3f}  {r['results'].get('J&F')}"
        )
    ratio = best["ungrouped"]["seconds"] / best["grouped"]["seconds"]
    print(f"ungrouped / grouped time: {ratio:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"videos": videos, "expressions": len(records), "runs": runs, "ratio": ratio}, f, indent=1
            )


if __name__ == "__main__":
    main()
