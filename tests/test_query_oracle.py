"""benchmarks/query_oracle_synth.py: selected, best-query and best-per-frame J of one expression by hand."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "query_oracle_synth.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("query_oracle_synth", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_expression_stats_by_hand(bench):
    """Frame 0 shows the object at (0, 0), frame 1 shows nothing. Query 0: exact in frame 0 (J 1), a stray
    pixel in frame 1 (J 0), mean 0.5. Query 1: twice the object in frame 0 (J 0.5), empty in frame 1 (J 1),
    mean 0.75. The model selected query 0."""
    gt = np.zeros((2, 2, 2), dtype=bool)
    gt[0, 0, 0] = True
    q = np.zeros((2, 2, 2, 2), dtype=bool)  # T, N, H, W
    q[0, 0, 0, 0] = True
    q[1, 0, 1, 1] = True
    q[0, 1, 0, :] = True
    got = bench.expression_stats(gt, q, q[:, 0])
    assert got == {
        "selected": [0.5],
        "best_query": [0.75],
        "chose_best": [0.0],
        "selected_present": [1.0],
        "best_query_present": [0.5],
        "best_per_frame_present": [1.0],
        "selected_absent": [0.0],
    }
    assert bench.expression_stats(gt, q, q[:, 1])["chose_best"] == [1.0]
