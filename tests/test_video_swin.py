"""Video Swin backbone: shapes, registry, Kinetics checkpoint loading (key remap), frozen stages."""

import re

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_backbone

import soc.modeling  # noqa: F401
from soc.checkpoint.convert import convert_video_swin_kinetics
from soc.config import add_soc_config
from soc.modeling.backbone.video_swin import VideoSwinTransformer

TINY = dict(embed_dim=24, depths=(2, 2, 2, 1), num_heads=(1, 2, 4, 8), drop_path_rate=0.0)


@pytest.fixture(scope="module")
def swin():
    torch.manual_seed(0)
    return VideoSwinTransformer(**TINY).eval()


@pytest.mark.parametrize("B,T,H,W", [(1, 1, 64, 96), (2, 3, 64, 96), (1, 2, 65, 97), (1, 9, 32, 32)])
def test_shapes(swin, B, T, H, W):
    with torch.no_grad():
        out = swin(torch.randn(B, T, 3, H, W))
    assert list(out) == ["res2", "res3", "res4", "res5"]
    h, w = -(-H // 4), -(-W // 4)  # patch embedding pads to a multiple of 4
    for i, name in enumerate(out):
        assert out[name].shape == (B * T, 24 * 2**i, h, w), name
        h, w = -(-h // 2), -(-w // 2)  # patch merging pads to even sizes
    spec = swin.output_shape()
    assert {k: (v.channels, v.stride) for k, v in spec.items()} == {
        "res2": (24, 4),
        "res3": (48, 8),
        "res4": (96, 16),
        "res5": (192, 32),
    }


def test_frames_are_batch_major_and_clips_independent(swin):
    x = torch.randn(2, 3, 3, 32, 32)
    with torch.no_grad():
        both = swin(x)["res3"]
        second = swin(x[1:])["res3"]
    torch.testing.assert_close(both[3:], second, rtol=1e-5, atol=1e-5)


def test_registered_builder():
    cfg = get_cfg()
    add_soc_config(cfg)
    cfg.MODEL.BACKBONE.NAME = "build_video_swin_backbone"
    cfg.MODEL.VIDEO_SWIN.EMBED_DIM = 24
    cfg.MODEL.VIDEO_SWIN.DEPTHS = [1, 1, 1, 1]
    cfg.MODEL.VIDEO_SWIN.NUM_HEADS = [1, 2, 4, 8]
    cfg.MODEL.VIDEO_SWIN.OUT_FEATURES = ["res3", "res5"]
    bb = build_backbone(cfg, ShapeSpec(channels=3))
    assert isinstance(bb, VideoSwinTransformer)
    assert set(bb.output_shape()) == {"res3", "res5"}
    with torch.no_grad():
        assert set(bb(torch.randn(1, 2, 3, 32, 32))) == {"res3", "res5"}


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


def test_kinetics_checkpoint_loads_into_the_same_function(tmp_path, swin):
    path = tmp_path / "swin_kinetics.pth"
    torch.save(_to_kinetics(swin.state_dict()), path)
    torch.manual_seed(123)  # a different random init: everything must come from the file
    loaded = VideoSwinTransformer(**TINY, pretrained=str(path)).eval()
    x = torch.randn(1, 3, 3, 64, 64)
    with torch.no_grad():
        ref, out = swin(x), loaded(x)
    for k in ref:
        torch.testing.assert_close(out[k], ref[k], rtol=1e-5, atol=1e-5)


def test_kinetics_conversion_rules():
    sd = {
        "backbone.patch_embed.proj.weight": torch.ones(96, 3, 2, 4, 4),
        "backbone.layers.1.blocks.0.mlp.fc1.weight": torch.zeros(1),
        "backbone.layers.1.blocks.0.mlp.fc2.bias": torch.zeros(1),
        "backbone.layers.2.downsample.reduction.weight": torch.zeros(1),
        "backbone.norm.weight": torch.zeros(1),
        "cls_head.fc_cls.weight": torch.zeros(1),
    }
    out = convert_video_swin_kinetics(sd)
    assert set(out) == {
        "patch_embed.proj.weight",
        "features.2.0.mlp.0.weight",
        "features.2.0.mlp.3.bias",
        "features.5.reduction.weight",
    }
    assert out["patch_embed.proj.weight"].shape == (96, 3, 1, 4, 4)
    assert torch.all(out["patch_embed.proj.weight"] == 2.0)  # summed, not averaged


def test_mismatched_checkpoint_is_an_error(tmp_path, swin):
    sd = _to_kinetics(swin.state_dict())
    sd["state_dict"]["backbone.layers.9.blocks.0.attn.qkv.weight"] = torch.zeros(3)
    path = tmp_path / "bad.pth"
    torch.save(sd, path)
    with pytest.raises(ValueError, match="unexpected"):
        VideoSwinTransformer(**TINY, pretrained=str(path))


def test_frozen_stages():
    bb = VideoSwinTransformer(**TINY, frozen_stages=2)
    bb.train()
    frozen = [bb.patch_embed, bb.features[0], bb.features[1], bb.features[2], bb.features[3]]
    for m in frozen:
        assert not m.training
        assert all(not p.requires_grad for p in m.parameters())
    for m in (bb.features[4], bb.features[6]):
        assert m.training and all(p.requires_grad for p in m.parameters())
    none = VideoSwinTransformer(**TINY, frozen_stages=-1)
    assert all(p.requires_grad for p in none.parameters())


def test_temporal_patch_must_be_one():
    with pytest.raises(ValueError, match="temporal patch"):
        VideoSwinTransformer(patch_size=(2, 4, 4), **TINY)
