"""MMF neck: the fusion block against a hand computation, the neck's levels, masks and sentence feature."""

import math

import pytest
import torch
from detectron2.layers import ShapeSpec

from soc.modeling.neck import MMF, MMFLayer


def _hand_mmf(layer: MMFLayer, tgt, memory, pad, pos, nhead):
    """out = tgt ⊙ softmax((tgt Wq)(mem+pos)Wk^T / sqrt(d_h)) (mem Wv) Wo, written out per head."""
    mha = layer.multihead_attn
    C = tgt.shape[-1]
    Wq, Wk, Wv = mha.in_proj_weight.split(C)
    bq, bk, bv = mha.in_proj_bias.split(C)
    dh = C // nhead
    out = torch.zeros_like(tgt)
    for b in range(tgt.shape[1]):
        q = tgt[:, b] @ Wq.T + bq
        k = (memory[:, b] + pos[:, b]) @ Wk.T + bk
        v = memory[:, b] @ Wv.T + bv
        heads = []
        for h in range(nhead):
            s = slice(h * dh, (h + 1) * dh)
            scores = q[:, s] @ k[:, s].T / math.sqrt(dh)
            scores[:, pad[b]] = float("-inf")
            heads.append(scores.softmax(-1) @ v[:, s])
        attn = torch.cat(heads, -1) @ mha.out_proj.weight.T + mha.out_proj.bias
        out[:, b] = tgt[:, b] * attn
    return out


@pytest.mark.parametrize("residual", [False, True])
def test_mmf_layer_by_hand(residual):
    torch.manual_seed(0)
    layer = MMFLayer(4, 2, residual=residual)
    with torch.no_grad():
        layer.multihead_attn.in_proj_bias.normal_()
        layer.multihead_attn.out_proj.bias.normal_()
    tgt, memory, pos = torch.randn(3, 2, 4), torch.randn(5, 2, 4), torch.randn(5, 2, 4)
    pad = torch.tensor([[False] * 5, [False, False, False, True, True]])
    with torch.no_grad():
        out = layer(tgt, memory, memory_key_padding_mask=pad, pos=pos)
        ref = _hand_mmf(layer, tgt, memory, pad, pos, 2)
    if residual:
        ref = ref + tgt
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)


def test_mmf_layer_is_a_product_without_residual():
    """A zero query gives a zero output (no residual, no norm), whatever the memory."""
    layer = MMFLayer(8, 2)
    out = layer(torch.zeros(2, 1, 8), torch.randn(4, 1, 8), pos=torch.randn(4, 1, 8))
    assert torch.equal(out, torch.zeros(2, 1, 8))


SHAPES = {
    "res2": ShapeSpec(channels=24, stride=4),
    "res3": ShapeSpec(channels=48, stride=8),
    "res4": ShapeSpec(channels=96, stride=16),
    "res5": ShapeSpec(channels=192, stride=32),
}


def _features(BT, H, W, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        n: torch.randn(BT, s.channels, -(-H // s.stride), -(-W // s.stride), generator=g)
        for n, s in SHAPES.items()
    }


@pytest.fixture(scope="module")
def neck():
    torch.manual_seed(0)
    return MMF(input_shape=SHAPES, in_features=["res3", "res4", "res5"], hidden_dim=128, num_levels=4).eval()


def test_neck_levels(neck):
    B, T, H, W, L = 2, 3, 64, 96, 6
    feats = _features(B * T, H, W)
    pad_mask = torch.zeros(B * T, H, W, dtype=torch.bool)
    pad_mask[T:, 48:] = True  # second clip is 48 pixels high
    words, word_mask = torch.randn(B, L, 128), torch.zeros(B, L, dtype=torch.bool)
    word_mask[1, 4:] = True
    with torch.no_grad():
        out = neck(feats, pad_mask, words, word_mask, T)
    sizes = [(8, 12), (4, 6), (2, 3), (1, 2)]
    assert [tuple(s.shape) for s in out["srcs"]] == [(B * T, 128, h, w) for h, w in sizes]
    assert [tuple(p.shape) for p in out["pos"]] == [(B * T, 128, h, w) for h, w in sizes]
    assert [tuple(m.shape) for m in out["masks"]] == [(B * T, h, w) for h, w in sizes]
    assert out["text_feature"].shape == (B, 128)
    # padding masks: nearest-resized input mask
    assert (
        not out["masks"][0][:T].any() and out["masks"][0][T:, 6:].all() and not out["masks"][0][T:, :6].any()
    )


def test_sentence_feature_is_mean_of_valid_tokens_at_s32(neck):
    B, T, H, W, L = 2, 2, 64, 64, 5
    feats = _features(B * T, H, W)
    words, word_mask = torch.randn(B, L, 128), torch.tensor([[False] * 5, [False, False, True, True, True]])
    calls = []
    h = neck.lvf.register_forward_hook(lambda m, a, o: calls.append(o))
    with torch.no_grad():
        out = neck(feats, torch.zeros(B * T, H, W, dtype=torch.bool), words, word_mask, T)
    h.remove()
    assert len(calls) == 3  # s8, s16, s32: no V2L at the extra level
    s32 = calls[-1]  # (L, B, C)
    torch.testing.assert_close(out["text_feature"][0], s32[:, 0].mean(0))
    torch.testing.assert_close(out["text_feature"][1], s32[:2, 1].mean(0))


def test_padded_words_are_ignored(neck):
    """Padded words change nothing. (Padded pixels do: the GroupNorm after each projection normalises over the
    whole padded map, in the authors' code too.)"""
    B, T, H, W, L = 1, 2, 64, 64, 5
    feats = _features(B * T, H, W)
    pad_mask = torch.zeros(B * T, H, W, dtype=torch.bool)
    pad_mask[:, :, 32:] = True
    words, word_mask = torch.randn(B, L, 128), torch.tensor([[False, False, False, True, True]])
    with torch.no_grad():
        ref = neck(feats, pad_mask, words, word_mask, T)
        words2 = words.clone()
        words2[:, 3:] += 5.0
        out = neck(feats, pad_mask, words2, word_mask, T)
    torch.testing.assert_close(out["text_feature"], ref["text_feature"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out["srcs"][0], ref["srcs"][0], rtol=1e-5, atol=1e-5)


def test_clips_do_not_mix(neck):
    T, H, W = 2, 64, 96
    feats = _features(2 * T, H, W)
    words, word_mask = torch.randn(2, 4, 128), torch.zeros(2, 4, dtype=torch.bool)
    pad = torch.zeros(2 * T, H, W, dtype=torch.bool)
    with torch.no_grad():
        both = neck(feats, pad, words, word_mask, T)
        second = neck({k: v[T:] for k, v in feats.items()}, pad[T:], words[1:], word_mask[1:], T)
    for a, b in zip(both["srcs"], second["srcs"]):
        torch.testing.assert_close(a[T:], b, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(both["text_feature"][1], second["text_feature"][0], rtol=1e-5, atol=1e-5)
