#!/usr/bin/env python
"""
Streaming inference: peak memory of the demo against the length of the video, and the cost of answering
several expressions at once.

1. Memory. A 640×360 synthetic video (moving shapes, H.264, written with PyAV) of each ``--frames`` length;
   ``tools/demo.py`` runs on it in a fresh child process with one expression, writing the overlay mp4 and
   the PNG masks, and the child's peak resident set size is read from ``wait4``. Goal: the longest video's
   peak within 10 % of the shortest's.
2. Expressions. ``SOCPredictor.stream`` on the ``--expression-frames`` video with 1 and with 4 expressions
   (decoding and the model, no writing), after one warm-up run; the minimum of ``--repeat`` runs. Goal: 4
   expressions ≤ 1.6 × the time of 1 (the backbone runs once per window for all of them).

The model is the synthetic instant-test config (``projects/SOC/configs/synthetic/soc_tiny_instant_test.yaml``:
Video-Swin with 24 channels, 64-pixel short side) with random weights saved to a temporary checkpoint: the
figures are the streaming machinery's, not a full-size model's. Windows: the config's CLIP_LENGTH 0, so the
predictor's default of 36 frames. Nothing is asserted; the figures are printed (and written as JSON with
``--json``).

    OMP_NUM_THREADS=1 python benchmarks/bench_streaming.py --frames 100 400 1600 --expression-frames 100
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "projects/SOC/configs/synthetic/soc_tiny_instant_test.yaml"
EXPRESSIONS = [
    "the red square",
    "the blue disc on the left",
    "the green bar",
    "the object that moves fastest",
]
HEIGHT, WIDTH = 360, 640


def write_video(path: Path, frames: int) -> None:
    """A red square, a blue disc and a green bar moving over a grey gradient, 640×360 at 25 fps."""
    import numpy as np

    from soc.utils.video_io import Mp4Writer

    ys, xs = np.mgrid[:HEIGHT, :WIDTH]
    background = np.stack([xs * 255 // WIDTH, ys * 255 // HEIGHT, np.full_like(xs, 128)], -1).astype(np.uint8)
    with Mp4Writer(str(path), fps=25) as writer:
        for t in range(frames):
            frame = background.copy()
            x = (5 * t) % (WIDTH - 60)
            frame[100:160, x : x + 60] = (220, 30, 30)
            cx, cy = WIDTH - 80 - (3 * t) % (WIDTH - 160), 250
            frame[(xs - cx) ** 2 + (ys - cy) ** 2 < 35**2] = (30, 60, 220)
            frame[20:40, (2 * t) % WIDTH :] = (40, 200, 60)
            writer.write(frame)


def save_random_weights(folder: Path) -> str:
    import torch

    from soc.checkpoint import SOCCheckpointer
    from soc.config import setup_cfg
    from soc.engine import SOCPredictor

    torch.manual_seed(0)
    model = SOCPredictor(setup_cfg(str(CONFIG), ["MODEL.DEVICE", "cpu"]), allow_random_weights=True).model
    SOCCheckpointer(model, str(folder)).save("random")
    return str(folder / "random.pth")


def demo_peak_rss(video: Path, weights: str, out: Path) -> dict:
    """Peak RSS (MB) and wall time (s) of tools/demo.py on ``video`` in a child process."""
    command = [sys.executable, str(ROOT / "tools" / "demo.py"), "--config-file", str(CONFIG)]
    command += ["--video-input", str(video), "--output", str(out), "--text", EXPRESSIONS[0]]
    command += ["--fps", "25", "--opts", "MODEL.WEIGHTS", weights, "MODEL.DEVICE", "cpu"]
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"demo failed on {video}:\n{stderr[-2000:]}")
    return {"peak_rss_mb": usage.ru_maxrss / 1024, "seconds": time.perf_counter() - start}


def _time_components(model) -> dict:
    """Seconds spent in the backbone, the text encoder and the text-dependent network (fusion, transformer,
    VOC, heads), accumulated by forward hooks; the rest of a run is decoding, resizing and post-processing."""
    totals = {"backbone": 0.0, "text encoder": 0.0, "text-dependent network": 0.0}
    started = {}
    groups = {
        "backbone": [model.backbone],
        "text encoder": [model.text_encoder],
        "text-dependent network": [model.neck, model.decoder, model.pixel_decoder, model.mask_head],
    }

    def hooks(module, name):
        def before(*_):
            started[module] = time.perf_counter()

        def after(*_):
            totals[name] += time.perf_counter() - started[module]

        module.register_forward_pre_hook(before)
        module.register_forward_hook(after)

    for name, modules in groups.items():
        for module in modules:
            hooks(module, name)
    return totals


def time_expressions(video: Path, weights: str, repeat: int) -> dict:
    """Minimum over ``repeat`` runs of SOCPredictor.stream over the whole video, with 1 and 4 expressions,
    and where the time of the fastest run went."""
    from soc.config import setup_cfg
    from soc.engine import SOCPredictor

    predictor = SOCPredictor(setup_cfg(str(CONFIG), ["MODEL.WEIGHTS", weights, "MODEL.DEVICE", "cpu"]))
    totals = _time_components(predictor.model)

    def run(expressions) -> tuple:
        for key in totals:
            totals[key] = 0.0
        start = time.perf_counter()
        for _ in predictor.stream(str(video), expressions):
            pass
        seconds = time.perf_counter() - start
        parts = dict(totals, rest=seconds - sum(totals.values()))
        return seconds, parts

    run(EXPRESSIONS[:1])  # warm-up
    results = {}
    for n in (1, 4):
        seconds, parts = min((run(EXPRESSIONS[:n]) for _ in range(repeat)), key=lambda r: r[0])
        results[n] = {"seconds": seconds, "parts": parts}
    results["ratio_4_to_1"] = results[4]["seconds"] / results[1]["seconds"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[100, 400, 1600], help="video lengths")
    parser.add_argument("--expression-frames", type=int, default=100, help="video length of the timing")
    parser.add_argument("--repeat", type=int, default=2, help="timed runs per expression count")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    import soc  # noqa: F401  (registers SOC before detectron2 is used)

    results = {"threads": os.environ.get("OMP_NUM_THREADS", "unset"), "memory": {}, "expressions": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        weights = save_random_weights(tmp)
        for n in sorted(set(args.frames) | {args.expression_frames}):
            write_video(tmp / f"video_{n}.mp4", n)
        print(f"demo peak RSS, 640x360, 1 expression (OMP_NUM_THREADS={results['threads']}):")
        for n in args.frames:
            r = demo_peak_rss(tmp / f"video_{n}.mp4", weights, tmp / f"out_{n}")
            results["memory"][n] = r
            print(f"  {n:5d} frames: {r['peak_rss_mb']:7.1f} MB   {r['seconds']:6.1f} s")
        low, high = min(args.frames), max(args.frames)
        growth = results["memory"][high]["peak_rss_mb"] / results["memory"][low]["peak_rss_mb"] - 1
        results["memory_growth"] = growth
        print(f"  {high} vs {low} frames: {100 * growth:+.1f} % (goal: within 10 %)")
        r = time_expressions(tmp / f"video_{args.expression_frames}.mp4", weights, args.repeat)
        results["expressions"] = r
        print(f"SOCPredictor.stream on {args.expression_frames} frames (minimum of {args.repeat} runs):")
        for n in (1, 4):
            parts = ", ".join(f"{k} {v:.2f} s" for k, v in r[n]["parts"].items())
            print(f"  {n} expression(s): {r[n]['seconds']:.2f} s ({parts})")
        print(f"  4 vs 1 expression: {r['ratio_4_to_1']:.2f}x (goal: <= 1.6x)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
