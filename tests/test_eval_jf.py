"""soc.evaluation.folder_eval and its command line tools/eval_jf.py on the docs/formats_and_metrics.md §6.2
fixture written as PNG folders (binary and palette GT)."""

import json
import logging
import os
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from soc.data.io import DataError, davis_palette
from soc.evaluation.folder_eval import evaluate_folders

from helpers import G, Z, sq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EVAL_JF = os.path.join(ROOT, "tools", "eval_jf.py")

TOL = 1e-6

# §6.2: sequence -> [(GT, prediction)] per frame
FIXTURE = {
    "vidA/0": [(G, G), (G, sq(1, 4, 2, 5)), (G, Z)],
    "vidB/0": [(Z, Z), (G, sq(1, 3, 1, 3))],
}
FRAMES = {"vidA": ["00000", "00005", "00010"], "vidB": ["00005", "00010"]}


def save(path, arr, palette=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img = Image.fromarray(arr.astype(np.uint8))
    if palette:
        img.putpalette(davis_palette())
    img.save(path)


@pytest.fixture
def folders(tmp_path):
    pred, gt = tmp_path / "pred", tmp_path / "gt"
    for key, frames in FIXTURE.items():
        video = key.split("/")[0]
        for name, (g, p) in zip(FRAMES[video], frames):
            save(os.path.join(gt, key, name + ".png"), g * 255)
            save(os.path.join(pred, key, name + ".png"), p * 255)
    return str(pred), str(gt), tmp_path


def run_cli(monkeypatch, *args):
    """Run tools/eval_jf.py in this process, as ``python tools/eval_jf.py ARGS`` would."""
    monkeypatch.setattr(sys, "argv", [EVAL_JF, *args])
    runpy.run_path(EVAL_JF, run_name="__main__")


def test_binary_layout_and_json(folders, capsys, monkeypatch):
    pred, gt, tmp = folders
    scores = evaluate_folders(pred, gt)
    assert scores["J"] == pytest.approx(0.611111, abs=TOL)
    assert scores["F"] == pytest.approx(0.822464, abs=TOL)
    assert scores["J&F"] == pytest.approx(0.716787, abs=TOL)
    out = str(tmp / "res" / "scores.json")
    run_cli(monkeypatch, "--pred", pred, "--gt", gt, "--json", out)
    with open(out) as f:
        saved = json.load(f)
    assert set(saved) == {"J", "F", "J&F", "sequences", "unscored_predictions"}
    assert saved["unscored_predictions"] == []
    assert saved["J&F"] == pytest.approx(0.716787, abs=TOL)
    assert saved["sequences"]["vidA/0"] == pytest.approx({"J": 0.5, "F": 2 / 3})
    assert saved["sequences"]["vidB/0"] == pytest.approx({"J": 0.722222, "F": 0.978261}, abs=TOL)
    table = capsys.readouterr().out
    assert "vidA/0" in table and "mean" in table and "71.68" in table


def test_missing_prediction(folders, monkeypatch):
    pred, gt, _ = folders
    missing = os.path.join(pred, "vidA", "0", "00000.png")
    os.remove(missing)
    with pytest.raises(DataError, match="missing prediction") as err:
        evaluate_folders(pred, gt)
    assert missing in str(err.value)
    with pytest.raises(SystemExit) as err:
        run_cli(monkeypatch, "--pred", pred, "--gt", gt)
    assert missing in str(err.value.code)
    # scored as empty: vidA frame 1 becomes (G, Z) -> vidA J = 1/6, F = 1/3
    scores = evaluate_folders(pred, gt, missing="empty")
    assert scores["J"] == pytest.approx((1 / 6 + 0.722222) / 2, abs=TOL)
    assert scores["F"] == pytest.approx((1 / 3 + 0.978261) / 2, abs=TOL)


def test_palette_gt_with_meta_expressions(folders):
    pred, _, tmp = folders
    # palette GT per video: the §6.2 GT as object 2 in vidA (plus object 1 at pixel (4, 4)), object 1 in vidB
    gt = tmp / "palette"
    extra = np.zeros((5, 5), bool)
    extra[4, 4] = True
    for name, (g, _) in zip(FRAMES["vidA"], FIXTURE["vidA/0"]):
        save(os.path.join(gt, "vidA", name + ".png"), g * 2 + extra * 1, palette=True)
    for name, (g, _) in zip(FRAMES["vidB"], FIXTURE["vidB/0"]):
        save(os.path.join(gt, "vidB", name + ".png"), g * 1, palette=True)
    meta = tmp / "meta_expressions.json"
    meta.write_text(
        json.dumps(
            {
                "videos": {
                    "vidA": {
                        "expressions": {"0": {"exp": "a square", "obj_id": "2"}},
                        "frames": FRAMES["vidA"],
                    },
                    "vidB": {
                        "expressions": {"0": {"exp": "a square", "obj_id": "1"}},
                        "frames": FRAMES["vidB"],
                    },
                }
            }
        )
    )
    scores = evaluate_folders(pred, str(gt), str(meta))
    assert scores["J&F"] == pytest.approx(0.716787, abs=TOL)
    # the object id matters: vidA's expression pointed at object 1 (the single pixel) scores differently
    meta.write_text(meta.read_text().replace('"obj_id": "2"', '"obj_id": "1"'))
    other = evaluate_folders(pred, str(gt), str(meta))
    assert other["sequences"]["vidA/0"]["J"] == pytest.approx(0.0)
    # a colour PNG carries no object ids: refused, naming the file
    colour = os.path.join(gt, "vidB", FRAMES["vidB"][0] + ".png")
    Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(colour)
    with pytest.raises(DataError, match=f"{colour} has mode 'RGB'"):
        evaluate_folders(pred, str(gt), str(meta))


def test_command_line_end_to_end(folders):
    pred, gt, tmp = folders
    out = str(tmp / "cli.json")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [
            sys.executable,
            EVAL_JF,
            "--pred",
            pred,
            "--gt",
            gt,
            "--json",
            out,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "J&F 0.716787" in proc.stdout
    with open(out) as f:
        assert json.load(f)["J"] == pytest.approx(0.611111, abs=TOL)
    os.remove(os.path.join(pred, "vidB", "0", "00010.png"))
    proc = subprocess.run(
        [sys.executable, EVAL_JF, "--pred", pred, "--gt", gt],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "missing prediction" in proc.stderr and os.path.join("vidB", "0", "00010.png") in proc.stderr


def test_predictions_without_gt_are_reported(folders, caplog, monkeypatch, capsys):
    pred, gt, _ = folders
    extra = ["vidA/1", "vidC/0", "vidD/0", "vidE/0", "vidF/0", "vidG/0"]
    for key in extra:
        save(os.path.join(pred, key, "00000.png"), G * 255)
    with caplog.at_level(logging.WARNING):
        scores = evaluate_folders(pred, gt)
    assert scores["J&F"] == pytest.approx(0.716787, abs=TOL)  # scores of the GT's sequences only
    assert scores["unscored_predictions"] == extra
    line = (
        "6 predicted sequence(s) have no ground truth and are not scored: "
        "vidA/1, vidC/0, vidD/0, vidE/0, vidF/0, ..."
    )
    assert line in caplog.text and pred in caplog.text
    run_cli(monkeypatch, "--pred", pred, "--gt", gt)
    assert line in capsys.readouterr().out


def _jpeg_named_png(path):
    Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(path, format="JPEG")


@pytest.mark.parametrize(
    "damage, message",
    [
        (
            lambda p: Path(p).write_text("not an image"),
            "cannot decode mask {path}: cannot identify image file",
        ),
        (_jpeg_named_png, "{path} is a JPEG file, not a PNG"),
        (lambda p: save(p, np.dstack([G * 255] * 3)), "{path} has mode 'RGB', not a single channel"),
        (lambda p: save(p, np.zeros((6, 5))), "{path}: size (6, 5) differs from the GT's (5, 5)"),
        (lambda p: save(p[: -len(".png")] + ".jpg", G * 255), "{jpg} is not a PNG"),
    ],
    ids=["text", "jpeg", "rgb", "size", "jpg_file"],
)
def test_bad_prediction_files_are_named(folders, monkeypatch, damage, message):
    pred, gt, _ = folders
    path = os.path.join(pred, "vidB", "0", "00005.png")
    damage(path)
    hint = "predictions must be single-channel PNGs (0 / non-zero, or palette) at the GT's size"
    expected = message.format(path=path, jpg=path[: -len(".png")] + ".jpg")
    with pytest.raises(DataError) as err:
        evaluate_folders(pred, gt, missing="empty")
    assert expected in str(err.value) and str(err.value).endswith(hint)
    with pytest.raises(SystemExit) as err:
        run_cli(monkeypatch, "--pred", pred, "--gt", gt)
    assert expected in str(err.value.code)


@pytest.mark.parametrize("kind", ["palette", "16bit"])
def test_single_channel_predictions_are_read(folders, kind):
    pred, gt, _ = folders
    for key, frames in FIXTURE.items():
        for name, (_, p) in zip(FRAMES[key.split("/")[0]], frames):
            path = os.path.join(pred, key, name + ".png")
            if kind == "palette":
                save(path, p * 3, palette=True)
            else:
                Image.fromarray(p.astype(np.uint16) * 40000).save(path)
    assert evaluate_folders(pred, gt)["J&F"] == pytest.approx(0.716787, abs=TOL)
