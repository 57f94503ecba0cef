"""The fused linear + activation equals the plain two-op path (values and, in training, gradients)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import MLP

from soc.layers.linear_activation import FusedMLP, linear_activation

FUSED_OP = "mkldnn::_linear_pointwise"
needs_mkldnn = pytest.mark.skipif(
    not torch.backends.mkldnn.is_available(), reason="torch built without oneDNN"
)
needs_bf16 = pytest.mark.skipif(
    not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()),
    reason="this CPU has no oneDNN bf16 support",
)

REFERENCE = {"relu": F.relu, "gelu": F.gelu}


def _ops(fn) -> set:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return {e.key for e in prof.key_averages()}


@needs_mkldnn
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_fused_fp32_equals_plain_and_takes_the_fused_op(activation):
    torch.manual_seed(0)
    linear = nn.Linear(24, 40)
    x = torch.randn(2, 7, 24)
    with torch.no_grad():
        expected = REFERENCE[activation](linear(x))
        got = linear_activation(x, linear, activation)
        assert FUSED_OP in _ops(lambda: linear_activation(x, linear, activation))
    assert got.shape == (2, 7, 40) and got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


@needs_bf16
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_fused_under_bf16_autocast_equals_autocast_plain(activation):
    torch.manual_seed(0)
    linear = nn.Linear(32, 64)
    x = torch.randn(50, 32)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected = REFERENCE[activation](linear(x))
        got = linear_activation(x, linear, activation)
    assert got.dtype == expected.dtype == torch.bfloat16
    # the same bf16 products; only the order of the fp32 accumulation and the final rounding may differ
    torch.testing.assert_close(got.float(), expected.float(), rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_training_takes_the_plain_path_with_exact_gradients(activation):
    torch.manual_seed(0)
    linear = nn.Linear(16, 24)
    reference = nn.Linear(16, 24)
    reference.load_state_dict(linear.state_dict())
    x = torch.randn(5, 16, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    out = linear_activation(x, linear, activation)
    expected = REFERENCE[activation](reference(x_ref))
    assert FUSED_OP not in _ops(lambda: linear_activation(x, linear, activation))
    torch.testing.assert_close(out, expected)
    weights = torch.randn_like(out)
    (out * weights).sum().backward()
    (expected * weights).sum().backward()
    torch.testing.assert_close(x.grad, x_ref.grad)
    torch.testing.assert_close(linear.weight.grad, reference.weight.grad)
    torch.testing.assert_close(linear.bias.grad, reference.bias.grad)


def test_unknown_activation_is_refused():
    with pytest.raises(ValueError, match="activation must be one of"):
        linear_activation(torch.randn(2, 3), nn.Linear(3, 3), "tanh")


@pytest.mark.parametrize("train", [False, True])
def test_fused_mlp_keeps_torchvision_mlp_keys_and_function(train):
    torch.manual_seed(0)
    mlp = MLP(12, [48, 12], activation_layer=nn.GELU, inplace=None, dropout=0.0)
    reference = MLP(12, [48, 12], activation_layer=nn.GELU, inplace=None, dropout=0.0)
    reference.load_state_dict(mlp.state_dict())
    fused = FusedMLP(mlp)
    assert list(fused.state_dict()) == list(reference.state_dict())
    fused.train(train)
    reference.train(train)
    x = torch.randn(3, 4, 12)
    with torch.set_grad_enabled(train):
        torch.testing.assert_close(fused(x), reference(x), rtol=1e-5, atol=1e-5)


def test_fused_mlp_refuses_an_activation_it_cannot_fuse():
    with pytest.raises(ValueError, match="FusedMLP"):
        FusedMLP(MLP(4, [8, 4], activation_layer=nn.SiLU))
