"""Multi-scale deformable attention (Deformable DETR): one dispatching entry point and the attention module.

Three implementations compute the same function:

* ``cuda_kernel``: ``torch.ops.soc.ms_deform_attn_{forward,backward}`` on CUDA tensors (``csrc/``, built
  when a CUDA toolkit is present at install time);
* ``cpu_kernel``: the same ops on CPU tensors (always built with ``soc._C``);
* ``reference``: :func:`ms_deform_attn_reference`, pure PyTorch on top of ``grid_sample``; always available.

:func:`ms_deform_attn` picks the kernel for the tensors' device when the extension provides it and falls back
to the reference otherwise, logging the fallback once. ``SOC_MS_DEFORM_ATTN=reference`` in the environment
(or ``backend="reference"``) forces the reference; :func:`ms_deform_attn_backend` reports what would run.
"""

import importlib
import logging
import math
import os
from types import ModuleType
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

__all__ = ["ms_deform_attn", "ms_deform_attn_reference", "ms_deform_attn_backend", "MSDeformAttn"]

logger = logging.getLogger(__name__)

ENV_VAR = "SOC_MS_DEFORM_ATTN"
_ENV_CHOICES = ("auto", "reference")

# Lazily filled by _extension(): (module or None, reason it is missing or None).
_EXT_STATE: Optional[Tuple[Optional[ModuleType], Optional[str]]] = None
_LOGGED: set = set()


def _log_once(key: str, msg: str) -> None:
    if key not in _LOGGED:
        _LOGGED.add(key)
        logger.info(msg)


def _extension() -> Tuple[Optional[ModuleType], Optional[str]]:
    """Imports ``soc._C`` once; returns ``(module, None)`` or ``(None, why it is unavailable)``."""
    global _EXT_STATE
    if _EXT_STATE is None:
        try:
            ext = importlib.import_module("soc._C")
        except ImportError as e:  # not built, or built against another torch (undefined symbols)
            _EXT_STATE = (None, f"soc._C could not be imported ({e})")
        else:
            _EXT_STATE = (ext, None)
    return _EXT_STATE


def _kernel_reason(device_type: str) -> Optional[str]:
    """None when the compiled kernel can run on ``device_type``; otherwise why it cannot."""
    ext, reason = _extension()
    if ext is None:
        return reason
    if device_type == "cuda" and not ext.with_cuda():
        return "soc._C was built without the CUDA kernel (no CUDA toolkit at install time; set FORCE_CUDA=1)"
    if device_type not in ("cpu", "cuda"):
        return f"no compiled kernel for device type {device_type!r}"
    return None


def _env_choice() -> str:
    choice = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if choice not in _ENV_CHOICES:
        raise ValueError(f"environment variable {ENV_VAR}={choice!r}: expected one of {_ENV_CHOICES}")
    return choice


def ms_deform_attn_backend(device: Union[str, torch.device]) -> str:
    """
    Name of the implementation :func:`ms_deform_attn` runs for tensors on ``device`` (for logs and tests).

    Returns:
        ``"cuda_kernel"``, ``"cpu_kernel"`` or ``"reference"``.
    """
    device_type = torch.device(device).type
    if _env_choice() == "reference" or _kernel_reason(device_type) is not None:
        return "reference"
    return "cuda_kernel" if device_type == "cuda" else "cpu_kernel"


def ms_deform_attn_reference(
    value: Tensor,
    spatial_shapes: Tensor,
    level_start_index: Tensor,
    sampling_locations: Tensor,
    attention_weights: Tensor,
) -> Tensor:
    """
    Multi-scale deformable attention in pure PyTorch (bilinear ``grid_sample``, zero padding,
    align_corners=False).

    Arguments and result as in :func:`ms_deform_attn`. Memory grows as N·M·D·Lq·L·P (every sample is
    materialised before the weighted sum), which is why the compiled kernels exist.
    """
    N, S, M, D = value.shape
    _, Lq, _, L, P, _ = sampling_locations.shape
    shapes = [(int(h), int(w)) for h, w in spatial_shapes.tolist()]
    starts = [int(s) for s in level_start_index.tolist()]
    # grid_sample wants (x, y) in [-1, 1]; -1 and 1 are the outer edges of the map (align_corners=False).
    grids = 2 * sampling_locations - 1  # (N, Lq, M, L, P, 2)
    samples = []
    for lvl, (h, w) in enumerate(shapes):
        value_l = value[:, starts[lvl] : starts[lvl] + h * w]  # (N, H·W, M, D)
        value_l = value_l.permute(0, 2, 3, 1).reshape(N * M, D, h, w)
        grid_l = grids[:, :, :, lvl].transpose(1, 2).reshape(N * M, Lq, P, 2)
        samples.append(
            F.grid_sample(value_l, grid_l, mode="bilinear", padding_mode="zeros", align_corners=False)
        )  # (N·M, D, Lq, P)
    weights = attention_weights.transpose(1, 2).reshape(N * M, 1, Lq, L * P)
    out = (torch.stack(samples, dim=-2).flatten(-2) * weights).sum(-1)  # (N·M, D, Lq)
    return out.view(N, M * D, Lq).transpose(1, 2).contiguous()


class _MSDeformAttnFunction(torch.autograd.Function):
    """Autograd around the compiled ``soc::ms_deform_attn_forward/backward`` ops (CPU or CUDA)."""

    @staticmethod
    def forward(ctx, value, spatial_shapes, level_start_index, sampling_locations, attention_weights):
        ctx.save_for_backward(value, spatial_shapes, level_start_index, sampling_locations, attention_weights)
        return torch.ops.soc.ms_deform_attn_forward(
            value, spatial_shapes, level_start_index, sampling_locations, attention_weights
        )

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output):
        value, spatial_shapes, level_start_index, sampling_locations, attention_weights = ctx.saved_tensors
        grad_value, grad_loc, grad_attn = torch.ops.soc.ms_deform_attn_backward(
            value,
            spatial_shapes,
            level_start_index,
            sampling_locations,
            attention_weights,
            grad_output.contiguous(),
        )
        return grad_value, None, None, grad_loc, grad_attn


def _check_inputs(value, spatial_shapes, level_start_index, sampling_locations, attention_weights) -> None:
    if value.dim() != 4:
        raise ValueError(f"ms_deform_attn: value must be (N, S, M, D), got shape {tuple(value.shape)}")
    N, S, M, _ = value.shape
    if spatial_shapes.dim() != 2 or spatial_shapes.shape[1] != 2:
        raise ValueError(f"ms_deform_attn: spatial_shapes must be (L, 2), got {tuple(spatial_shapes.shape)}")
    L = spatial_shapes.shape[0]
    if level_start_index.shape != (L,):
        raise ValueError(
            f"ms_deform_attn: level_start_index must be ({L},), got {tuple(level_start_index.shape)}"
        )
    if sampling_locations.dim() != 6 or sampling_locations.shape[-1] != 2:
        raise ValueError(
            "ms_deform_attn: sampling_locations must be (N, Lq, M, L, P, 2), "
            f"got {tuple(sampling_locations.shape)}"
        )
    n, _, m, lv, _, _ = sampling_locations.shape
    if (n, m, lv) != (N, M, L):
        raise ValueError(
            f"ms_deform_attn: sampling_locations {tuple(sampling_locations.shape)} disagrees with "
            f"value (N={N}, M={M}) or spatial_shapes (L={L})"
        )
    if attention_weights.shape != sampling_locations.shape[:-1]:
        raise ValueError(
            f"ms_deform_attn: attention_weights must be {tuple(sampling_locations.shape[:-1])}, "
            f"got {tuple(attention_weights.shape)}"
        )
    if spatial_shapes.dtype != torch.int64 or level_start_index.dtype != torch.int64:
        raise ValueError("ms_deform_attn: spatial_shapes and level_start_index must be int64")
    if not torch.jit.is_tracing() and spatial_shapes.device.type == "cpu":
        total = int(spatial_shapes.prod(1).sum())
        if total != S:
            raise ValueError(f"ms_deform_attn: value has S={S} positions but spatial_shapes sum to {total}")


def ms_deform_attn(
    value: Tensor,
    spatial_shapes: Tensor,
    level_start_index: Tensor,
    sampling_locations: Tensor,
    attention_weights: Tensor,
    im2col_step: int = 64,
    backend: Optional[str] = None,
) -> Tensor:
    """
    Multi-scale deformable attention: for every query and head, the attention-weighted sum of bilinear samples
    of the value maps at L levels × P points.

    Legend: N batch, S = Σ H_l·W_l flattened positions, M heads, D channels per head, Lq queries, L levels,
    P points per level.

    Args:
        value: (N, S, M, D) float; the levels' maps flattened row-major and concatenated.
        spatial_shapes: (L, 2) int64, (H_l, W_l) of each level.
        level_start_index: (L,) int64, offset of each level in S.
        sampling_locations: (N, Lq, M, L, P, 2), (x, y) normalised so that 0 and 1 are the outer edges of the
            map (pixel j's centre at (j + 0.5) / W); samples outside the map read zeros.
        attention_weights: (N, Lq, M, L, P), usually softmaxed over L·P.
        im2col_step: accepted for compatibility with Deformable DETR's signature; our kernels keep no im2col
            buffer, so no batch chunking is needed and any N works.
        backend: None (automatic, see module doc), ``"reference"``, or ``"kernel"`` (the compiled kernel for
            the tensors' device; raises if it is unavailable).

    Returns:
        (N, Lq, M·D), same dtype as ``value``. Under autocast the op runs in float32.
    """
    if im2col_step <= 0:
        raise ValueError(f"ms_deform_attn: im2col_step must be positive, got {im2col_step}")
    if backend not in (None, "reference", "kernel"):
        raise ValueError(f"ms_deform_attn: backend must be None, 'reference' or 'kernel', got {backend!r}")
    _check_inputs(value, spatial_shapes, level_start_index, sampling_locations, attention_weights)
    device_type = value.device.type

    if torch.is_autocast_enabled(device_type):
        with torch.autocast(device_type=device_type, enabled=False):
            out = ms_deform_attn(
                value.float(),
                spatial_shapes,
                level_start_index,
                sampling_locations.float(),
                attention_weights.float(),
                im2col_step,
                backend,
            )
        return out

    use_kernel = False
    if backend == "kernel":
        reason = _kernel_reason(device_type)
        if reason is not None:
            raise RuntimeError(f"ms_deform_attn: backend='kernel' requested but {reason}")
        use_kernel = True
    elif backend is None and _env_choice() == "auto":
        reason = _kernel_reason(device_type)
        use_kernel = reason is None
        if not use_kernel:
            _log_once(
                device_type, f"ms_deform_attn on {device_type}: using the PyTorch reference because {reason}"
            )
    else:
        _log_once("forced", f"ms_deform_attn: PyTorch reference forced ({ENV_VAR} or backend='reference')")

    if not use_kernel:
        return ms_deform_attn_reference(
            value, spatial_shapes, level_start_index, sampling_locations, attention_weights
        )

    dtype = value.dtype
    if device_type == "cpu" and dtype not in (torch.float32, torch.float64):
        # The CPU kernel is float32/float64; half types are computed in float32 (casts keep autograd).
        value, sampling_locations, attention_weights = (
            t.float() for t in (value, sampling_locations, attention_weights)
        )
    else:
        sampling_locations = sampling_locations.to(dtype)
        attention_weights = attention_weights.to(dtype)
    out = _MSDeformAttnFunction.apply(
        value.contiguous(),
        spatial_shapes.contiguous(),
        level_start_index.contiguous(),
        sampling_locations.contiguous(),
        attention_weights.contiguous(),
    )
    return out.to(dtype)


class MSDeformAttn(nn.Module):
    """
    Multi-scale deformable attention module (Deformable DETR), with SOC's change: ``forward`` also returns the
    sampling locations and the softmaxed attention weights.
    """

    def __init__(self, d_model: int = 256, n_levels: int = 4, n_heads: int = 8, n_points: int = 4):
        """
        Args:
            d_model: channels C of queries and values; must be divisible by ``n_heads``.
            n_levels: number of feature levels L.
            n_heads: number of attention heads M.
            n_points: sampling points P per head and level.
        """
        super().__init__()
        if d_model % n_heads != 0:
            raise ValueError(f"MSDeformAttn: d_model={d_model} must be divisible by n_heads={n_heads}")
        self.d_model = d_model
        self.n_levels = n_levels
        self.n_heads = n_heads
        self.n_points = n_points
        self.im2col_step = 64
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        M, L, P = self.n_heads, self.n_levels, self.n_points
        nn.init.zeros_(self.sampling_offsets.weight)
        # Head k starts looking in direction 2πk/M (scaled so that the larger coordinate is ±1), point i at
        # i+1 steps along it: the initial samples form a star around the reference point.
        angles = torch.arange(M, dtype=torch.float32) * (2.0 * math.pi / M)
        dirs = torch.stack([angles.cos(), angles.sin()], dim=-1)  # (M, 2)
        dirs = dirs / dirs.abs().max(dim=-1, keepdim=True).values
        steps = torch.arange(1, P + 1, dtype=torch.float32).view(1, 1, P, 1)
        grid = dirs.view(M, 1, 1, 2) * steps  # (M, 1, P, 2)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.expand(M, L, P, 2).reshape(-1))
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        nn.init.xavier_uniform_(self.value_proj.weight)
        nn.init.zeros_(self.value_proj.bias)
        nn.init.xavier_uniform_(self.output_proj.weight)
        nn.init.zeros_(self.output_proj.bias)

    def forward(
        self,
        query: Tensor,
        reference_points: Tensor,
        input_flatten: Tensor,
        input_spatial_shapes: Tensor,
        input_level_start_index: Tensor,
        input_padding_mask: Optional[Tensor] = None,
    ) -> Tuple[Tensor, Tensor, Tensor]:
        """
        Legend: N batch, Lq queries, S = Σ H_l·W_l, C = d_model, M heads, L levels, P points.

        Args:
            query: (N, Lq, C).
            reference_points: (N, Lq, L, 2) normalised (x, y) in [0, 1] (padded area included), or
                (N, Lq, L, 4) normalised (cx, cy, w, h) boxes, offsets then scaled by the box size.
            input_flatten: (N, S, C) the levels' features flattened and concatenated.
            input_spatial_shapes: (L, 2) int64 (H_l, W_l).
            input_level_start_index: (L,) int64.
            input_padding_mask: (N, S) bool, True at padding positions (their values are zeroed), or None.

        Returns:
            output: (N, Lq, C).
            sampling_locations: (N, Lq, M, L, P, 2) normalised (x, y).
            attention_weights: (N, Lq, M, L, P), softmaxed over L·P.
        """
        N, Lq, _ = query.shape
        _, S, _ = input_flatten.shape
        M, L, P = self.n_heads, self.n_levels, self.n_points
        if input_spatial_shapes.shape[0] != L:
            raise ValueError(
                f"MSDeformAttn: expected {L} levels, input_spatial_shapes has {input_spatial_shapes.shape[0]}"
            )
        if not torch.jit.is_tracing() and int(input_spatial_shapes.prod(1).sum()) != S:
            raise ValueError(
                f"MSDeformAttn: input_flatten has S={S} positions, input_spatial_shapes disagree"
            )

        value = self.value_proj(input_flatten)
        if input_padding_mask is not None:
            value.masked_fill_(input_padding_mask[..., None], 0.0)  # a fresh tensor: no copy needed
        value = value.view(N, S, M, self.d_model // M)
        offsets = self.sampling_offsets(query).view(N, Lq, M, L, P, 2)
        weights = self.attention_weights(query).view(N, Lq, M, L * P).softmax(-1).view(N, Lq, M, L, P)

        if reference_points.shape[-1] == 2:
            # Offsets are in pixels of each level: divide by (W_l, H_l).
            normalizer = input_spatial_shapes.flip(-1).to(offsets)  # (L, 2): (W_l, H_l)
            locations = torch.addcdiv(  # reference + offsets / normalizer in one pass
                reference_points[:, :, None, :, None, :], offsets, normalizer[None, None, None, :, None, :]
            )
        elif reference_points.shape[-1] == 4:
            # Offsets are in units of half the box size per point.
            locations = (
                reference_points[:, :, None, :, None, :2]
                + offsets / P * reference_points[:, :, None, :, None, 2:] * 0.5
            )
        else:
            raise ValueError(
                f"MSDeformAttn: reference_points last dim must be 2 or 4, got {reference_points.shape[-1]}"
            )
        output = ms_deform_attn(
            value, input_spatial_shapes, input_level_start_index, locations, weights, self.im2col_step
        )
        return self.output_proj(output), locations, weights
