"""Dropout for CPU training: cheaper random bits, and ReLU + dropout as one step that keeps one byte per element.

``torch.nn.functional.dropout`` on the CPU draws one Bernoulli variable per element; on the deformable
encoder's (tokens, 2048) FFN hidden of a Swin-T clip that takes longer than the layer's GEMMs. Here the keep
decision compares 16 random bits with ``p · 2¹⁶`` (four decisions per 64-bit draw of torch's generator, so
``torch.manual_seed`` still makes runs repeatable), which is 3–4× faster on the same tensor; ``p`` is rounded
to a multiple of 2⁻¹⁶. ReLU followed by dropout is one function whose backward needs only a boolean mask, where
the two ops in sequence keep the ReLU's float output alive for its backward as well.
On other devices, and when not training, both are the plain torch ops.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Dropout", "dropout", "relu_dropout"]


def _drop_mask(shape: torch.Size, p: float) -> Tensor:
    """A boolean tensor of ``shape``, each element True (dropped) with probability round(p · 2¹⁶) / 2¹⁶."""
    numel = shape.numel()
    words = torch.empty((numel + 3) // 4, dtype=torch.int64).random_(-(2**63), None)
    bits = words.view(torch.int16)[:numel].view(shape)
    return bits < round(p * 65536) - 32768


class _ZeroAndScale(torch.autograd.Function):
    """``x · scale`` with the elements where ``zero`` is True set to 0; the same for the gradient."""

    @staticmethod
    def forward(ctx, x: Tensor, zero: Tensor, scale: float) -> Tensor:
        ctx.save_for_backward(zero)
        ctx.scale = scale
        return x.mul(scale).masked_fill_(zero, 0)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (zero,) = ctx.saved_tensors
        return grad.mul(ctx.scale).masked_fill_(zero, 0), None, None


def _check_p(p: float) -> None:
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """``F.dropout(x, p, training)``, with the faster random draw on the CPU (same shape and dtype as ``x``)."""
    _check_p(p)
    if not training or p == 0 or p == 1 or x.device.type != "cpu":
        return F.dropout(x, p, training)
    return _ZeroAndScale.apply(x, _drop_mask(x.shape, p), 1 / (1 - p))


def relu_dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """``dropout(relu(x), p, training)``; on the CPU in training, one pass that saves only a boolean mask."""
    _check_p(p)
    if not training or p == 0 or p == 1 or x.device.type != "cpu":
        return F.dropout(F.relu(x), p, training)
    with torch.no_grad():
        zero = _drop_mask(x.shape, p).logical_or_(x <= 0)
    return _ZeroAndScale.apply(x, zero, 1 / (1 - p))


class Dropout(nn.Dropout):
    """``nn.Dropout`` (same arguments, no state) computed by :func:`dropout`."""

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)
