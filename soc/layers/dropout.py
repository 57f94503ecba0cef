"""Dropout for CPU training: ReLU + dropout as one step that keeps one byte per element for backward.

In the deformable encoder's FFN, ``dropout(relu(linear1(x)))`` on the (tokens, 2048) hidden makes autograd
keep the ReLU's float output (for the ReLU's backward) besides dropout's mask and output: 9 bytes per element,
0.3 GB per encoder layer of a Swin-T training clip. :func:`relu_dropout` is one function whose backward needs
only a boolean mask (dropped, or not positive): 5 bytes per element with the output the next linear keeps.
The keep decisions compare 16 random bits with ``p · 2¹⁶`` (four per 64-bit draw of torch's generator, so
``torch.manual_seed`` still makes runs repeatable; ``p`` is rounded to a multiple of 2⁻¹⁶); drawing them costs
less than ``bernoulli_``, masking costs an extra pass, and the two come out about even in time.
On other devices, and when not training, both functions are the plain torch ops.
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


def _own_path(x: Tensor, p: float, training: bool) -> bool:
    """Whether this module's functions compute the call (CPU, training, 0 < p < 1) rather than torch's ops;
    ``ValueError`` for a probability outside [0, 1]."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    return training and 0 < p < 1 and x.device.type == "cpu"


def dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """``F.dropout(x, p, training)`` with the 16-bit random draw on the CPU (shape and dtype of ``x``)."""
    if not _own_path(x, p, training):
        return F.dropout(x, p, training)
    return _ZeroAndScale.apply(x, _drop_mask(x.shape, p), 1 / (1 - p))


def relu_dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    """``dropout(relu(x), p, training)``; on the CPU in training, one pass that saves only a boolean mask."""
    if not _own_path(x, p, training):
        return F.dropout(F.relu(x), p, training)
    with torch.no_grad():
        zero = _drop_mask(x.shape, p).logical_or_(x <= 0)
    return _ZeroAndScale.apply(x, zero, 1 / (1 - p))


class Dropout(nn.Dropout):
    """``nn.Dropout`` (same arguments, no state) computed by :func:`dropout`."""

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)
