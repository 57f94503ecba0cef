"""MeViS end to end on SynthRVOS: a training step on a no-target sample, the no-target threshold in the
model's post-processing and its selection tool, ``train_net.py --eval-only`` printing the MeViS report and
writing the submission, and a few training iterations with ``train_net.py`` (slow)."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from detectron2.modeling import build_model

from soc.config import setup_cfg
from soc.data import build_soc_mapper
from soc.data.datasets.mevis import register_mevis
from soc.data.synthetic import generate

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "projects/SOC/configs/synthetic/soc_tiny_mevis_instant_test.yaml"


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    out = str(root / "synthrvos" / "mevis")
    generate(out, "mevis", 2, 0, frames=(3, 4), size=(48, 80), split="train", progress=False)
    generate(out, "mevis", 2, 1, frames=(3, 4), size=(48, 80), split="valid_u", progress=False)
    generate(out, "mevis", 1, 2, frames=(3, 4), size=(48, 80), split="valid", progress=False)
    return root


def _cfg(*opts):
    return setup_cfg(str(CONFIG), ["MODEL.DEVICE", "cpu", *opts])


def test_training_step_on_a_no_target_sample_is_finite(datasets):
    register_mevis("test_mevis_train_step", str(datasets / "synthrvos" / "mevis"), "train")
    cfg = _cfg()
    mapper = build_soc_mapper(cfg, "test_mevis_train_step", is_train=True)
    from detectron2.data import DatasetCatalog

    record = next(r for r in DatasetCatalog.get("test_mevis_train_step") if not r["anno_ids"])
    sample = mapper(record)
    assert not sample["targets"]["is_visible"].any()
    torch.manual_seed(0)
    model = build_model(cfg).train()
    losses = model([sample])
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses["loss_con"].item() == 0.0  # no referred object: no contrastive target
    sum(losses.values()).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_no_target_threshold_empties_every_frame():
    frames = torch.randint(0, 255, (3, 3, 64, 96), dtype=torch.uint8)
    x = {"frames": frames, "expressions": ["the red star", "the two squares"], "height": 64, "width": 96}
    torch.manual_seed(0)
    model = build_model(_cfg()).eval()
    plain = model([x])[0]
    scores = [o["score"] for o in plain]
    model.no_target_threshold = (min(scores) + max(scores)) / 2 if min(scores) < max(scores) else 1.0
    cut = model([x])[0]
    for before, after in zip(plain, cut):
        if before["score"] < model.no_target_threshold:
            assert not after["pred_masks"].any()
        else:
            assert torch.equal(before["pred_masks"], after["pred_masks"])
    assert any(not o["pred_masks"].any() for o in cut)


def test_threshold_selection_tool_runs_on_the_synthetic_split(datasets, tmp_path, monkeypatch, capsys):
    from soc.cli.select_no_target_threshold import main

    monkeypatch.setenv("SOC_DATASETS", str(datasets))
    register_mevis("test_mevis_select", str(datasets / "synthrvos" / "mevis"), "valid_u")
    torch.manual_seed(0)
    weights = tmp_path / "random.pth"
    torch.save({"model": build_model(_cfg()).state_dict()}, weights)
    out = tmp_path / "threshold.json"
    argv = ["--config-file", str(CONFIG), "--dataset", "test_mevis_select", "--output", str(out)]
    assert main(argv + ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", str(weights)]) == 0
    printed = capsys.readouterr().out
    assert "without: J&F" in printed and "MODEL.SOC.TEST.NO_TARGET_THRESHOLD" in printed
    result = json.loads(out.read_text())
    assert result["with"]["Final"] >= result["without"]["Final"]
    assert result["table"][0] == [0.0, result["without"]]


def test_threshold_selection_on_a_split_without_masks_says_so(datasets, tmp_path):
    # used to fail with "needs target and no-target expressions", which hides the cause (no mask_dict.json)
    from soc.cli.select_no_target_threshold import select

    register_mevis("test_mevis_select_valid", str(datasets / "synthrvos" / "mevis"), "valid")
    torch.manual_seed(0)
    weights = tmp_path / "random.pth"
    torch.save({"model": build_model(_cfg()).state_dict()}, weights)
    with pytest.raises(ValueError, match="test_mevis_select_valid has no ground-truth masks"):
        select(str(CONFIG), "test_mevis_select_valid", ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", str(weights)])


def _run_train_net(datasets, tmp_path, *args):
    env = dict(os.environ, SOC_DATASETS=str(datasets), OMP_NUM_THREADS="1")
    cmd = [sys.executable, str(ROOT / "train_net.py"), "--config-file", str(CONFIG), *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_train_net_eval_only_prints_the_mevis_report(datasets, tmp_path):
    torch.manual_seed(0)
    weights = tmp_path / "random.pth"
    torch.save({"model": build_model(_cfg()).state_dict()}, weights)
    out = tmp_path / "eval"
    log = _run_train_net(
        datasets, tmp_path, "--eval-only", "MODEL.WEIGHTS", str(weights), "OUTPUT_DIR", str(out)
    )
    assert "synthrvos_mevis_valid_u" in log
    for metric in ("J&F", "N_acc", "T_acc", "Final"):
        assert metric in log.split("copypaste: Task: mevis", 1)[1]
    with zipfile.ZipFile(out / "inference" / "synthrvos_mevis_valid_u" / "submission.zip") as zf:
        tops = {n.split("/")[0] for n in zf.namelist()}
    assert tops and "Annotations" not in tops  # video folders at the archive root


@pytest.mark.slow
def test_train_net_trains_on_the_synthetic_mevis_split(datasets, tmp_path):
    out = tmp_path / "train"
    _run_train_net(
        datasets, tmp_path, "OUTPUT_DIR", str(out), "SOLVER.MAX_ITER", "3", "TEST.EVAL_PERIOD", "0"
    )
    assert (out / "model_final.pth").is_file()
