"""Training end to end on a tiny SynthRVOS: two processes, exact resume after SIGKILL, bad weights."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "projects/SOC/configs/synthetic/soc_tiny_instant_test.yaml"

# Trains with SOC's Trainer and appends every iteration's total loss to losses.jsonl (flushed), so that a run
# killed at any moment leaves the losses of the iterations it finished.
TRAIN_SCRIPT = """
import json, sys
from detectron2.engine import HookBase
from soc.config import setup_cfg
from soc.engine import Trainer
from detectron2.engine import default_argument_parser, default_setup

class LossLog(HookBase):
    def after_step(self):
        with open({log!r}, "a") as f:
            f.write(json.dumps({{"iter": self.trainer.iter,
                                 "loss": self.trainer.storage.history("total_loss").latest()}}) + "\\n")

args = default_argument_parser().parse_args(sys.argv[1:])
cfg = setup_cfg(args.config_file, args.opts)
default_setup(cfg, args)  # as train_net.py: logging and the RNGs seeded from SEED (same initial weights)
trainer = Trainer(cfg)
trainer.register_hooks([LossLog()])
trainer.resume_or_load(resume=args.resume)
trainer.train()
"""


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    from soc.data.synthetic import generate

    root = tmp_path_factory.mktemp("datasets")
    out = root / "synthrvos" / "ytvos"
    generate(str(out), "ytvos", 4, 0, frames=(4, 6), split="train", progress=False)
    generate(str(out), "ytvos", 2, 1, frames=(4, 6), split="valid", progress=False)
    return root


def _env(synth_root):
    return dict(os.environ, SOC_DATASETS=str(synth_root), OMP_NUM_THREADS="1")


def _train(tmp_path, synth_root, out, *opts, resume=False, kill_after_iter=None):
    script = tmp_path / "train.py"
    log = out / "losses.jsonl"
    script.write_text(TRAIN_SCRIPT.format(log=str(log)))
    cmd = [sys.executable, str(script), "--config-file", str(CONFIG)]
    cmd += ["--resume"] if resume else []
    cmd += ["OUTPUT_DIR", str(out), "SEED", "3", *opts]
    proc = subprocess.Popen(cmd, env=_env(synth_root), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if kill_after_iter is None:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()[-3000:]
    else:
        deadline = time.time() + 600
        while time.time() < deadline:
            done = [json.loads(x)["iter"] for x in log.read_text().splitlines()] if log.exists() else []
            if done and max(done) >= kill_after_iter:
                break
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    return [json.loads(x) for x in log.read_text().splitlines()]


@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted(tmp_path, synth_root):
    opts = ("SOLVER.MAX_ITER", "6", "SOLVER.CHECKPOINT_PERIOD", "2")
    full = _train(tmp_path, synth_root, tmp_path / "full", *opts)
    killed = tmp_path / "killed"
    _train(tmp_path, synth_root, killed, *opts, kill_after_iter=4)
    last = (killed / "last_checkpoint").read_text().strip()
    assert last in ("model_0000001.pth", "model_0000003.pth")
    resumed = _train(tmp_path, synth_root, killed, *opts, resume=True)
    start = int(last[len("model_") : -len(".pth")]) + 1
    by_iter = {r["iter"]: r["loss"] for r in resumed}
    assert by_iter, "the resumed run logged nothing"
    for r in full:
        if r["iter"] >= start:
            assert by_iter[r["iter"]] == pytest.approx(r["loss"], rel=1e-6, abs=1e-7), r["iter"]
    final_full = torch.load(tmp_path / "full" / "model_final.pth", weights_only=False)["model"]
    final_resumed = torch.load(killed / "model_final.pth", weights_only=False)["model"]
    for k, v in final_full.items():
        torch.testing.assert_close(final_resumed[k], v, rtol=1e-5, atol=1e-6, msg=k)


def _train_rank(out_dir):
    """Worker of the 2-process test: a few iterations, then every rank saves its own weights."""
    from detectron2.utils import comm

    from soc.config import setup_cfg
    from soc.engine import Trainer

    cfg = setup_cfg(str(CONFIG), ["OUTPUT_DIR", str(out_dir), "SOLVER.MAX_ITER", "2", "SEED", "5"])
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    model = trainer.model.module if hasattr(trainer.model, "module") else trainer.model
    torch.save(model.state_dict(), Path(out_dir) / f"rank{comm.get_rank()}.pth")


@pytest.mark.slow
def test_two_processes_end_with_the_same_weights(tmp_path, synth_root, monkeypatch):
    from detectron2.engine import launch

    for k, v in _env(synth_root).items():
        monkeypatch.setenv(k, v)
    launch(_train_rank, 2, dist_url="auto", args=(tmp_path,))
    w0 = torch.load(tmp_path / "rank0.pth")
    w1 = torch.load(tmp_path / "rank1.pth")
    assert w0.keys() == w1.keys()
    for k in w0:
        torch.testing.assert_close(w0[k], w1[k], rtol=0, atol=0, msg=k)


def test_missing_or_corrupt_weights_give_a_clear_error(tmp_path, synth_root):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint")
    cases = (
        (tmp_path / "missing.pth", "missing.pth"),
        (corrupt, "corrupt.pth"),
        ("", "--eval-only needs MODEL.WEIGHTS"),
    )
    for weights, message in cases:
        cmd = [sys.executable, str(ROOT / "train_net.py"), "--config-file", str(CONFIG), "--eval-only"]
        cmd += ["OUTPUT_DIR", str(tmp_path / "out"), "MODEL.WEIGHTS", str(weights)]
        res = subprocess.run(cmd, env=_env(synth_root), capture_output=True, text=True, timeout=300)
        assert res.returncode != 0
        assert message in res.stderr


def test_training_on_groups_of_expressions(synth_root):
    """DATALOADER.EXPRESSIONS_PER_CLIP 0: the training loader gives clips with a video's expressions and one
    targets dict each, and the model trains on them (finite losses)."""
    from detectron2.modeling import build_model

    from soc.config import setup_cfg
    from soc.data import register_ref_ytvos
    from soc.engine import Trainer

    register_ref_ytvos("test_grouped_train", str(synth_root / "synthrvos" / "ytvos"), "train")
    opts = ["DATASETS.TRAIN", "('test_grouped_train',)", "DATALOADER.EXPRESSIONS_PER_CLIP", "0"]
    cfg = setup_cfg(str(CONFIG), opts + ["DATALOADER.NUM_WORKERS", "0"])
    batch = next(iter(Trainer.build_train_loader(cfg)))
    assert all(len(x["expressions"]) == len(x["targets"]) == len(x["exp_ids"]) >= 1 for x in batch)
    torch.manual_seed(0)
    losses = build_model(cfg).train()(batch)
    assert all(torch.isfinite(v) for v in losses.values())
