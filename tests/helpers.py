"""Helpers shared by several test files (imported as ``helpers``; pytest puts ``tests/`` on the path)."""

import os

import numpy as np
import torch
from torch import nn


def sq(r0, r1, c0, c1, n=5):
    """Filled rectangle rows r0:r1, cols c0:c1 (end-exclusive) in an n×n frame."""
    m = np.zeros((n, n), bool)
    m[r0:r1, c0:c1] = True
    return m


# The ground-truth masks of the worked examples of docs/formats_and_metrics.md §6.
G = sq(1, 4, 1, 4)
Z = np.zeros((5, 5), bool)


def perturb_parameters(model: nn.Module, seed: int = 1, scale: float = 0.02) -> nn.Module:
    """Add ``scale``·N(0, 1) (generator seeded ``seed``) to every parameter, as the parity bundle does: the
    initialisation leaves many tensors zero or constant, which makes every query alike and hides wiring
    mistakes. Returns ``model``."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return model


def tree(folder) -> dict:
    """Relative path -> bytes of every file under ``folder`` but ``submission.zip`` (its entries carry
    times)."""
    return {
        os.path.relpath(os.path.join(d, n), folder): open(os.path.join(d, n), "rb").read()
        for d, _, names in os.walk(folder)
        for n in names
        if n != "submission.zip"
    }
