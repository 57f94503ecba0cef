"""Helpers shared by several test files (imported as ``helpers``; pytest puts ``tests/`` on the path)."""

import numpy as np


def sq(r0, r1, c0, c1, n=5):
    """Filled rectangle rows r0:r1, cols c0:c1 (end-exclusive) in an n×n frame."""
    m = np.zeros((n, n), bool)
    m[r0:r1, c0:c1] = True
    return m


# The ground-truth masks of the worked examples of docs/formats_and_metrics.md §6.
G = sq(1, 4, 1, 4)
Z = np.zeros((5, 5), bool)
