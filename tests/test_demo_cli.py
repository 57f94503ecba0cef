"""soc-demo (tools/demo.py): argument checks (a bad value stops at parsing, naming the argument and its
range) and streamed runs end to end on a tiny random model: the Annotations tree, predictions.json, overlays
at the source's frame rate, several videos with one model, and what a frame that cannot be read leaves."""

import json
import logging
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import pycocotools.mask as mask_util
from soc.checkpoint import SOCCheckpointer
from soc.cli import demo
from soc.config import setup_cfg
from soc.engine import SOCPredictor
from soc.utils.video_io import iter_video, video_rate, write_mp4

from helpers import perturb_parameters

ROOT = Path(__file__).resolve().parents[1]
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
        (
            ["--text", "a", "--score-threshold", "2"],
            "--score-threshold: must be a probability in [0, 1], got 2",
        ),
    ],
)
def test_bad_arguments_stop_at_parsing(extra, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        demo.get_parser().parse_args(BASE + extra)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_good_arguments_are_kept():
    args = demo.get_parser().parse_args(
        BASE + ["--text", "  the red car ", "--text", "a dog", "--window", "4"]
    )
    assert args.text == ["the red car", "a dog"] and args.window == 4 and args.fps is None and args.every == 1
    assert args.input == ["v.mp4"] and args.score_threshold == 0.0 and not args.gif
    assert demo.get_parser().parse_args(BASE + ["--text", "a"]).window is None  # the config's


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A random tiny model saved by the checkpointer (the demo refuses to run without weights)."""
    torch.manual_seed(0)
    model = SOCPredictor(setup_cfg(CONFIG, ["MODEL.DEVICE", "cpu"]), allow_random_weights=True).model
    perturb_parameters(model)
    folder = tmp_path_factory.mktemp("weights")
    SOCCheckpointer(model, str(folder)).save("random")
    return str(folder / "random.pth")


def frame_folder(folder: Path, n: int, seed: int = 0) -> np.ndarray:
    frames = np.random.default_rng(seed).integers(0, 256, (n, 40, 60, 3), dtype=np.uint8)
    folder.mkdir()
    for t, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{t:05d}.png")
    return frames


def run_demo(inputs, out: Path, weights: str, *extra: str) -> dict:
    args = demo.get_parser().parse_args(
        ["--config-file", CONFIG, "--input", *map(str, inputs), "--output", str(out)]
        + [*extra, "--opts", "MODEL.WEIGHTS", weights, "MODEL.DEVICE", "cpu"]
    )
    return demo.run(args)


TEXTS = ("--text", "a dog", "--text", "the red car")


def test_demo_writes_what_the_predictor_returns(tmp_path, weights, capsys):
    """7 frames in windows of 3 (``--window`` overrides CLIP_LENGTH): the Annotations PNGs equal
    SOCPredictor's masks, and predictions.json's RLEs decode to exactly those PNGs."""
    frames = frame_folder(tmp_path / "clip", 7)
    predictions = run_demo([tmp_path / "clip"], tmp_path / "out", weights, *TEXTS, "--window", "3")
    assert "wrote 1 video(s), 14 masks" in capsys.readouterr().out
    out = tmp_path / "out"
    assert not (out / "overlays" / "clip.gif").exists()
    assert len(list(iter_video(str(out / "overlays" / "clip.mp4")))) == 7
    assert video_rate(str(out / "overlays" / "clip.mp4")) == demo.FOLDER_FPS
    cfg = setup_cfg(
        CONFIG, ["MODEL.WEIGHTS", weights, "MODEL.DEVICE", "cpu", "MODEL.SOC.TEST.CLIP_LENGTH", "3"]
    )
    expected = SOCPredictor(cfg)(frames, ["a dog", "the red car"])
    stored = json.loads((out / "predictions.json").read_text())
    assert stored == predictions and list(stored["clip"]) == ["0", "1"]
    for k in range(2):
        pngs = sorted((out / "Annotations" / "clip" / str(k)).iterdir())
        assert [p.name for p in pngs] == [f"{t:05d}.png" for t in range(7)]
        written = np.stack([np.asarray(Image.open(p)) for p in pngs]) > 0
        np.testing.assert_array_equal(written, expected[k]["pred_masks"])
        entry = stored["clip"][str(k)]
        assert entry["expression"] == ["a dog", "the red car"][k]
        decoded = np.stack([mask_util.decode(f["rle"]) for f in entry["frames"]]).astype(bool)
        np.testing.assert_array_equal(decoded, written)
        np.testing.assert_allclose([f["score"] for f in entry["frames"]], expected[k]["scores"], atol=1e-6)
        assert entry["score"] == pytest.approx(float(np.mean(expected[k]["scores"])), abs=1e-5)
        for f, m in zip(entry["frames"], written):
            assert (f["box"] is None) == (not m.any())


def test_overlay_keeps_the_sources_exact_frame_rate(tmp_path, weights):
    frames = np.random.default_rng(2).integers(0, 256, (6, 40, 60, 3), dtype=np.uint8)
    write_mp4(frames, str(tmp_path / "ntsc.mp4"), fps=Fraction(30000, 1001))
    assert video_rate(str(tmp_path / "ntsc.mp4")) == Fraction(30000, 1001)
    run_demo([tmp_path / "ntsc.mp4"], tmp_path / "a", weights, "--text", "a dog", "--gif")
    assert video_rate(str(tmp_path / "a" / "overlays" / "ntsc.mp4")) == Fraction(30000, 1001)
    assert (tmp_path / "a" / "overlays" / "ntsc.gif").is_file()
    run_demo([tmp_path / "ntsc.mp4"], tmp_path / "b", weights, "--text", "a dog", "--every", "2")
    assert video_rate(str(tmp_path / "b" / "overlays" / "ntsc.mp4")) == Fraction(15000, 1001)
    assert sorted(p.name for p in (tmp_path / "b" / "Annotations" / "ntsc" / "0").iterdir()) == [
        "00000.png",
        "00001.png",
        "00002.png",
    ]


def test_several_videos_with_their_own_expressions_and_one_model(tmp_path, weights, monkeypatch):
    (tmp_path / "videos").mkdir()
    frame_folder(tmp_path / "videos" / "cat", 3, seed=1)
    frame_folder(tmp_path / "videos" / "dog", 4, seed=2)
    meta = {
        "videos": {
            "cat": {"expressions": {"7": {"exp": "the cat"}}},
            "dog": {"expressions": {"0": {"exp": "a dog"}, "3": {"exp": "the ball"}}},
        }
    }
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    built = []
    original = SOCPredictor.__init__
    monkeypatch.setattr(
        SOCPredictor, "__init__", lambda self, *a, **k: (built.append(1), original(self, *a, **k))[1]
    )
    predictions = run_demo(
        [tmp_path / "videos" / "*"], tmp_path / "out", weights, "--expressions", str(tmp_path / "meta.json")
    )
    assert built == [1]
    assert {v: list(e) for v, e in predictions.items()} == {"cat": ["7"], "dog": ["0", "3"]}
    assert len(predictions["dog"]["3"]["frames"]) == 4
    assert sorted(p.name for p in (tmp_path / "out" / "Annotations" / "dog").iterdir()) == ["0", "3"]
    # the tree is the Ref-YouTube-VOS layout that soc-eval-jf scores: scored against itself, J&F is 1
    res = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "eval_jf.py"), "--pred", str(tmp_path / "out" / "Annotations")]
        + ["--gt", str(tmp_path / "out" / "Annotations")],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    assert "3 expressions: J&F 1.000000" in res.stdout


def test_score_threshold_blanks_low_frames(tmp_path, weights):
    frame_folder(tmp_path / "clip", 4)
    low = run_demo([tmp_path / "clip"], tmp_path / "a", weights, "--text", "a dog", "--score-threshold", "0")
    high = run_demo([tmp_path / "clip"], tmp_path / "b", weights, "--text", "a dog", "--score-threshold", "1")
    assert all(f["box"] is None for f in high["clip"]["0"]["frames"])  # no presence score reaches 1
    pngs = sorted((tmp_path / "b" / "Annotations" / "clip" / "0").iterdir())
    assert not any(np.asarray(Image.open(p)).any() for p in pngs)
    assert [f["score"] for f in low["clip"]["0"]["frames"]] == [
        f["score"] for f in high["clip"]["0"]["frames"]
    ]


def test_an_unreadable_frame_stops_the_demo_and_says_what_was_written(tmp_path, weights):
    """Frame 5 is corrupt; windows of 3: frames 0-2 are written, the window [3, 6) cannot be completed."""
    frame_folder(tmp_path / "clip", 8)
    (tmp_path / "clip" / "00005.png").write_bytes(b"broken")
    with pytest.raises(OSError) as info:
        run_demo([tmp_path / "clip"], tmp_path / "out", weights, *TEXTS, "--window", "3")
    message = str(info.value)
    assert "cannot read frame 5" in message
    assert "holds the outputs of clip's frames 0-2 (overlays/clip.mp4, Annotations/clip/<exp_id>/)" in message
    assert sorted(p.name for p in (tmp_path / "out" / "Annotations" / "clip" / "1").iterdir()) == [
        "00000.png",
        "00001.png",
        "00002.png",
    ]
    assert len(list(iter_video(str(tmp_path / "out" / "overlays" / "clip.mp4")))) == 3  # closed, playable


def test_bad_inputs_are_named(tmp_path, weights):
    frame_folder(tmp_path / "clip", 2)
    with pytest.raises(ValueError, match="MODEL.WEIGHTS is empty"):
        run_demo([tmp_path / "clip"], tmp_path / "out", "", "--text", "a dog")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no frames"):
        run_demo([tmp_path / "empty"], tmp_path / "out", weights, "--text", "a dog")
    with pytest.raises(FileNotFoundError, match="matches nothing"):
        run_demo([tmp_path / "nothing*"], tmp_path / "out", weights, "--text", "a dog")
    (tmp_path / "meta.json").write_text(json.dumps({"videos": {"other": {}}}))
    with pytest.raises(ValueError, match="no entry for video 'clip'"):
        run_demo([tmp_path / "clip"], tmp_path / "out", weights, "--expressions", str(tmp_path / "meta.json"))
    (tmp_path / "meta.json").write_text(
        json.dumps({"videos": {"clip": {"expressions": {"../x": {"exp": "a"}}}}})
    )
    with pytest.raises(ValueError, match="expression id '../x' of 'clip' contains a path separator"):
        run_demo([tmp_path / "clip"], tmp_path / "out", weights, "--expressions", str(tmp_path / "meta.json"))
    res = subprocess.run(
        [
            sys.executable,
            str(ROOT / "tools" / "demo.py"),
            "--config-file",
            CONFIG,
            "--input",
            str(tmp_path / "clip"),
        ]
        + ["--text", "a dog", "--output", str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 1 and res.stderr.strip().endswith(
        "MODEL.WEIGHTS is empty: the predictor needs trained weights (--opts MODEL.WEIGHTS model.pth)"
    )
    assert "Traceback" not in res.stderr


def test_precision_from_opts_reaches_the_model_and_the_log(tmp_path, weights, caplog):
    frame_folder(tmp_path / "clip", 2)
    args = demo.get_parser().parse_args(
        ["--config-file", CONFIG, "--input", str(tmp_path / "clip"), "--output", str(tmp_path / "out")]
        + ["--text", "a dog", "--opts", "MODEL.WEIGHTS", weights, "MODEL.DEVICE", "cpu"]
        + ["MODEL.SOC.TEST.PRECISION", "bf16"]
    )
    with caplog.at_level(logging.INFO, logger="soc.demo"):
        predictions = demo.run(args)
    assert "bfloat16 autocast on cpu" in caplog.text
    assert len(predictions["clip"]["0"]["frames"]) == 2
