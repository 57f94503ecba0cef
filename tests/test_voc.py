"""VOC: shapes, batch correctness (no batch/time mixing), layer independence, order invariance, B=1 parity
with the authors' reshape."""

import pytest
import torch

from soc.modeling.decoder import VOC

C, Q = 32, 5


def _make_voc(enc_layers, dec_layers):
    """A small VOC, seeded."""
    torch.manual_seed(0)
    return VOC(
        hidden_dim=C,
        num_frame_queries=Q,
        num_queries=Q,
        nheads=4,
        enc_layers=enc_layers,
        dec_layers=dec_layers,
        dim_feedforward=16,
        dropout=0.0,
    )


@pytest.fixture(scope="module")
def voc():
    return _make_voc(enc_layers=2, dec_layers=2).eval()


def test_shapes(voc):
    out = voc(torch.randn(3, 2, 4, Q, C), torch.randn(2, C))
    assert out.shape == (3, 2, Q, C)


def test_batch_of_two_equals_two_single_clips(voc):
    L, B, T = 2, 2, 3
    frames, sentence = torch.randn(L, B, T, Q, C), torch.randn(B, C)
    with torch.no_grad():
        both = voc(frames, sentence)
        for b in range(B):
            torch.testing.assert_close(
                both[:, b], voc(frames[:, b : b + 1], sentence[b : b + 1])[:, 0], rtol=1e-5, atol=1e-5
            )


def test_layers_are_processed_independently(voc):
    frames, sentence = torch.randn(3, 1, 2, Q, C), torch.randn(1, C)
    with torch.no_grad():
        all_layers = voc(frames, sentence)
        torch.testing.assert_close(all_layers[1:2], voc(frames[1:2], sentence), rtol=1e-5, atol=1e-5)


def test_frame_order_does_not_matter(voc):
    """No temporal embedding: permuting frames leaves the video queries unchanged."""
    frames, sentence = torch.randn(1, 1, 4, Q, C), torch.randn(1, C)
    with torch.no_grad():
        torch.testing.assert_close(
            voc(frames, sentence), voc(frames[:, :, [2, 0, 3, 1]], sentence), rtol=1e-5, atol=1e-5
        )


def test_slot_order_matters(voc):
    """Keys carry one position per frame-query slot (fq_pos), so swapping slots changes the output."""
    frames, sentence = torch.randn(1, 1, 2, Q, C), torch.randn(1, C)
    with torch.no_grad():
        assert not torch.allclose(voc(frames, sentence), voc(frames[:, :, :, [1, 0, 2, 3, 4]], sentence))


def _authors_layout(voc, frame_query_ltbqc, sentence):
    """The authors' input handling: [L, T, B, Q, C] reshaped straight to [L·B, T, Q, C]."""
    L, T, B, _, _ = frame_query_ltbqc.shape
    x = frame_query_ltbqc.reshape(L * B, T, Q, C).reshape(L, B, T, Q, C)
    return voc(x, sentence)


def test_equals_authors_reshape_at_batch_one_but_not_beyond(voc):
    frames = torch.randn(2, 1, 3, Q, C)  # (L, B, T, Q, C)
    sentence = torch.randn(1, C)
    with torch.no_grad():
        ours = voc(frames, sentence)
        authors = _authors_layout(voc, frames.permute(0, 2, 1, 3, 4), sentence)
    torch.testing.assert_close(ours, authors)
    frames2, sentence2 = torch.randn(2, 2, 3, Q, C), torch.randn(2, C)
    with torch.no_grad():
        ours2 = voc(frames2, sentence2)
        authors2 = _authors_layout(voc, frames2.permute(0, 2, 1, 3, 4), sentence2)
    assert not torch.allclose(ours2, authors2, atol=1e-3)


def test_sentence_initialises_the_queries():
    """With no decoder layers the output is decoder_norm(sentence) for every video query."""
    voc = _make_voc(enc_layers=1, dec_layers=0)
    sentence = torch.randn(2, C)
    out = voc(torch.randn(1, 2, 3, Q, C), sentence)
    torch.testing.assert_close(out[0], voc.decoder_norm(sentence)[:, None].expand(2, Q, C))
