"""SOCCheckpointer writes atomically, names the file in its errors, and loads Kinetics Video-Swin weights into
a built model's backbone (``load_pretrained_weights``)."""

import os
import re

import pytest
import torch
from detectron2.config import get_cfg
from torch import nn

from soc.checkpoint import SOCCheckpointer, load_pretrained_weights
from soc.checkpoint import checkpointer as ckpt_module
from soc.config import add_soc_config
from soc.modeling.backbone.video_swin import VideoSwinTransformer

TINY_SWIN = dict(embed_dim=24, depths=(2, 2, 2, 1), num_heads=(1, 2, 4, 8), drop_path_rate=0.0)


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


class _WithBackbone(nn.Module):
    """The part of SOC that the Kinetics loading touches."""

    def __init__(self, **swin_kwargs):
        super().__init__()
        self.backbone = VideoSwinTransformer(**{**TINY_SWIN, **swin_kwargs})
        self.head = nn.Linear(2, 2)


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
    assert torch.equal(model.head.weight, head)  # only the backbone is touched
    assert not any(p.requires_grad for p in model.backbone.patch_embed.parameters())  # still frozen


def test_pretrained_backbone_only_when_training_from_scratch(tmp_path, reference):
    path = tmp_path / "swin_kinetics.pth"
    torch.save(_to_kinetics(reference.backbone.state_dict()), path)
    model = _WithBackbone()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert not load_pretrained_weights(model, _cfg())
    # MODEL.WEIGHTS holds the whole model: the Kinetics file is not read, even when it does not exist
    assert not load_pretrained_weights(model, _cfg(pretrained="/nonexistent.pth", weights="model_final.pth"))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


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
