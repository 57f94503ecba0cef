"""Video Swin backbone: shapes, registry, frozen stages (Kinetics weights: tests/test_checkpointer.py)."""

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_backbone

import soc.modeling  # noqa: F401
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
    cfg.MODEL.VIDEO_SWIN.PRETRAINED = (
        "/nonexistent/swin_kinetics.pth"  # read by soc.checkpoint, never by the model
    )
    bb = build_backbone(cfg, ShapeSpec(channels=3))
    assert isinstance(bb, VideoSwinTransformer)
    assert set(bb.output_shape()) == {"res3", "res5"}
    with torch.no_grad():
        assert set(bb(torch.randn(1, 2, 3, 32, 32))) == {"res3", "res5"}


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
