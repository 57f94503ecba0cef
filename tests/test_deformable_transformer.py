"""Deformable transformer: shapes, reference points, valid ratios, box refinement, per-frame independence."""

import pytest
import torch

from soc.modeling.decoder.deformable_transformer import (
    DeformableTransformer,
    DeformableTransformerEncoder,
    inverse_sigmoid,
)
from soc.modeling.heads import MLP

C, Q = 32, 4
SIZES = [(8, 12), (4, 6), (2, 3), (1, 2)]


@pytest.fixture(scope="module")
def transformer():
    torch.manual_seed(0)
    t = DeformableTransformer(
        d_model=C,
        nhead=4,
        num_encoder_layers=2,
        num_decoder_layers=3,
        dim_feedforward=16,
        dropout=0.0,
        num_feature_levels=4,
        dec_n_points=2,
        enc_n_points=2,
    )
    with torch.no_grad():
        for p in t.parameters():
            p.add_(0.05 * torch.randn_like(p))  # leave the init's zeros, which hide wiring
    return t.eval()


@pytest.fixture(scope="module")
def heads():
    torch.manual_seed(1)
    return torch.nn.ModuleList([MLP(C, C, 4, 3) for _ in range(3)])


def _inputs(N, pad=False, seed=0):
    """Random levels; with ``pad`` the last column of every level wider than 1 is padding."""
    g = torch.Generator().manual_seed(seed)
    srcs = [torch.randn(N, C, h, w, generator=g) for h, w in SIZES]
    pos = [torch.randn(N, C, h, w, generator=g) for h, w in SIZES]
    masks = []
    for h, w in SIZES:
        m = torch.zeros(N, h, w, dtype=torch.bool)
        if pad and w > 1:
            m[:, :, -1] = True
        masks.append(m)
    return srcs, masks, pos


def test_shapes(transformer, heads):
    srcs, masks, pos = _inputs(3)
    query = torch.randn(Q, C)
    with torch.no_grad():
        hs, memory, init_ref, inter_refs = transformer(srcs, masks, pos, query, heads)
    assert hs.shape == (3, 3, Q, C)
    assert [tuple(m.shape) for m in memory] == [(3, C, h, w) for h, w in SIZES[:-1]]
    assert init_ref.shape == (3, Q, 2) and inter_refs.shape == (3, 3, Q, 4)
    assert ((inter_refs > 0) & (inter_refs < 1)).all()
    # The initial reference depends only on the query positions: same for every frame.
    torch.testing.assert_close(init_ref, transformer.reference_points(query).sigmoid().expand(3, -1, -1))


def test_box_refinement_chain(transformer, heads):
    """Reference after layer l = sigmoid(head_l(hs_l) + inverse_sigmoid(previous)); layer 0: (cx, cy) only."""
    srcs, masks, pos = _inputs(2)
    query = torch.randn(Q, C)
    with torch.no_grad():
        hs, _, init_ref, refs = transformer(srcs, masks, pos, query, heads)
        d0 = heads[0](hs[0])
        expect0 = torch.cat([d0[..., :2] + inverse_sigmoid(init_ref), d0[..., 2:]], -1).sigmoid()
        torch.testing.assert_close(refs[0], expect0)
        for lid in (1, 2):
            torch.testing.assert_close(
                refs[lid], (heads[lid](hs[lid]) + inverse_sigmoid(refs[lid - 1])).sigmoid()
            )
    # without box heads the reference is never refined
    with torch.no_grad():
        _, _, init_ref, refs = transformer(srcs, masks, pos, query, None)
    assert torch.equal(refs, init_ref.expand(3, -1, -1, -1))


def test_references_are_detached(transformer, heads):
    srcs, masks, pos = _inputs(1)
    _, _, _, refs = transformer(srcs, masks, pos, torch.randn(Q, C), heads)
    assert not refs.requires_grad


def test_frames_are_independent(transformer, heads):
    srcs, masks, pos = _inputs(3, pad=True)
    query = torch.randn(Q, C)
    with torch.no_grad():
        hs, memory, _, refs = transformer(srcs, masks, pos, query, heads)
        hs1, memory1, _, refs1 = transformer(
            [s[2:] for s in srcs], [m[2:] for m in masks], [p[2:] for p in pos], query, heads
        )
    torch.testing.assert_close(hs[:, 2:], hs1, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(refs[:, 2:], refs1, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(memory[0][2:], memory1[0], rtol=1e-5, atol=1e-5)


def test_valid_ratio_and_encoder_reference_points():
    mask = torch.zeros(1, 4, 6, dtype=torch.bool)
    mask[:, 3:] = True  # 3 valid rows
    mask[:, :, 4:] = True  # 4 valid columns
    vr = DeformableTransformer.get_valid_ratio(mask)
    torch.testing.assert_close(vr, torch.tensor([[4 / 6, 3 / 4]]))
    # Two levels: a 2×2 map whose right half is padding, and a 1×1 map. Each cell centre is normalised by its
    # level's valid size, then expressed in every level's padded coordinates (× that level's valid ratio).
    shapes = torch.tensor([[2, 2], [1, 1]])
    ratios = torch.tensor([[[0.5, 1.0], [1.0, 1.0]]])
    refs = DeformableTransformerEncoder.get_reference_points(shapes, ratios, torch.device("cpu"))
    assert refs.shape == (1, 5, 2, 2)
    torch.testing.assert_close(refs[0, 0], torch.tensor([[0.25, 0.25], [0.5, 0.25]]))  # level-0 cell (0, 0)
    torch.testing.assert_close(refs[0, 4], torch.tensor([[0.25, 0.5], [0.5, 0.5]]))  # the level-1 cell


def test_inverse_sigmoid():
    x = torch.tensor([0.1, 0.5, 0.9])
    torch.testing.assert_close(inverse_sigmoid(x).sigmoid(), x)
    assert torch.isfinite(inverse_sigmoid(torch.tensor([0.0, 1.0]))).all()
