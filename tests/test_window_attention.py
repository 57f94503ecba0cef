"""Fused (shifted) window attention against torchvision's ShiftedWindowAttention3d with the same weights."""

import pytest
import torch
from torchvision.models.video import swin_transformer as tv_swin

from soc.modeling.backbone.window_attention import ShiftedWindowAttention3d, window_kind_mask, _attention

# (B, T, H, W, C, heads, window, shift): no shift, shift in h/w only (temporal window = clip), shift along all
# three axes with several windows per axis, padding along every axis, a window larger than the input.
CASES = [
    (1, 4, 14, 14, 16, 2, [4, 7, 7], [0, 0, 0]),
    (2, 4, 14, 21, 16, 2, [8, 7, 7], [4, 3, 3]),
    (1, 8, 14, 14, 8, 1, [4, 7, 7], [2, 3, 3]),
    (2, 5, 10, 17, 12, 3, [2, 4, 4], [1, 2, 2]),
    (1, 3, 5, 6, 8, 2, [8, 7, 7], [4, 3, 3]),
]


def _pair(C, heads, window, shift, dtype):
    torch.manual_seed(0)
    ref = tv_swin.ShiftedWindowAttention3d(C, list(window), list(shift), heads).to(dtype)
    ours = ShiftedWindowAttention3d(C, list(window), list(shift), heads).to(dtype)
    # a non-trivial bias table (torchvision's init is N(0, 0.02))
    with torch.no_grad():
        ref.relative_position_bias_table.normal_()
    ours.load_state_dict(ref.state_dict())
    return ref, ours


@pytest.mark.parametrize("B,T,H,W,C,heads,window,shift", CASES)
def test_forward_and_gradients_match_torchvision(B, T, H, W, C, heads, window, shift):
    ref, ours = _pair(C, heads, window, shift, torch.float64)
    x = torch.randn(B, T, H, W, C, dtype=torch.float64, requires_grad=True)
    y_ref = ref(x)
    grad = torch.randn_like(y_ref)
    gx_ref, *g_ref = torch.autograd.grad(y_ref, [x, *ref.parameters()], grad)
    y = ours(x)
    gx, *g = torch.autograd.grad(y, [x, *ours.parameters()], grad)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-10, atol=1e-10)
    for (name, _), a, b in zip(ours.named_parameters(), g, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10, msg=name)


@pytest.mark.parametrize("B,T,H,W,C,heads,window,shift", CASES[1:3])
def test_float32_matches_torchvision(B, T, H, W, C, heads, window, shift):
    ref, ours = _pair(C, heads, window, shift, torch.float32)
    x = torch.randn(B, T, H, W, C)
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)


def test_same_parameters_as_torchvision():
    ref = tv_swin.ShiftedWindowAttention3d(16, [8, 7, 7], [4, 3, 3], 2)
    ours = ShiftedWindowAttention3d(16, [8, 7, 7], [4, 3, 3], 2)
    shapes = {k: v.shape for k, v in ref.state_dict().items()}
    assert {k: v.shape for k, v in ours.state_dict().items()} == shapes


def test_kind_mask_hand_computed():
    # window (1, 1, 4) shifted by 1 along w, the last window: tokens 0-2 from one region, 3 from the other
    m = window_kind_mask([1, 1, 4], [0, 0, 1], [False, False, True], torch.device("cpu"))
    same = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 0], [1, 1, 1, 0], [0, 0, 0, 1]], dtype=torch.bool)
    assert torch.equal(m == 0, same) and torch.all(m[~same] == -100)
    # not the last window, or no shift: one region
    assert not window_kind_mask([1, 1, 4], [0, 0, 1], [True, True, False], torch.device("cpu")).any()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_trainable_mask_attention_matches_the_plain_formula_with_gradients(dtype):
    """The flash forward + recomputing backward equals softmax(q kᵀ/√D + mask) v and its autograd gradients,
    the mask broadcast over the windows (its gradient summed over them)."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(4, 2, 12, 8, dtype=dtype, requires_grad=True) for _ in range(3))
    mask = (torch.randn(1, 2, 12, 12, dtype=dtype) * 3).requires_grad_()
    out = _attention(q, k, v, mask, 0.0)
    ref = torch.softmax(q @ k.transpose(-2, -1) / 8**0.5 + mask, -1) @ v
    g = torch.randn_like(ref)
    grads = torch.autograd.grad(out, (q, k, v, mask), g)
    ref_grads = torch.autograd.grad(ref, (q, k, v, mask), g)
    tol = {"rtol": 1e-10, "atol": 1e-10} if dtype == torch.float64 else {"rtol": 1e-4, "atol": 1e-5}
    torch.testing.assert_close(out, ref, **tol)
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b, **tol)
    if dtype == torch.float64:
        args = tuple(t.detach()[:2, :, :5, :3].clone().requires_grad_() for t in (q, k, v))
        small_mask = mask.detach()[:, :, :5, :5].clone().requires_grad_()
        assert torch.autograd.gradcheck(lambda *t: _attention(*t, 0.0), (*args, small_mask))
