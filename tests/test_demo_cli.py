"""tools/demo.py: argument checks (a bad value stops at parsing, naming the argument and its range) and the
streamed run end to end on a tiny random model (outputs, and what a frame that cannot be read leaves)."""

import runpy
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from soc.checkpoint import SOCCheckpointer
from soc.config import setup_cfg
from soc.engine import SOCPredictor
from soc.utils.video_io import iter_video

ROOT = Path(__file__).resolve().parents[1]
DEMO = runpy.run_path(str(ROOT / "tools" / "demo.py"))  # the module's globals; main() is not run
BASE = ["--config-file", "c.yaml", "--video-input", "v.mp4", "--output", "out"]
CONFIG = str(ROOT / "projects/SOC/configs/synthetic/soc_tiny_instant_test.yaml")


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--text", "a dog", "--window", "-5"], "--window: must be an integer >= 1, got -5"),
        (["--text", "a dog", "--window", "0"], "--window: must be an integer >= 1, got 0"),
        (["--text", "a dog", "--every", "0"], "--every: must be an integer >= 1, got 0"),
        (["--text", "a dog", "--fps", "0"], "--fps: must be a finite number > 0, got 0"),
        (["--text", "a dog", "--fps", "nan"], "--fps: must be a finite number > 0, got nan"),
        (
            ["--text", "a dog\n1\tforged line"],
            "--text: 'a dog\\n1\\tforged line' contains control characters",
        ),
        (["--text", "\x00\x00"], "--text: '\\x00\\x00' contains control characters"),
        (["--text", "   "], "--text: the expression is empty"),
    ],
)
def test_bad_arguments_stop_at_parsing(extra, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        DEMO["get_parser"]().parse_args(BASE + extra)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_good_arguments_are_kept():
    args = DEMO["get_parser"]().parse_args(
        BASE + ["--text", "  the red car ", "--text", "a dog", "--window", "4"]
    )
    assert args.text == ["the red car", "a dog"] and args.window == 4 and args.fps == 6.0 and args.every == 1
    assert DEMO["get_parser"]().parse_args(BASE + ["--text", "a"]).window is None  # the config's


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A random tiny model saved by the checkpointer (the demo refuses to run without weights)."""
    torch.manual_seed(0)
    model = SOCPredictor(setup_cfg(CONFIG, ["MODEL.DEVICE", "cpu"]), allow_random_weights=True).model
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g))
    folder = tmp_path_factory.mktemp("weights")
    SOCCheckpointer(model, str(folder)).save("random")
    return str(folder / "random.pth")


def frame_folder(folder: Path, n: int) -> np.ndarray:
    frames = np.random.default_rng(0).integers(0, 256, (n, 40, 60, 3), dtype=np.uint8)
    folder.mkdir()
    for t, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{t:05d}.png")
    return frames


def run_demo(video: Path, out: Path, weights: str, *extra: str) -> None:
    DEMO["main"](
        ["--config-file", CONFIG, "--video-input", str(video), "--output", str(out), "--text", "a dog"]
        + ["--text", "the red car", *extra, "--opts", "MODEL.WEIGHTS", weights, "MODEL.DEVICE", "cpu"]
    )


def test_demo_writes_what_the_predictor_returns(tmp_path, weights, capsys):
    """7 frames in windows of 3 (``--window`` overrides CLIP_LENGTH): PNGs equal to SOCPredictor's masks."""
    frames = frame_folder(tmp_path / "frames", 7)
    run_demo(tmp_path / "frames", tmp_path / "out", weights, "--window", "3")
    assert "wrote 7 frames x 2 expression(s)" in capsys.readouterr().out
    out = tmp_path / "out"
    assert (out / "expressions.txt").read_text() == "0\ta dog\n1\tthe red car\n"
    assert not (out / "overlay.gif").exists()
    assert len(list(iter_video(str(out / "overlay.mp4")))) == 7
    cfg = setup_cfg(
        CONFIG, ["MODEL.WEIGHTS", weights, "MODEL.DEVICE", "cpu", "MODEL.SOC.TEST.CLIP_LENGTH", "3"]
    )
    expected = SOCPredictor(cfg)(frames, ["a dog", "the red car"])
    for k in range(2):
        pngs = sorted((out / "masks" / str(k)).iterdir())
        assert [p.name for p in pngs] == [f"{t:05d}.png" for t in range(7)]
        written = np.stack([np.asarray(Image.open(p)) for p in pngs]) > 0
        np.testing.assert_array_equal(written, expected[k]["pred_masks"])


def test_an_unreadable_frame_stops_the_demo_and_says_what_was_written(tmp_path, weights):
    """Frame 5 is corrupt; windows of 3: frames 0-2 are written, the window [3, 6) cannot be completed."""
    frame_folder(tmp_path / "frames", 8)
    (tmp_path / "frames" / "00005.png").write_bytes(b"broken")
    with pytest.raises(OSError) as info:
        run_demo(tmp_path / "frames", tmp_path / "out", weights, "--window", "3")
    message = str(info.value)
    assert "cannot read frame 5" in message
    assert "holds the outputs of frames 0-2 (overlay.mp4, masks/<k>/00000.png to 00002.png)" in message
    assert sorted(p.name for p in (tmp_path / "out" / "masks" / "1").iterdir()) == [
        "00000.png",
        "00001.png",
        "00002.png",
    ]
    assert len(list(iter_video(str(tmp_path / "out" / "overlay.mp4")))) == 3  # closed, playable


def test_the_demo_needs_weights_and_frames(tmp_path, weights):
    frame_folder(tmp_path / "frames", 2)
    with pytest.raises(ValueError, match="MODEL.WEIGHTS is empty"):
        run_demo(tmp_path / "frames", tmp_path / "out", "")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no frames"):
        run_demo(tmp_path / "empty", tmp_path / "out", weights)
