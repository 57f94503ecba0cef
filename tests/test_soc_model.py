"""The SOC meta-architecture end to end, on a tiny configuration (``tests/configs/soc_tiny.yaml``)."""

from pathlib import Path

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.modeling import build_model

import soc.modeling  # noqa: F401  (registers everything)
from soc.config import add_soc_config
from soc.modeling import MMF, SIM, SOC
from soc.modeling.decoder import VOC, DeformableTransformer

CONFIG = Path(__file__).parent / "configs" / "soc_tiny.yaml"
# Parameters whose gradient is exactly zero by construction: the first decoder layer's self-attention sees
# zero content, and GroupNorm(8, 8) after lay5 cancels its bias.
ZERO_GRAD = {"decoder.transformer.decoder.layers.0.self_attn.in_proj_weight", "pixel_decoder.lay5.bias"}


def tiny_cfg(**overrides):
    cfg = get_cfg()
    add_soc_config(cfg)
    cfg.merge_from_file(str(CONFIG))
    cfg.merge_from_list([x for kv in overrides.items() for x in kv])
    return cfg


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = build_model(tiny_cfg())
    # Perturb every parameter (as the parity bundle does): the initialisation leaves many tensors zero, which
    # would zero most gradients and hide wiring mistakes.
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=g))
    return m.eval()


def clip(T=3, H=64, W=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (T, 3, H, W), dtype=torch.uint8, generator=g)


def assert_close_rel(a, b, rel=1e-4):
    """max|a − b| ≤ rel · max(1, max|b|) (the parity tolerance)."""
    assert a.shape == b.shape
    assert (a - b).abs().max() <= rel * max(1.0, b.abs().max().item())


def targets(T, H, W, visible=None):
    masks = torch.zeros(T, H, W, dtype=torch.bool)
    masks[:, H // 4 : H // 2, W // 3 : W // 2] = True
    vis = torch.ones(T, dtype=torch.bool) if visible is None else torch.as_tensor(visible)
    masks[~vis] = False
    boxes = torch.tensor([[(W // 3 + W // 2) / 2 / W, (H // 4 + H // 2) / 2 / H, 1 / 6, 1 / 4]]).repeat(T, 1)
    boxes[~vis] = 0
    return {"masks": masks, "boxes": boxes, "is_visible": vis}


def test_registered_components(model):
    assert isinstance(model, SOC)
    assert isinstance(model.neck, MMF) and isinstance(model.decoder, SIM)
    assert model.neck.num_levels == 4
    # No duplicate of the box heads inside the transformer (they are passed in, not stored twice).
    assert not any(k.startswith("decoder.transformer.decoder.bbox_embed") for k in model.state_dict())


def test_decoder_receives_its_parts(model):
    """SIM is composed of a transformer and a VOC built apart; the module tree is the config-built one."""
    cfg = tiny_cfg()
    transformer, voc = DeformableTransformer(cfg), VOC(cfg)
    sim = SIM(transformer=transformer, voc=voc, num_classes=1, num_queries=5)
    assert sim.transformer is transformer and sim.voc is voc
    assert list(sim.state_dict()) == [k[8:] for k in model.state_dict() if k.startswith("decoder.")]
    assert SIM(transformer=transformer, voc=None, num_classes=1, num_queries=5).voc is None
    other = VOC(hidden_dim=128, num_frame_queries=5, num_queries=4, dim_feedforward=64)
    with pytest.raises(ValueError, match="video query n is added to frame query n"):
        SIM(transformer=transformer, voc=other, num_classes=1, num_queries=5)


@pytest.mark.parametrize(
    "T,H,W,orig", [(1, 64, 96, (64, 96)), (3, 64, 96, (128, 192)), (2, 61, 87, (122, 174))]
)
def test_inference_shapes(model, T, H, W, orig):
    out = model(
        [{"frames": clip(T, H, W), "expression": "the dog on the left", "height": orig[0], "width": orig[1]}]
    )
    assert len(out) == 1
    r = out[0]
    Q = model.decoder.num_queries
    assert r["pred_masks"].shape == (T, *orig) and r["pred_masks"].dtype == torch.bool
    assert r["mask_probs"].shape == (T, *orig)
    assert torch.equal(r["pred_masks"], r["mask_probs"] > 0.5)
    assert r["pred_boxes"].shape == (T, 4)
    assert r["query_scores"].shape == (T, Q)
    assert isinstance(r["score"], float)
    # The selected query's score is the maximal mean over frames.
    assert r["score"] == pytest.approx(float(r["query_scores"].mean(0).max()), rel=1e-6)
    assert "query_masks" not in r


def test_network_output_shapes_with_padding(model):
    """Two clips of different sizes: padded to a common size, masks at stride 4 of it."""
    images, pad_mask, sizes = model.preprocess([clip(2, 64, 96), clip(2, 50, 70, seed=1)])
    assert images.shape == (2, 2, 3, 64, 96) and pad_mask.shape == (4, 64, 96)
    assert pad_mask[2:, 50:].all() and pad_mask[2:, :, 70:].all() and not pad_mask[2:, :50, :70].any()
    assert (images[1, :, :, 50:] == 0).all()
    with torch.no_grad():
        out = model.forward_network(images, pad_mask, ["a", "a red car"], sizes)
    Q = model.decoder.num_queries
    assert out["pred_cls"].shape == (2, 2, Q, 1)
    assert out["pred_boxes"].shape == (2, 2, Q, 4)
    assert out["pred_masks"].shape == (2, 2, Q, 16, 24)
    assert out["pred_video_queries"].shape == (2, Q, 128)
    assert out["text_sentence_feature"].shape == (2, 128)


def test_batch_equals_single_clips(model):
    """B = 2 (same size, so no padding) equals two B = 1 runs: no mixing of clips anywhere (VOC included)."""
    a, b = clip(3, 64, 96, seed=2), clip(3, 64, 96, seed=3)
    exprs = ["a person riding a horse", "the small white dog"]
    with torch.no_grad():
        images, pad_mask, sizes = model.preprocess([a, b])
        batched = model.forward_network(images, pad_mask, exprs, sizes)
        for i, frames in enumerate((a, b)):
            im, pm, sz = model.preprocess([frames])
            single = model.forward_network(im, pm, [exprs[i]], sz)
            # (the shorter expression is padded in the batch: float noise only)
            for key in ("pred_cls", "pred_boxes", "pred_masks"):
                assert_close_rel(batched[key][:, i], single[key][:, 0])
            assert_close_rel(batched["pred_video_queries"][i], single["pred_video_queries"][0])


def test_eval_is_deterministic(model):
    x = {"frames": clip(3), "expression": "a cat", "height": 64, "width": 96}
    r1, r2 = model([x])[0], model([x])[0]
    for key in ("mask_probs", "pred_boxes", "query_scores"):
        assert torch.equal(r1[key], r2[key])


def test_train_step_every_parameter_gets_a_gradient(model):
    model.train()
    try:
        model.zero_grad()
        batch = [
            {
                "frames": clip(2, 64, 96),
                "expression": "the dog",
                "targets": targets(2, 64, 96, [True, False]),
            },
            {"frames": clip(2, 56, 80, seed=5), "expression": "a big red car", "targets": targets(2, 56, 80)},
        ]
        losses = model(batch)
        assert set(losses) == set(model.criterion.weight_dict)
        assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
        sum(losses.values()).backward()
        for name, p in model.named_parameters():
            if not p.requires_grad:
                assert name.startswith("text_encoder.model."), f"{name} is frozen"
                continue
            assert p.grad is not None, f"{name} received no gradient"
            assert torch.isfinite(p.grad).all(), name
            if name not in ZERO_GRAD:
                assert p.grad.abs().max() > 0, f"{name} has an all-zero gradient"
        assert all(p.grad is None for p in model.text_encoder.model.parameters())
    finally:
        model.zero_grad()
        model.eval()


def test_weighted_losses_match_criterion(model):
    model.train()
    try:
        batch = [{"frames": clip(2), "expression": "a dog", "targets": targets(2, 64, 96)}]
        seen = {}
        h = model.criterion.register_forward_hook(lambda m, a, out: seen.update(raw=out))
        with torch.no_grad():
            losses = model(batch)
        h.remove()
        for k, v in losses.items():
            torch.testing.assert_close(v, seen["raw"][k] * model.criterion.weight_dict[k])
    finally:
        model.eval()


def test_training_batch_needs_equal_clip_lengths(model):
    model.train()
    try:
        batch = [
            {"frames": clip(2), "expression": "a", "targets": targets(2, 64, 96)},
            {"frames": clip(3), "expression": "b", "targets": targets(3, 64, 96)},
        ]
        with pytest.raises(ValueError, match="same number of frames"):
            model(batch)
    finally:
        model.eval()


def test_keep_frames(model):
    frames = clip(5)
    r = model(
        [
            {
                "frames": frames,
                "expression": "a dog",
                "height": 64,
                "width": 96,
                "keep_frames": torch.tensor([2]),
            }
        ]
    )[0]
    assert r["pred_masks"].shape == (1, 64, 96)
    model.train()
    try:
        losses = model(
            [
                {
                    "frames": frames,
                    "expression": "a dog",
                    "keep_frames": torch.tensor([2]),
                    "targets": targets(1, 64, 96),
                }
            ]
        )
        assert all(torch.isfinite(v) for v in losses.values())
    finally:
        model.eval()
    with torch.no_grad():
        images, pad_mask, sizes = model.preprocess([frames])
        kept = model.forward_network(images, pad_mask, ["a dog"], sizes, torch.tensor([[1, 3]]))
    assert kept["pred_masks"].shape[0] == 2


def test_clip_length_chunks(model):
    frames = clip(5, seed=7)
    x = {"frames": frames, "expression": "a dog", "height": 64, "width": 96}
    model.test_clip_length = 2
    try:
        r = model([x])[0]
    finally:
        model.test_clip_length = 0
    assert r["pred_masks"].shape == (5, 64, 96) and r["query_scores"].shape == (5, model.decoder.num_queries)
    parts = [model([{**x, "frames": frames[s:e]}])[0] for s, e in ((0, 2), (2, 4), (4, 5))]
    assert torch.equal(r["mask_probs"], torch.cat([p["mask_probs"] for p in parts]))
    assert r["score"] == pytest.approx(
        (2 * parts[0]["score"] + 2 * parts[1]["score"] + parts[2]["score"]) / 5
    )


def test_all_query_masks(model):
    model.all_query_masks = True
    try:
        r = model([{"frames": clip(2), "expression": "a dog", "height": 32, "width": 48}])[0]
    finally:
        model.all_query_masks = False
    Q = model.decoder.num_queries
    assert r["query_masks"].shape == (2, Q, 32, 48) and r["query_masks"].dtype == torch.bool
    selected = int(r["query_scores"].mean(0).argmax())
    assert torch.equal(r["query_masks"][:, selected], r["pred_masks"])


def test_empty_expression_is_an_error(model):
    with pytest.raises(ValueError, match="no printable character"):
        model([{"frames": clip(1), "expression": "  ", "height": 64, "width": 96}])


@pytest.mark.parametrize(
    "overrides",
    [
        {"MODEL.SOC.VOC.ENABLED": False},
        {"MODEL.SOC.TEST.HEAD_LAYER": -1, "MODEL.SOC.NECK.RESIDUAL": True},
        {"MODEL.SOC.DECODER.WITH_BOX_REFINE": False, "MODEL.SOC.LOSS.DEEP_SUPERVISION": False},
    ],
)
def test_variants_train_and_infer(overrides):
    m = build_model(tiny_cfg(**overrides))
    m.train()
    losses = m([{"frames": clip(2), "expression": "a dog", "targets": targets(2, 64, 96)}])
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    m.eval()
    r = m([{"frames": clip(2), "expression": "a dog", "height": 64, "width": 96}])[0]
    assert r["pred_masks"].shape == (2, 64, 96)
