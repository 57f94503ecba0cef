"""Training curves from detectron2's ``metrics.json`` (one JSON object per logged iteration)."""

import json
from typing import Dict, List, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_metrics(path: str) -> List[Dict[str, float]]:
    """The logged records of a ``metrics.json``, in order (a truncated last line, as a crash leaves, is
    skipped)."""
    records = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return records


def plot_curves(records: Sequence[Dict[str, float]], out_png: str, keys: Sequence[str] = ()) -> None:
    """Plot ``total_loss`` (left) and the main-layer loss terms (right) against the iteration."""
    train = [r for r in records if "total_loss" in r]
    if not train:
        raise ValueError("no training record with total_loss in the metrics")
    keys = list(keys) or sorted(
        k for k in train[-1] if k.startswith("loss_") and not k.rsplit("_", 1)[-1].isdigit()
    )
    it = [r["iteration"] for r in train]
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4))
    ax0.plot(it, [r["total_loss"] for r in train])
    ax0.set(title="total loss (weighted sum, all layers)", xlabel="iteration")
    for k in keys:
        ax1.plot(it, [r.get(k, float("nan")) for r in train], label=k)
    ax1.set(title="loss terms of the last decoder layer", xlabel="iteration", yscale="log")
    ax1.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
