"""SOCCheckpointer writes atomically and names the file in its errors."""
import os

import pytest
import torch
from torch import nn

from soc.checkpoint import SOCCheckpointer
from soc.checkpoint import checkpointer as ckpt_module


def test_save_then_resume(tmp_path):
    model = nn.Linear(3, 2)
    SOCCheckpointer(model, str(tmp_path)).save("model_0001", iteration=1)
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0001.pth"]  # no temporary left behind
    assert (tmp_path / "last_checkpoint").read_text() == "model_0001.pth"
    other = nn.Linear(3, 2)
    extra = SOCCheckpointer(other, str(tmp_path)).resume_or_load("", resume=True)
    assert extra["iteration"] == 1
    torch.testing.assert_close(other.weight, model.weight, rtol=0, atol=0)


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model = nn.Linear(3, 2)
    ckpt = SOCCheckpointer(model, str(tmp_path))
    ckpt.save("model_final")
    before = (tmp_path / "model_final.pth").read_bytes()

    def crash(data, f):
        f.write(b"partial")
        raise KeyboardInterrupt  # e.g. the job is interrupted mid-write

    monkeypatch.setattr(ckpt_module.torch, "save", crash)
    with torch.no_grad():
        model.weight.add_(1)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save("model_final")
    assert (tmp_path / "model_final.pth").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_final.pth"]


def test_missing_and_corrupt_files_are_named(tmp_path):
    model = nn.Linear(3, 2)
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        SOCCheckpointer(model).load(str(tmp_path / "nope.pth"))
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"garbage")
    with pytest.raises(RuntimeError, match="bad.pth"):
        SOCCheckpointer(model).load(str(bad))
