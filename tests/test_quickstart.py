"""docs/quickstart.ipynb runs as written: its code cells are executed in order, as Jupyter would (slow: it
trains a tiny model for a minute)."""

import contextlib
import io
import json
from pathlib import Path

import matplotlib
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "docs" / "quickstart.ipynb"


@pytest.mark.slow
def test_quickstart_notebook_runs(monkeypatch, tmp_path):
    matplotlib.use("Agg")
    monkeypatch.setattr("tempfile.mkdtemp", lambda prefix="": str(tmp_path))
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    scope: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for i, cell in enumerate(c for c in cells if c["cell_type"] == "code"):
            exec(compile("".join(cell["source"]), f"quickstart.ipynb, code cell {i}", "exec"), scope)
    assert all(not c.get("outputs") for c in cells if c["cell_type"] == "code")  # committed without outputs
    # the notebook's results: one prediction per sentence, at the frames' size, scored against the truth
    frames = scope["meta"]["frames"]
    assert len(scope["predictions"]) == len(scope["expressions"]) >= 1
    for p in scope["predictions"]:
        assert p["pred_masks"].shape[0] == len(frames) and p["pred_masks"].dtype == bool
    assert len(scope["instances"]) == len(scope["expressions"])
    assert scope["drawn"].shape == scope["frame"].shape
    assert all(0.0 <= j <= 1.0 for j in scope["ious"].values())
    printed = out.getvalue()
    assert "synthetic/soc_tiny_synth" in printed and "J = " in printed
    assert np.isfinite(scope["trainer"].storage.history("total_loss").latest())
