"""``activation(linear(x))`` with the activation fused into the GEMM on the CPU at inference.

A linear layer followed by ReLU or GELU is the FFN of every transformer layer in SOC. Computed as two
operations it writes the (tokens, 4·C) hidden tensor three times (the broadcast bias, the GEMM, the
activation); oneDNN's linear with a post-op writes it once. On the encoder's FFN of a Swin-T clip this halves
the layer's time in bf16 and takes a third off in fp32 (``benchmarks/bench_inference.py``). The fused call
(``torch.ops.mkldnn._linear_pointwise``, the op that ``torch.compile`` emits for the same pattern) has no
autograd formula, so it is used only when no gradient is needed; otherwise the activation runs in place on
the linear's output (which autograd does not keep), saving one hidden tensor per layer in training. A dropout
that follows a ReLU is folded in during training (:func:`~soc.layers.dropout.relu_dropout`).
"""

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .dropout import relu_dropout

__all__ = ["FusedMLP", "linear_activation"]

# activation name → (the plain function, oneDNN's post-op name and algorithm)
_ACTIVATIONS = {
    "relu": (lambda y: F.relu(y, inplace=True), "relu", ""),
    "gelu": (F.gelu, "gelu", "none"),  # exact (erf) GELU, nn.GELU's default
}


def _fused_dtype(x: Tensor, weight: Tensor):
    """The dtype the fused CPU call runs in, or None when the plain path must be taken."""
    if x.device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return None
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
        return None
    dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
    if dtype == torch.float32:
        return dtype
    if dtype == torch.bfloat16 and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return dtype
    return None


def linear_activation(
    x: Tensor, linear: nn.Linear, activation: str, dropout: Optional[nn.Dropout] = None
) -> Tensor:
    """
    ``dropout(activation(linear(x)))``, fused on the CPU when no gradient is needed.

    Args:
        x: (..., in_features). linear: the layer. activation: "relu" or "gelu" (exact).
        dropout: applied to the activation in training (ReLU and dropout then run as one
            :func:`~soc.layers.dropout.relu_dropout`); None for no dropout.

    Returns:
        (..., out_features), in the dtype ``linear(x)`` would have (autocast's, under CPU autocast).
    """
    if activation not in _ACTIVATIONS:
        raise ValueError(
            f"linear_activation: activation must be one of {sorted(_ACTIVATIONS)}, got {activation!r}"
        )
    plain, post_op, algorithm = _ACTIVATIONS[activation]
    if dropout is not None and dropout.training and dropout.p > 0:
        if activation == "relu":
            return relu_dropout(linear(x), dropout.p)
        return dropout(plain(linear(x)))
    dtype = _fused_dtype(x, linear.weight)
    if dtype is None:
        return plain(linear(x))
    bias = None if linear.bias is None else linear.bias.to(dtype)
    out = torch.ops.mkldnn._linear_pointwise(
        x.reshape(-1, x.shape[-1]).to(dtype), linear.weight.to(dtype), bias, post_op, [], algorithm
    )
    return out.view(*x.shape[:-1], linear.out_features)


class FusedMLP(nn.Sequential):
    """
    torchvision's ``MLP`` (``Linear, GELU|ReLU, Dropout, Linear, Dropout``; same children, so the same
    state-dict keys) whose first linear, activation and dropout go through :func:`linear_activation`.
    """

    def __init__(self, mlp: nn.Sequential):
        """Args: mlp: a built ``torchvision.ops.MLP`` with one hidden layer (its modules are reused)."""
        modules = list(mlp)
        act = modules[1] if len(modules) > 1 else None
        if not (
            len(modules) >= 3
            and isinstance(modules[0], nn.Linear)
            and (isinstance(act, nn.ReLU) or (isinstance(act, nn.GELU) and act.approximate == "none"))
            and isinstance(modules[2], nn.Dropout)
        ):
            raise ValueError(f"FusedMLP: expected Linear, ReLU or exact GELU, Dropout, ...; got {mlp}")
        super().__init__(*modules)
        self.activation = "relu" if isinstance(act, nn.ReLU) else "gelu"

    def forward(self, x: Tensor) -> Tensor:
        """(..., C) → (..., C_out)."""
        x = linear_activation(x, self[0], self.activation, self[2])
        for module in list(self)[3:]:
            x = module(x)
        return x
