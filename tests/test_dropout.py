"""The CPU dropout of soc.layers.dropout: drop rate, scaling, gradients, seeding, and what autograd keeps."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from soc.layers.dropout import Dropout, dropout, relu_dropout
from soc.layers.linear_activation import linear_activation


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_drop_rate_and_scaling(p):
    torch.manual_seed(0)
    x = torch.full((400, 1000), 2.0)
    y = dropout(x, p)
    dropped = y == 0
    # 400 000 Bernoulli(p) draws: the rate is within 5 standard deviations of p
    assert abs(dropped.float().mean().item() - p) < 5 * math.sqrt(p * (1 - p) / x.numel())
    torch.testing.assert_close(y[~dropped], torch.full_like(y[~dropped], 2.0 / (1 - p)))
    # the decisions of one row are not copies of another's (the 16-bit groups of a draw are independent)
    assert not torch.equal(dropped[0], dropped[1])


def test_gradient_is_the_same_mask_and_scale():
    torch.manual_seed(1)
    x = torch.randn(64, 33, requires_grad=True)
    y = dropout(x, 0.3)
    g = torch.randn_like(y)
    (gx,) = torch.autograd.grad(y, x, g)
    kept = y != 0
    torch.testing.assert_close(gx, torch.where(kept, g / 0.7, 0.0))


def test_seeded_runs_repeat():
    x = torch.randn(10, 100)
    torch.manual_seed(3)
    a = dropout(x, 0.2)
    torch.manual_seed(3)
    b = dropout(x, 0.2)
    assert torch.equal(a, b)
    assert not torch.equal(a, dropout(x, 0.2))


def test_eval_and_edge_probabilities_are_torchs():
    x = torch.randn(5, 7)
    assert torch.equal(dropout(x, 0.4, training=False), x)
    assert torch.equal(dropout(x, 0.0), x)
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))
    with pytest.raises(ValueError, match="dropout probability"):
        dropout(x, 1.5)
    with pytest.raises(ValueError, match="dropout probability"):
        relu_dropout(x, -0.1)


def test_relu_dropout_equals_relu_then_dropout_with_gradients():
    x = torch.randn(3, 50, 64, dtype=torch.float64, requires_grad=True)
    x.data[0, 0, :4] = 0.0  # ReLU's gradient at exactly 0 is 0 in both
    g = torch.randn(3, 50, 64, dtype=torch.float64)
    torch.manual_seed(5)
    fused = relu_dropout(x, 0.25)
    (g_fused,) = torch.autograd.grad(fused, x, g)
    torch.manual_seed(5)
    composed = dropout(F.relu(x), 0.25)
    (g_composed,) = torch.autograd.grad(composed, x, g)
    assert torch.equal(fused, composed)
    assert torch.equal(g_fused, g_composed)
    # and its gradient is the numerical one (a fixed mask: the same seed every call; inputs away from 0)

    def seeded(t):
        torch.manual_seed(7)
        return relu_dropout(t, 0.25)

    t = torch.randn(6, 20, dtype=torch.float64)
    t = (t + t.sign() * 0.1).requires_grad_()
    assert torch.autograd.gradcheck(seeded, (t,))


def _saved_bytes(fn, x) -> int:
    saved = []

    def pack(t):
        saved.append(t.numel() * t.element_size())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(x)
    return sum(saved)


def test_relu_dropout_keeps_only_a_boolean_mask():
    x = torch.randn(256, 512, requires_grad=True)
    fused = _saved_bytes(lambda t: relu_dropout(t, 0.1), x)
    composed = _saved_bytes(lambda t: F.dropout(F.relu(t), 0.1), x)
    assert fused == x.numel()  # one byte per element
    assert composed >= x.numel() * (4 + 1)  # torch keeps the ReLU output (float) and the dropout mask


def test_module_is_a_drop_in_for_nn_dropout():
    ours, theirs = Dropout(0.2), nn.Dropout(0.2)
    assert ours.state_dict().keys() == theirs.state_dict().keys() and ours.p == 0.2
    x = torch.randn(8, 9)
    assert torch.equal(ours.eval()(x), x)
    torch.manual_seed(2)
    a = ours.train()(x)
    torch.manual_seed(2)
    assert torch.equal(a, dropout(x, 0.2))


def test_linear_activation_folds_the_dropout_in_training():
    torch.manual_seed(0)
    linear, drop = nn.Linear(16, 48), nn.Dropout(0.3)
    x = torch.randn(4, 16)
    torch.manual_seed(9)
    got = linear_activation(x, linear, "relu", drop)
    torch.manual_seed(9)
    assert torch.equal(got, relu_dropout(linear(x), 0.3))
    drop.eval()
    torch.testing.assert_close(linear_activation(x, linear, "relu", drop), F.relu(linear(x)))
    # GELU has no folded form: the module itself runs after it
    drop.train()
    torch.manual_seed(9)
    got = linear_activation(x, linear, "gelu", drop)
    torch.manual_seed(9)
    assert torch.equal(got, drop(F.gelu(linear(x))))
