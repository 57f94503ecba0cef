"""Checkpoint conversion (authors' layout ↔ ours; Kinetics Video-Swin and torchvision Swin3D → our
backbone), the command line, on-the-fly loading via MODEL.WEIGHTS."""

import errno
import importlib.util
import os
from pathlib import Path

import pytest
import torch
from detectron2.modeling import build_model
from torchvision.models.video import swin3d_t

import soc.modeling  # noqa: F401
from soc.checkpoint import (
    SOCCheckpointer,
    convert_checkpoint_file,
    convert_official_state_dict,
    convert_to_official_state_dict,
    convert_torchvision_swin3d,
    convert_video_swin_kinetics,
    infer_variant,
    is_converted_state_dict,
    is_official_state_dict,
)
from soc.modeling.backbone.video_swin import VideoSwinTransformer

from test_soc_model import tiny_cfg

REPO = Path(__file__).resolve().parents[1]
PARITY_DIR = Path(os.environ.get("SOC_PARITY_DIR", ""))  # the authors' outputs, see tests/test_parity.py
needs_bundle = pytest.mark.skipif(
    not os.environ.get("SOC_PARITY_DIR") or not (PARITY_DIR / "official_tiny.pt").is_file(),
    reason="parity bundle not found (set SOC_PARITY_DIR to the folder of official_tiny.pt)",
)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(tiny_cfg())


@pytest.fixture(scope="module")
def official_sd(model):
    """The tiny model's weights in the authors' layout, with the extras their files carry."""
    sd = convert_to_official_state_dict({k: v.clone() for k, v in model.state_dict().items()})
    sd["text_encoder.embeddings.position_ids"] = torch.arange(512)[None]
    sd["total_ops"] = torch.zeros(1, dtype=torch.float64)
    sd["backbone.0.body.total_params"] = torch.zeros(1, dtype=torch.float64)
    return sd


def _load_recording_keys(checkpointer, path):
    """``checkpointer.load(path)``, returning the incompatible keys (detectron2 only logs them)."""
    seen = []
    load_model = checkpointer._load_model
    checkpointer._load_model = lambda ckpt: seen.append(load_model(ckpt)) or seen[-1]
    checkpointer.load(path)
    return seen[0]


def _save_pth_tar(path, state_dict):
    torch.save(
        {
            "epoch": 3,
            "model_state_dict": state_dict,
            "optimizer_state_dict": {"state": {}, "param_groups": []},
            "best_loss": 1.5,
        },
        path,
    )


def test_layout_detection(model, official_sd):
    ours = model.state_dict()
    assert is_converted_state_dict(ours) and not is_official_state_dict(ours)
    assert is_official_state_dict(official_sd) and not is_converted_state_dict(official_sd)


def test_rules_are_a_bijection(model):
    ours = model.state_dict()
    official = convert_to_official_state_dict(ours)
    back, unplaced, dropped = convert_official_state_dict(official)
    assert not unplaced
    assert sorted(dropped) == sorted(k for k in official if k.startswith("transformer.decoder.bbox_embed."))
    assert list(back) == list(ours)
    assert all(back[k] is ours[k] for k in ours)


@needs_bundle
def test_round_trip_on_the_authors_state_dict():
    sd = torch.load(PARITY_DIR / "official_tiny.pt", weights_only=True)["state_dict"]
    ours, unplaced, dropped = convert_official_state_dict(sd)
    assert not unplaced
    assert len(dropped) == 18 and all(k.startswith("transformer.decoder.bbox_embed.") for k in dropped)
    back = convert_to_official_state_dict(ours)
    assert set(back) == set(sd)
    assert all(torch.equal(back[k], sd[k]) for k in sd)
    v = infer_variant(sd)
    assert v == {
        "swin": "custom",
        "embed_dim": 24,
        "depths": [2, 2, 2, 1],
        "num_heads": [1, 2, 4, 8],
        "hidden_dim": 128,
        "num_queries": 20,
        "num_classes": 1,
        "text_hidden_size": 64,
    }


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


def test_torchvision_swin3d_fills_our_backbone_exactly():
    """torchvision's Kinetics Swin3D-T (its exact keys and shapes; random values, nothing downloaded) loads
    into our backbone with no missing or unexpected key, and the time-summed patch kernel embeds each frame of
    a clip whose frames come in equal pairs as torchvision's 2-frame kernel embeds the pair."""
    torch.manual_seed(0)
    tv = swin3d_t(weights=None).eval()
    ours = VideoSwinTransformer(drop_path_rate=0.0).eval()
    ours.load_state_dict(convert_torchvision_swin3d(tv.state_dict()), strict=True)
    assert ours.patch_embed.proj.weight.shape == (96, 3, 1, 4, 4)
    a, b = torch.rand(2, 1, 3, 1, 32, 48)
    clip = torch.cat([a, a, b, b], dim=2)  # (B, 3, T=4, H, W): frames 0, 1 and 2, 3 equal
    with torch.no_grad():
        pairs = tv.patch_embed(clip)  # (1, 2, 8, 12, 96): one embedding per frame pair
        frames = ours.patch_embed(clip)  # (1, 4, 8, 12, 96): one per frame
    assert pairs.shape == (1, 2, 8, 12, 96) and frames.shape == (1, 4, 8, 12, 96)
    torch.testing.assert_close(frames[:, 0::2], pairs, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(frames[:, 1::2], pairs, rtol=1e-5, atol=1e-5)


def test_torchvision_swin3d_conversion_rules():
    sd = {
        "patch_embed.proj.weight": torch.ones(96, 3, 2, 4, 4),
        "patch_embed.norm.bias": torch.zeros(96),
        "features.1.reduction.weight": torch.zeros(1),
        "norm.weight": torch.zeros(1),
        "head.weight": torch.zeros(400, 768),
        "head.bias": torch.zeros(400),
    }
    out = convert_torchvision_swin3d(sd)
    assert set(out) == {"patch_embed.proj.weight", "patch_embed.norm.bias", "features.1.reduction.weight"}
    assert torch.all(out["patch_embed.proj.weight"] == 2.0) and out["patch_embed.proj.weight"].shape[2] == 1


def test_variant_of_released_shapes():
    """Swin-T/B and the class count are read from shapes (synthetic tensors of the released sizes)."""

    def fake(embed, depths, heads, num_classes):
        sd = {
            "backbone.0.body.patch_embed.proj.weight": torch.zeros(embed, 3, 1, 4, 4),
            "query_embed.weight": torch.zeros(20, 256),
            "class_embed.0.weight": torch.zeros(num_classes, 256),
            "txt_proj.fc.weight": torch.zeros(256, 768),
        }
        for s, (d, h) in enumerate(zip(depths, heads)):
            for j in range(d):
                sd[f"backbone.0.body.layers.{s}.blocks.{j}.attn.relative_position_bias_table"] = torch.zeros(
                    1, h
                )
        return sd

    t = infer_variant(fake(96, [2, 2, 6, 2], [3, 6, 12, 24], 1))
    assert (t["swin"], t["num_heads"], t["num_classes"]) == ("T", [3, 6, 12, 24], 1)
    b = infer_variant(fake(128, [2, 2, 18, 2], [4, 8, 16, 32], 65))
    assert (b["swin"], b["depths"], b["num_classes"]) == ("B", [2, 2, 18, 2], 65)


def test_convert_file_then_load(tmp_path, model, official_sd):
    src, dst = tmp_path / "official.pth.tar", tmp_path / "converted.pth"
    _save_pth_tar(src, official_sd)
    report = convert_checkpoint_file(str(src), str(dst))
    assert report["unplaced"] == [] and len(report["dropped"]) == 2 * 3 * 2 + 3  # bbox dupes, ids, thop
    torch.manual_seed(1)
    fresh = build_model(tiny_cfg())
    incompatible = _load_recording_keys(SOCCheckpointer(fresh), str(dst))
    assert not incompatible.missing_keys and not incompatible.unexpected_keys
    for k, v in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k


def test_refusals(tmp_path, model, official_sd):
    converted = tmp_path / "converted.pth"
    torch.save({"model": model.state_dict()}, converted)
    with pytest.raises(ValueError, match="already"):
        convert_checkpoint_file(str(converted), str(tmp_path / "x.pth"))

    partial = dict(official_sd, **{"is_referred_head.weight": torch.zeros(2, 128)})
    src = tmp_path / "partial.pth.tar"
    _save_pth_tar(src, partial)
    with pytest.raises(ValueError, match="is_referred_head.weight"):
        convert_checkpoint_file(str(src), str(tmp_path / "y.pth"))
    assert not (tmp_path / "y.pth").exists()
    report = convert_checkpoint_file(str(src), str(tmp_path / "y.pth"), allow_partial=True)
    assert report["unplaced"] == ["is_referred_head.weight"]
    assert "is_referred_head.weight" not in torch.load(tmp_path / "y.pth", weights_only=True)["model"]

    other = tmp_path / "other.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, other)
    with pytest.raises(ValueError, match="does not look like"):
        convert_checkpoint_file(str(other), str(tmp_path / "z.pth"))

    listed = tmp_path / "listed.pth"
    torch.save([torch.zeros(1)], listed)
    with pytest.raises(ValueError, match=f"^{listed}: checkpoint is a list"):
        convert_checkpoint_file(str(listed), str(tmp_path / "z.pth"))


def test_a_failed_write_leaves_no_output(tmp_path, official_sd, monkeypatch):
    src, dst = tmp_path / "official.pth.tar", tmp_path / "out.pth"
    _save_pth_tar(src, official_sd)

    def disk_full(obj, f):
        f.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match=f"cannot write {dst}: No space left on device"):
        convert_checkpoint_file(str(src), str(dst))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["official.pth.tar"]


def test_command_line(tmp_path, official_sd, capsys):
    spec = importlib.util.spec_from_file_location(
        "convert_soc_checkpoint", REPO / "tools" / "convert_soc_checkpoint.py"
    )
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    src, dst = tmp_path / "official.pth.tar", tmp_path / "out.pth"
    _save_pth_tar(src, official_sd)
    assert tool.main([str(src), str(dst)]) == 0
    assert "num_classes 1" in capsys.readouterr().out and dst.is_file()
    assert tool.main([str(dst), str(tmp_path / "again.pth")]) == 1
    assert "already" in capsys.readouterr().err and not (tmp_path / "again.pth").exists()


@pytest.mark.parametrize("bare", [False, True])
def test_model_weights_loads_the_authors_file_directly(tmp_path, model, official_sd, bare):
    """MODEL.WEIGHTS may point straight at the authors' .pth.tar (or a bare official state_dict)."""
    path = tmp_path / ("bare.pth" if bare else "official.pth.tar")
    if bare:
        torch.save(official_sd, path)
    else:
        _save_pth_tar(path, official_sd)
    cfg = tiny_cfg()
    cfg.MODEL.WEIGHTS = str(path)
    torch.manual_seed(2)
    fresh = build_model(cfg)
    incompatible = _load_recording_keys(SOCCheckpointer(fresh), cfg.MODEL.WEIGHTS)
    assert not incompatible.missing_keys and not incompatible.unexpected_keys
    for k, v in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v), k


def test_detectron2_checkpoints_load_unchanged(tmp_path, model):
    path = tmp_path / "model_final.pth"
    torch.save({"model": model.state_dict(), "iteration": 7}, path)
    fresh = build_model(tiny_cfg())
    extra = SOCCheckpointer(fresh).load(str(path))
    assert extra.get("iteration") == 7
    assert all(torch.equal(fresh.state_dict()[k], v) for k, v in model.state_dict().items())
