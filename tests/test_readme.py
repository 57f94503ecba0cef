"""The README's Python API snippet runs as written (on a tiny model, its weights and a generated video)."""

import contextlib
import io
import re
from pathlib import Path

import numpy as np
import torch
from detectron2.modeling import build_model

from soc.checkpoint import SOCCheckpointer
from soc.config import setup_cfg
from soc.utils.video_io import write_mp4

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "projects/SOC/configs/synthetic/soc_tiny_instant_test.yaml"


def test_python_api_snippet(tmp_path):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Python API") :]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    # the snippet's inputs, made here: a tiny model's weights and a short video
    torch.manual_seed(0)
    SOCCheckpointer(build_model(setup_cfg(str(TINY))), str(tmp_path)).save("tiny")
    frames = np.random.default_rng(0).integers(0, 256, (5, 48, 64, 3), dtype=np.uint8)
    write_mp4(frames, str(tmp_path / "video.mp4"))
    code = snippet.replace('"projects/SOC/configs/ref_ytvos/soc_swin_t_joint.yaml"', repr(str(TINY)))
    code = code.replace('"model.pth"', repr(str(tmp_path / "tiny.pth"))).replace(
        '"video.mp4"', repr(str(tmp_path / "video.mp4"))
    )
    assert code != snippet
    scope: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), scope)
    printed = out.getvalue().splitlines()
    assert len(printed) == 2 and printed[0].startswith("the dog on the left (5, 48, 64) float16 (5, 4)")
    assert len(scope["predictions"]) == 2 and len(scope["instances"]) == 2
    assert scope["instances"].image_size == (48, 64)
