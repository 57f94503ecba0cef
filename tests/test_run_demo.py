"""tools/run_demo.py (the `make demo` job) end to end with a few iterations on a tiny SynthRVOS."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "projects/SOC/configs/synthetic/soc_tiny_instant_test.yaml"


def test_run_demo_writes_the_summary_and_evaluates_once(tmp_path):
    out = tmp_path / "demo"
    env = dict(os.environ, SOC_DATASETS=str(tmp_path / "datasets"), OMP_NUM_THREADS="2")
    cmd = [
        sys.executable,
        str(ROOT / "tools/run_demo.py"),
        "--config-file",
        str(CONFIG),
        "--output",
        str(out),
    ]
    cmd += ["--train-videos", "3", "--valid-videos", "2", "--overlays", "1"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]

    summary = json.loads((out / "summary.json").read_text())
    for key in ("J&F", "J", "F"):
        assert 0.0 <= summary[key] <= 1.0
    assert abs(summary["J&F"] - (summary["J"] + summary["F"]) / 2) < 1e-9
    assert set(summary["temporal"]) <= {"J&F", "J", "F"}
    assert summary["iterations"] == 4  # SOLVER.MAX_ITER of the instant config
    assert summary["train_seconds"] > 0 and summary["eval_seconds"] > 0
    for key in ("checkpoint", "metrics", "training_curves", "log"):
        assert Path(summary["files"][key]).is_file(), key
    assert len(summary["files"]["overlays"]) == 1 and Path(summary["files"]["overlays"][0]).is_file()
    # the valid split is evaluated once, after training (not also by DefaultTrainer's end-of-training hook)
    assert (out / "log.txt").read_text().count("per-expression J&F over") == 1
    assert "SOC demo: J&F" in proc.stdout
