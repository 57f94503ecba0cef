"""3-D (shifted) window attention of the Video Swin blocks, computed through
``F.scaled_dot_product_attention``.

:class:`ShiftedWindowAttention3d` subclasses torchvision's module of the same name: same parameters and
buffers (``qkv``, ``proj``, ``relative_position_bias_table``, ``relative_position_index``), so checkpoints,
:mod:`soc.checkpoint.convert` and the ``torchvision://`` Kinetics weights load unchanged, and the same
function: zero padding to whole windows, cyclic shift, attention within each window with the relative
position bias and, in shifted blocks, −100 between tokens that come from different regions of the unshifted
map, then the reverse shift and the crop.

What changes is how it is computed. torchvision pads and rolls the map, materialises the
(windows, heads, N, N) scores, adds the bias and then the (windows, 1, N, N) shift mask and softmaxes them
(four passes over the largest tensor of the network), and rolls and crops back. Here the bias and the shift
mask are one ``attn_mask`` of the fused SDPA kernel. The mask of a window depends only on whether the window
is the last one along each shifted axis (only there do two regions meet): at most 2³ window *kinds*, whose
(N, N) masks are built once per (window, shift) and cached. The windows are gathered kind by kind,
windows-major ``(windows, B, N, C)``, straight from the unshifted, unpadded map (one copy; padding rows stay
zero), so that each kind is one strided batch of the kernel with its mask broadcast over it, and scattered
back the same way: no rolled, padded or (windows, heads, N, N) tensor exists. In CPU training, where the bias
needs a gradient that PyTorch's CPU kernels do not give, the flash kernel's forward is paired with a backward
of our own (:class:`_AttentionWithTrainableMask`), so that training keeps no such tensor either.
"""

import functools
import itertools
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.models.video import swin_transformer as tv_swin

__all__ = ["ShiftedWindowAttention3d", "window_kind_mask"]

SHIFT_MASK_VALUE = -100.0  # torchvision's and the authors' value between tokens of different regions

# one axis of the window grid: (first window, end window, is the last window of a shifted axis)
_AxisPart = Tuple[int, int, bool]


@functools.lru_cache(maxsize=64)
def _kind_mask_cached(
    window_size: Tuple[int, int, int], shift_size: Tuple[int, int, int], last: Tuple[bool, bool, bool], device
) -> Tensor:
    region = []
    for w, s, is_last in zip(window_size, shift_size, last):
        pos = torch.arange(w, device=device)
        region.append(
            (pos >= w - s) if is_last and s > 0 else torch.zeros(w, dtype=torch.bool, device=device)
        )
    # region id of every token of the window, (N,), flattened (t, h, w) as the window partition
    ids = (
        region[0].long()[:, None, None] * 4 + region[1].long()[None, :, None] * 2 + region[2].long()
    ).flatten()
    mask = torch.zeros(ids.numel(), ids.numel(), device=device)
    return mask.masked_fill_(ids[:, None] != ids[None, :], SHIFT_MASK_VALUE)


def window_kind_mask(
    window_size: Sequence[int], shift_size: Sequence[int], last: Sequence[bool], device: torch.device
) -> Tensor:
    """
    The shift mask of a window kind: 0 between tokens of the same region of the unshifted map, −100 between
    tokens of different regions (torchvision's ``_compute_attention_mask_3d`` restricted to such a window).

    Args:
        window_size: (t, h, w) window. shift_size: (t, h, w) cyclic shift (0 = none along that axis).
        last: whether the window is the last one along each axis (only there does the shift bring in
            tokens from the far side).
        device: of the result.

    Returns:
        (N, N) float32, N = t·h·w, cached per arguments.
    """
    return _kind_mask_cached(
        tuple(int(v) for v in window_size),
        tuple(int(v) for v in shift_size),
        tuple(bool(v) for v in last),
        torch.device(device),
    )


def _axis_parts(num_windows: int, shift: int) -> List[_AxisPart]:
    """Window ranges of one axis that share a mask: all windows, or, if shifted, all but the last and the
    last."""
    if shift == 0:
        return [(0, num_windows, False)]
    parts = [(num_windows - 1, num_windows, True)]
    if num_windows > 1:
        parts.insert(0, (0, num_windows - 1, False))
    return parts


@functools.lru_cache(maxsize=1024)
def _axis_runs(first: int, end: int, window: int, shift: int, padded: int, size: int) -> Tuple[tuple, ...]:
    """
    Where windows ``first..end-1`` of one axis of the shifted grid read the unshifted, unpadded map.

    Row j of window i is row (i·window + j + shift) mod padded of the map (the cyclic shift), or padding when
    that is ≥ size. Returns runs (map row, windows, first row in the window, rows): rows
    ``map_row + k·window + r`` are rows ``row0 + r`` of windows ``first_of_run + k`` (k < windows, r < rows),
    consecutive whole windows merged; padding rows are in no run.
    """
    runs: List[list] = []  # [map_row, window offset, windows, row0, rows]
    for i in range(first, end):
        j = 0
        while j < window:
            row = (i * window + j + shift) % padded
            length = min(window - j, padded - row)  # up to the wrap-around
            valid = max(0, min(length, size - row))
            if valid > 0:
                prev = runs[-1] if runs else None
                if (
                    prev is not None
                    and j == 0
                    and valid == window
                    and prev[3:] == [0, window]
                    and prev[1] + prev[2] == i - first
                    and prev[0] + prev[2] * window == row
                ):
                    prev[2] += 1
                else:
                    runs.append([row, i - first, 1, j, valid])
            j += length
    return tuple(tuple(r) for r in runs)


def _pieces(
    kind: Sequence[_AxisPart],
    window: Sequence[int],
    shift: Sequence[int],
    padded: Sequence[int],
    size: Sequence[int],
):
    """
    Blocks of the (B, T, H, W, C) map and of the kind's windows ``(ct, ch, cw, B, wt, wh, ww, C)`` that hold
    the same tokens. Yields (map index, windows index, shape): the map block viewed as
    ``(B, shape[0], shape[1], ..., shape[5], C)`` = (B, windows_t, rows_t, windows_h, rows_h, windows_w,
    rows_w, C) is the windows block permuted to that order.
    """
    axes = [
        _axis_runs(first, end, wi, s, p, sz)
        for (first, end, _), wi, s, p, sz in zip(kind, window, shift, padded, size)
    ]
    for combo in itertools.product(*axes):
        map_index = (slice(None),) + tuple(
            slice(r[0], r[0] + (r[2] - 1) * wi + r[4]) for r, wi in zip(combo, window)
        )
        # a run of several windows covers whole windows (row0 = 0, rows = window): its map rows are contiguous
        win_index = tuple(slice(r[1], r[1] + r[2]) for r in combo) + (slice(None),)
        win_index += tuple(slice(r[3], r[3] + r[4]) for r in combo) + (slice(None),)
        shape = tuple(v for r in combo for v in (r[2], r[4]))
        yield map_index, win_index, shape


class _AttentionWithTrainableMask(torch.autograd.Function):
    """
    ``softmax(q kᵀ / √D + mask) v`` with gradients for q, k, v and the mask, on the CPU. The forward is the
    fused flash kernel, which keeps only the output and one log-sum-exp per row; the backward recomputes the
    call's probabilities from them (PyTorch's CPU kernels give no gradient for a mask). Training thus keeps no
    (windows, heads, N, N) tensor per block from forward to backward: 2.7 GB less peak memory in a Swin-T
    training step on 8 frames at 360×640 (``benchmarks/bench_vs_authors.py``).
    """

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
        out, lse = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
            q, k, v, 0.0, False, attn_mask=mask
        )
        ctx.save_for_backward(q, k, v, mask, out, lse)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        q, k, v, mask, out, lse = ctx.saved_tensors
        acc = torch.promote_types(q.dtype, torch.float32)  # softmax arithmetic: float32, or float64
        scale = q.shape[-1] ** -0.5
        probs = torch.matmul(q, k.transpose(-2, -1)).to(acc).mul_(scale).add_(mask.to(acc))
        probs = probs.sub_(lse.to(acc).unsqueeze(-1)).exp_()  # (W, heads, N, N)
        grad_v = torch.matmul(probs.to(v.dtype).transpose(-2, -1), grad_out)
        delta = (grad_out.to(acc) * out.to(acc)).sum(-1, keepdim=True)
        grad_scores = torch.matmul(grad_out, v.transpose(-2, -1)).to(acc).sub_(delta).mul_(probs)
        grad_mask = grad_scores.sum_to_size(mask.shape).to(mask.dtype) if ctx.needs_input_grad[3] else None
        grad_scores = grad_scores.to(q.dtype)
        grad_q = torch.matmul(grad_scores, k).mul_(scale)
        grad_k = torch.matmul(grad_scores.transpose(-2, -1), q).mul_(scale)
        return grad_q, grad_k, grad_v, grad_mask


def _attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor, dropout_p: float) -> Tensor:
    """(windows, heads, N, D) attention, ``mask`` broadcast over the windows. On the CPU a mask that needs a
    gradient (the relative position bias in training) goes through :class:`_AttentionWithTrainableMask`."""
    if q.device.type == "cpu" and dropout_p == 0 and torch.is_grad_enabled() and mask.requires_grad:
        return _AttentionWithTrainableMask.apply(q, k, v, mask)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)


class ShiftedWindowAttention3d(tv_swin.ShiftedWindowAttention3d):
    """torchvision's ``ShiftedWindowAttention3d`` (same arguments and parameters) through fused attention."""

    def forward(self, x: Tensor) -> Tensor:
        """
        Args:
            x: (B, T, H, W, C).

        Returns:
            (B, T, H, W, C), the attention output after the projection (and its dropout).
        """
        b, t, h, w, c = x.shape
        window, shift = tv_swin._get_window_and_shift_size(
            self.shift_size.copy(), [t, h, w], self.window_size.copy()
        )
        heads, head_dim = self.num_heads, c // self.num_heads
        n = window[0] * window[1] * window[2]
        size = (t, h, w)
        padded = [-(-sz // wi) * wi for sz, wi in zip(size, window)]  # whole windows
        grid = [p // wi for p, wi in zip(padded, window)]  # windows per axis
        kinds = list(itertools.product(*(_axis_parts(g, s) for g, s in zip(grid, shift))))

        # Partition, windows-major and grouped by kind: (num_windows, B, N, C). The windows are read from the
        # unshifted, unpadded map (runs of rows per axis, see _axis_runs): no rolled or padded copy of it.
        padding = any(p != sz for p, sz in zip(padded, size))
        num_windows = grid[0] * grid[1] * grid[2]
        windows = x.new_zeros(num_windows, b, n, c) if padding else x.new_empty(num_windows, b, n, c)
        start, slots = 0, []
        for kind in kinds:
            counts = [end - first for first, end, _ in kind]
            count = counts[0] * counts[1] * counts[2]
            dst = windows[start : start + count].view(*counts, b, *window, c)
            for src_index, dst_index, shape in _pieces(kind, window, shift, padded, size):
                src = x[src_index].view(b, shape[0], shape[1], shape[2], shape[3], shape[4], shape[5], c)
                dst[dst_index].copy_(src.permute(1, 3, 5, 0, 2, 4, 6, 7))
            slots.append((start, count, counts))
            start += count

        qkv = F.linear(windows, self.qkv.weight, self.qkv.bias).view(-1, b, n, 3, heads, head_dim)
        q, k, v = qkv.permute(3, 0, 1, 4, 2, 5).flatten(1, 2).unbind(0)  # each (windows·B, heads, N, D)
        bias = self.get_relative_position_bias(window)  # (1, heads, N, N)
        dropout = self.attention_dropout if self.training else 0.0
        attended = windows.new_empty(windows.shape[0], b, n, heads, head_dim)
        for kind, (first, count, _) in zip(kinds, slots):
            mask = bias
            if any(shift):
                mask = bias + window_kind_mask(window, shift, [last for _, _, last in kind], x.device)
            rows = slice(first * b, (first + count) * b)
            out = _attention(q[rows], k[rows], v[rows], mask.to(q.dtype), dropout)  # (count·B, heads, N, D)
            attended[first : first + count].view(count * b, n, heads, head_dim).copy_(out.transpose(1, 2))
        y = F.linear(attended.view(-1, b, n, c), self.proj.weight, self.proj.bias)
        y = F.dropout(y, p=self.dropout, training=self.training)

        # reverse the partition straight into the unshifted, unpadded map
        out = y.new_empty(b, t, h, w, c)
        for kind, (first, count, counts) in zip(kinds, slots):
            src = y[first : first + count].view(*counts, b, *window, c)
            for dst_index, src_index, shape in _pieces(kind, window, shift, padded, size):
                dst = out[dst_index].view(b, shape[0], shape[1], shape[2], shape[3], shape[4], shape[5], c)
                dst.copy_(src[src_index].permute(3, 0, 4, 1, 5, 2, 6, 7))
        return out
