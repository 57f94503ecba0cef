#!/usr/bin/env python
"""
Times multi-scale deformable attention on the CPU: the compiled kernel (``soc._C``) against the PyTorch
reference, forward and forward+backward, at SOC's shapes.

Shapes: a clip of ``--frames`` frames at 360×640, feature levels at strides 8, 16, 32, 64 (45×80, 23×40,
12×20, 6×10, S = 4820 positions), d_model 256 in 8 heads (D = 32), 4 levels × 4 points.
``encoder``: every position of every level is a query (Lq = S); ``decoder``: ``--queries`` queries per frame.
Locations are each query's reference point plus offsets of about two pixels of each level, as in a trained
model (the encoder's reference is the query's own pixel, the decoder's a random point).

Each configuration runs in a fresh subprocess so that its peak memory can be read from ``ru_maxrss``:
"peak MB" is the highest resident set size during the runs minus the resident set size just before them
(inputs allocated), i.e. the memory the op and its autograd graph add. Times are the median and the minimum
of ``--repeat`` runs after one warm-up run; the minimum is the steadier figure on a shared machine.

    python benchmarks/ms_deform_attn.py --threads 2 --repeat 3
"""

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time

STRIDES = (8, 16, 32, 64)
HEIGHT, WIDTH = 360, 640
HEADS, HEAD_DIM, POINTS = 8, 32, 4
BACKENDS = ("kernel", "reference")
MODES = ("forward", "forward+backward")


def _level_shapes():
    return [(math.ceil(HEIGHT / s), math.ceil(WIDTH / s)) for s in STRIDES]


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _make_inputs(shape: str, frames: int, queries: int):
    import torch

    g = torch.Generator().manual_seed(0)
    shapes = torch.tensor(_level_shapes(), dtype=torch.long)
    areas = shapes.prod(1)
    starts = torch.cat([areas.new_zeros(1), areas.cumsum(0)[:-1]])
    S, L = int(areas.sum()), len(STRIDES)
    if shape == "encoder":
        # Reference point of every query: the centre of its own pixel.
        refs = []
        for h, w in shapes.tolist():
            ys, xs = torch.meshgrid((torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w, indexing="ij")
            refs.append(torch.stack([xs, ys], -1).view(-1, 2))
        ref = torch.cat(refs).expand(frames, S, 2)
    else:
        ref = torch.rand(frames, queries, 2, generator=g)
    Lq = ref.shape[1]
    value = torch.randn(frames, S, HEADS, HEAD_DIM, generator=g)
    pixel = torch.stack([1.0 / shapes[:, 1], 1.0 / shapes[:, 0]], -1).view(1, 1, 1, L, 1, 2)
    loc = torch.randn(frames, Lq, HEADS, L, POINTS, 2, generator=g).mul_(2.0 * pixel)
    loc.add_(ref.reshape(frames, Lq, 1, 1, 1, 2))
    weights = (
        torch.randn(frames, Lq, HEADS, L * POINTS, generator=g).softmax(-1).view(frames, Lq, HEADS, L, POINTS)
    )
    return value, shapes, starts, loc, weights


def _worker(
    shape: str, backend: str, mode: str, frames: int, queries: int, threads: int, repeat: int
) -> dict:
    import torch

    from soc.layers import ms_deform_attn

    torch.set_num_threads(threads)
    value, shapes, starts, loc, weights = _make_inputs(shape, frames, queries)
    backward = mode == "forward+backward"
    for t in (value, loc, weights):
        t.requires_grad_(backward)

    def run():
        out = ms_deform_attn(value, shapes, starts, loc, weights, backend=backend)
        if backward:
            out.backward(torch.ones_like(out))
            for t in (value, loc, weights):
                t.grad = None

    with torch.no_grad() if not backward else torch.enable_grad():
        rss_before = _rss_bytes()
        run()  # warm-up
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    return {
        "seconds": statistics.median(times),
        "min_seconds": min(times),
        "peak_mb": max(0, peak - rss_before) / 2**20,
        "Lq": loc.shape[1],
        "S": value.shape[1],
    }


def _run_config(args, shape: str, backend: str, mode: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    env.pop("SOC_MS_DEFORM_ATTN", None)
    cmd = [
        sys.executable, os.path.abspath(__file__), "--worker", shape, backend, mode,
        "--frames", str(args.frames), "--queries", str(args.queries),
        "--threads", str(args.threads), "--repeat", str(args.repeat),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark worker {shape}/{backend}/{mode} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads (torch and OpenMP)")
    parser.add_argument(
        "--repeat", type=int, default=3, help="timed runs per configuration (median reported)"
    )
    parser.add_argument("--frames", type=int, default=8, help="frames per clip (the batch N)")
    parser.add_argument("--queries", type=int, default=20, help="decoder queries per frame")
    parser.add_argument("--shapes", nargs="+", default=["encoder", "decoder"], choices=["encoder", "decoder"])
    parser.add_argument("--worker", nargs=3, metavar=("SHAPE", "BACKEND", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        shape, backend, mode = args.worker
        print(json.dumps(_worker(shape, backend, mode, args.frames, args.queries, args.threads, args.repeat)))
        return

    import torch

    from soc import _C

    print(
        f"torch {torch.__version__}, {args.threads} thread(s), CPU kernel loops: {_C.cpu_isa()}, "
        f"levels {_level_shapes()}, N={args.frames}, M={HEADS}, D={HEAD_DIM}, P={POINTS}, "
        f"repeat={args.repeat}"
    )
    header = f"{'shape':8} {'Lq':>5} {'mode':17} {'kernel ms med (min)':>20} {'reference ms med (min)':>23} "
    header += f"{'speed-up med (min)':>19} {'kernel peak MB':>15} {'reference peak MB':>18}"
    print(header)
    results = {}
    for shape in args.shapes:
        for mode in MODES:
            r = {b: _run_config(args, shape, b, mode) for b in BACKENDS}
            results[shape, mode] = r
            k, ref = r["kernel"], r["reference"]
            kt = f"{1e3 * k['seconds']:.1f} ({1e3 * k['min_seconds']:.1f})"
            rt = f"{1e3 * ref['seconds']:.1f} ({1e3 * ref['min_seconds']:.1f})"
            su = f"{ref['seconds'] / k['seconds']:.1f}x ({ref['min_seconds'] / k['min_seconds']:.1f}x)"
            print(
                f"{shape:8} {k['Lq']:>5} {mode:17} {kt:>20} {rt:>23} {su:>19} "
                f"{k['peak_mb']:>15.1f} {ref['peak_mb']:>18.1f}"
            )
    if ("encoder", "forward+backward") in results:
        r = results["encoder", "forward+backward"]
        speedup = min(
            r["reference"]["seconds"] / r["kernel"]["seconds"],
            r["reference"]["min_seconds"] / r["kernel"]["min_seconds"],
        )
        ok = speedup >= 4 and r["kernel"]["peak_mb"] <= r["reference"]["peak_mb"]
        print(
            "goal (encoder forward+backward: kernel >= 4x faster by median and minimum, memory no higher): "
            f"{'met' if ok else 'NOT met'} (>= {speedup:.1f}x, {r['kernel']['peak_mb']:.0f} MB vs "
            f"{r['reference']['peak_mb']:.0f} MB)"
        )


if __name__ == "__main__":
    main()
