"""The SOC meta-architecture end to end, on a tiny configuration (``tests/configs/soc_tiny.yaml``)."""

import copy
from pathlib import Path

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.modeling import build_model

import soc.modeling  # noqa: F401  (registers everything)
from soc.config import add_soc_config
from soc.modeling import MMF, SIM, SOC
from soc.modeling.decoder import VOC, DeformableTransformer
from soc.modeling.postprocessing import resize_mask_logits, select_query
from soc.modeling.windows import Track, associate

from helpers import perturb_parameters

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
    # perturbed: the initialisation leaves many tensors zero, which would zero most gradients
    return perturb_parameters(build_model(tiny_cfg())).eval()


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
    assert torch.equal(r["query_index"], r["query_scores"].mean(0).argmax().repeat(T))
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


def test_multi_object_targets_reach_the_criterion_with_the_referred_index(model):
    """The mapper's several-object targets (INPUT.ALL_OBJECT_TARGETS): masks (T, I, H, W) and the referred
    index reach the criterion; the class loss then puts its positive on the query matched to that trajectory,
    so naming the other trajectory as the referred one changes it, and the mask and box losses do not."""
    m = _without_dropout(model)  # the two calls must differ by the referred index only
    one = targets(2, 64, 96)
    other = {k: v.clone() for k, v in one.items()}
    other["masks"] = torch.zeros_like(one["masks"])
    other["masks"][:, 40:60, 5:20] = True
    other["boxes"][:] = torch.tensor([12.5 / 96, 50 / 64, 15 / 96, 20 / 64])
    both = {k: torch.stack([one[k], other[k]], dim=1) for k in ("masks", "boxes", "is_visible")}
    seen = []
    h = m.criterion.register_forward_pre_hook(lambda mod, args: seen.append(args[1][0]))
    losses = {}
    with torch.no_grad():
        for referred in (0, 1):
            batch = [{"frames": clip(2), "expression": "a dog", "targets": dict(both, referred_idx=referred)}]
            losses[referred] = m(batch)
    h.remove()
    assert [t["referred_idx"] for t in seen] == [0, 1] and seen[0]["masks"].shape == (2, 2, 64, 96)
    assert losses[0]["loss_cls"] != losses[1]["loss_cls"]
    for k in ("loss_dice", "loss_sigmoid_focal", "loss_bbox", "loss_giou"):
        torch.testing.assert_close(losses[0][k], losses[1][k])


def _without_dropout(model):
    """A float64 copy in training mode with every dropout / stochastic-depth probability 0 (deterministic)."""
    m = copy.deepcopy(model).double().train()
    for module in m.modules():
        for attr in ("p", "dropout", "attention_dropout", "dropout_prob"):
            if isinstance(getattr(module, attr, None), float):
                setattr(module, attr, 0.0)
    return m


def test_training_on_a_group_equals_a_batch_of_copies(model):
    """A clip trained on 2 expressions at once (one backbone pass) gives the losses and gradients of a batch
    of two copies of the clip, one expression each."""
    m = _without_dropout(model)
    frames = clip(2, 64, 96, seed=3)
    t1, t2 = targets(2, 64, 96), targets(2, 64, 96, [True, False])
    t2["masks"] = t2["masks"].flip(-1)
    t2["boxes"][0, 0] = 1 - t2["boxes"][0, 0]
    runs = []
    for batch in (
        [{"frames": frames, "expressions": ["the dog", "a big red car"], "targets": [t1, t2]}],
        [
            {"frames": frames, "expression": "the dog", "targets": t1},
            {"frames": frames, "expression": "a big red car", "targets": t2},
        ],
    ):
        m.zero_grad()
        losses = m(batch)
        sum(losses.values()).backward()
        grads = {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}
        runs.append((losses, grads))
    (grouped, g_grouped), (copies, g_copies) = runs
    assert grouped.keys() == copies.keys()
    for k in grouped:
        torch.testing.assert_close(grouped[k], copies[k], rtol=1e-9, atol=1e-12)
    assert g_grouped.keys() == g_copies.keys()
    for n in g_grouped:
        torch.testing.assert_close(g_grouped[n], g_copies[n], rtol=1e-7, atol=1e-10, msg=n)
    with pytest.raises(ValueError, match="2 expressions but 1 targets"):
        m([{"frames": frames, "expressions": ["a", "b"], "targets": [t1]}])


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


EXPRESSIONS = ["a dog", "the small white dog on the left side of the road", "a person riding a red horse"]


@pytest.fixture(scope="module")
def model64(model):
    """The same model in float64: the batched and the per-expression paths differ only by float32 rounding
    (the word features of a padded batch, other GEMM shapes), which float64 removes."""
    return copy.deepcopy(model).double()


@pytest.mark.parametrize("clip_length", [0, 2])
def test_expressions_batch_equals_single_expressions(model64, clip_length):
    """``expressions`` (3, of different token lengths) answered together equal three ``expression`` runs."""
    x = {"frames": clip(4, 61, 87, seed=4), "height": 122, "width": 174}
    model64.test_clip_length = clip_length
    try:
        batched = model64([{**x, "expressions": EXPRESSIONS}])[0]
        singles = [model64([{**x, "expression": e}])[0] for e in EXPRESSIONS]
    finally:
        model64.test_clip_length = 0
    assert isinstance(batched, list) and len(batched) == 3
    for b, s in zip(batched, singles):
        assert set(b) == set(s)
        assert torch.equal(b["query_index"], s["query_index"])
        assert torch.equal(b["pred_masks"], s["pred_masks"])
        for key in ("mask_probs", "pred_boxes", "query_scores"):
            torch.testing.assert_close(b[key], s[key], rtol=0, atol=1e-5)
        assert b["score"] == pytest.approx(s["score"], abs=1e-5)


def test_expressions_batch_runs_the_backbone_once_and_matches_the_logits(model64):
    """The network outputs before post-processing (mask logits included), and the backbone count."""
    frames = clip(3, 64, 96, seed=5)
    calls = []
    hook = model64.backbone.register_forward_hook(lambda m, a, out: calls.append(a[0].shape[0]))
    try:
        with torch.no_grad():
            images, pad_mask, sizes = model64.preprocess([frames])
            features, pm = model64.encode_frames(images, pad_mask)
            text = model64.text_encoder(EXPRESSIONS, model64.device)
            features = {k: v.repeat(3, 1, 1, 1) for k, v in features.items()}
            batched = model64.decode(features, pm.repeat(3, 1, 1), text, sizes.repeat(3, 1), 3)
            assert calls == [1]
            for i, e in enumerate(EXPRESSIONS):
                single = model64.forward_network(images, pad_mask, [e], sizes)
                for key in ("pred_cls", "pred_boxes", "pred_masks"):
                    torch.testing.assert_close(batched[key][:, i], single[key][:, 0], rtol=0, atol=1e-5)
                torch.testing.assert_close(
                    batched["pred_video_queries"][i], single["pred_video_queries"][0], rtol=0, atol=1e-5
                )
            model64([{"frames": frames, "expressions": EXPRESSIONS, "height": 64, "width": 96}])
    finally:
        hook.remove()
    assert calls == [1, 1, 1, 1, 1]  # 1 + three single runs + one batched inference with B = 1


def test_expressions_batch_in_float32_selects_the_same_queries(model):
    x = {"frames": clip(3, 64, 96, seed=6), "height": 64, "width": 96}
    batched = model([{**x, "expressions": EXPRESSIONS}])[0]
    for b, e in zip(batched, EXPRESSIONS):
        s = model([{**x, "expression": e}])[0]
        assert torch.equal(b["query_index"], s["query_index"])
        assert_close_rel(b["mask_probs"], s["mask_probs"])


def test_overlapping_windows_own_their_new_frames(model):
    """L = 2, V = 1 on 5 frames: windows [0, 2), [1, 3), [2, 4), [3, 5); each frame's output is the one of
    the earliest window holding it, and (independent association) each window picks its own best query."""
    frames = clip(5, seed=8)
    x = {"frames": frames, "expression": "a dog", "height": 64, "width": 96}
    model.test_clip_length, model.window_overlap = 2, 1
    try:
        r = model([x])[0]
    finally:
        model.test_clip_length, model.window_overlap = 0, 0
    windows = [model([{**x, "frames": frames[s:e]}])[0] for s, e in ((0, 2), (1, 3), (2, 4), (3, 5))]
    owned = [windows[0]] + [{k: v[1:] for k, v in w.items() if k != "score"} for w in windows[1:]]
    for key in ("mask_probs", "pred_boxes", "query_scores", "query_index"):
        assert torch.equal(r[key], torch.cat([w[key] for w in owned])), key
    assert r["score"] == pytest.approx((2 * windows[0]["score"] + sum(w["score"] for w in windows[1:])) / 5)


@pytest.mark.parametrize("score_weight", [0.0, 3.0])
def test_association_continues_the_previous_windows_object(model, score_weight):
    """iou_embedding, L = 3, V = 1 on 7 frames: the first window picks by score; each later window picks the
    query that :func:`associate` finds from standalone runs of the windows (previous choice's mask on the
    shared frame and its video-query embedding, the model's score weight)."""
    frames = clip(7, seed=9)
    x = {"frames": frames, "expression": "the dog", "height": 64, "width": 96}
    model.test_clip_length, model.window_overlap, model.association = 3, 1, "iou_embedding"
    model.association_score_weight = score_weight
    try:
        r = model([x])[0]
    finally:
        model.test_clip_length, model.window_overlap, model.association = 0, 0, "independent"
        model.association_score_weight = 0.0
    expected, track = [], None
    with torch.no_grad():
        for s, e in ((0, 3), (2, 5), (4, 7)):
            images, pad_mask, sizes = model.preprocess([frames[s:e]])
            out = model.forward_network(images, pad_mask, ["the dog"], sizes)
            _, idx, mean_scores = select_query(out["pred_cls"][:, 0])
            logits = out["pred_masks"][:, 0]  # (3, N, h, w)
            embeddings = out["pred_video_queries"][0]
            if track is not None:
                idx = associate(track, logits[:1].sigmoid() > 0.5, embeddings, mean_scores, score_weight)
            owned = slice(0, 3) if s == 0 else slice(1, 3)
            probs = resize_mask_logits(logits[owned, idx], (64, 96), (64, 96)).sigmoid()
            expected.append((idx, probs))
            track = Track(logits[2:, idx].sigmoid() > 0.5, embeddings[idx])
    assert r["query_index"].tolist() == [expected[0][0]] * 3 + [expected[1][0]] * 2 + [expected[2][0]] * 2
    torch.testing.assert_close(r["mask_probs"], torch.cat([p for _, p in expected]), rtol=0, atol=1e-6)


def test_bad_windows_and_clips_are_refused():
    with pytest.raises(ValueError, match="overlap must be >= 0 and < the window length 4, got 4"):
        build_model(tiny_cfg(**{"MODEL.SOC.TEST.CLIP_LENGTH": 4, "MODEL.SOC.TEST.WINDOW_OVERLAP": 4}))
    with pytest.raises(ValueError, match="association must be one of"):
        build_model(tiny_cfg(**{"MODEL.SOC.TEST.ASSOCIATION": "hungarian"}))
    with pytest.raises(ValueError, match="association_score_weight must be >= 0, got -0.5"):
        build_model(tiny_cfg(**{"MODEL.SOC.TEST.ASSOCIATION_SCORE_WEIGHT": -0.5}))


def test_empty_clip_is_an_error(model):
    with pytest.raises(ValueError, match="at least one frame"):
        model([{"frames": clip(0), "expression": "a dog", "height": 64, "width": 96}])


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


def test_bf16_inference_is_close_to_float32_and_returns_float32(model):
    x = {"frames": clip(T=3, H=64, W=96), "expression": "a red ball", "height": 64, "width": 96}
    ref = model([x])[0]
    bf16 = copy.deepcopy(model)
    bf16.precision = "bf16"
    out = bf16([x])[0]
    for key in ("mask_probs", "pred_boxes", "query_scores"):
        assert out[key].dtype == torch.float32, key
    assert out["query_index"].equal(ref["query_index"])
    assert (out["mask_probs"] - ref["mask_probs"]).abs().max() < 0.05
    assert (out["pred_masks"] == ref["pred_masks"]).float().mean() > 0.99


def test_fp16_inference_on_the_cpu_names_the_key(model):
    fp16 = copy.deepcopy(model)
    fp16.precision = "fp16"
    with pytest.raises(RuntimeError, match="MODEL.SOC.TEST.PRECISION"):
        fp16([{"frames": clip(T=1), "expression": "a red ball"}])
    with pytest.raises(ValueError, match="precision"):
        SOC(**{**SOC.from_config(tiny_cfg()), "precision": "fp64"})
