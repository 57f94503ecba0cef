"""tools/gradio_app.py's handler, called as a plain function on a generated video (no gradio, no server)."""

import runpy
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from soc.config import setup_cfg
from soc.engine import SOCPredictor
from soc.utils.video_io import iter_video, write_mp4

ROOT = Path(__file__).resolve().parents[1]
APP = runpy.run_path(str(ROOT / "tools" / "gradio_app.py"))  # the module's globals; main() is not run
CONFIG = str(ROOT / "projects/SOC/configs/synthetic/soc_tiny_instant_test.yaml")


@pytest.fixture(scope="module")
def predictor():
    torch.manual_seed(0)
    return SOCPredictor(setup_cfg(CONFIG, ["MODEL.DEVICE", "cpu"]), allow_random_weights=True)


def test_segment_writes_the_overlay_and_a_zip_of_the_masks(tmp_path, predictor):
    frames = np.random.default_rng(0).integers(0, 256, (5, 40, 60, 3), dtype=np.uint8)
    write_mp4(frames, str(tmp_path / "upload.mp4"), fps=10)
    out = tmp_path / "out"
    overlay, archive = APP["segment"](
        predictor, str(tmp_path / "upload.mp4"), "a dog\n\n the red car \n", 0.0, str(out)
    )
    assert len(list(iter_video(overlay))) == 5
    names = sorted(zipfile.ZipFile(archive).namelist())
    pngs = [n for n in names if n.endswith(".png")]
    assert len(pngs) == 10 and "Annotations/upload/1/00004.png" in pngs
    assert (out / "predictions.json").is_file()


def test_segment_names_what_is_missing(tmp_path, predictor):
    with pytest.raises(ValueError, match="at least one expression"):
        APP["segment"](predictor, str(tmp_path / "x.mp4"), " \n ", 0.0, str(tmp_path))
    with pytest.raises(ValueError, match="upload a video first"):
        APP["segment"](predictor, None, "a dog", 0.0, str(tmp_path))
    with pytest.raises(ValueError, match=r"threshold must be in \[0, 1\]"):
        APP["segment"](predictor, str(ROOT / "README.md"), "a dog", 2.0, str(tmp_path))
