"""Inference post-processing: query selection, mask resizing to the original frame size, boxes in pixels.

Query selection is the authors' Ref-YouTube-VOS inference (``infer_refytb.py``): sigmoid of the class logits,
mean over frames, max over classes, argmax over queries; that query's masks for every frame.

Mask resizing: the authors resize the stride-4 logits bilinearly straight to the original size, which is
right when the input has no padding and its size is a multiple of 4 (their batch-1 inference on 360×640).
We resample the *unpadded* part of the logit map instead: original pixel i samples the map at
``(i + 0.5) · h / (4 · H0) − 0.5`` (h the resized input height, H0 the original). With h a multiple of 4 this
is exactly the authors' ``F.interpolate`` of the cropped map (and that is what runs); otherwise separable
bilinear weights implement the same formula, so padding and odd sizes never stretch the masks.
"""

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["boxes_to_original", "resize_mask_logits", "select_query"]


def select_query(pred_cls: Tensor) -> Tuple[Tensor, int, Tensor]:
    """
    Args:
        pred_cls: (T, Q, K) class logits of one clip.

    Returns:
        query_scores: (T, Q) sigmoid scores (max over classes); the selected query index; mean_scores (Q,),
        each query's expression score: the mean over frames of its sigmoid, max over classes (the selected
        query has the highest).
    """
    probs = pred_cls.sigmoid()
    mean_scores = probs.mean(0).max(-1).values  # (Q,)
    return probs.max(-1).values, int(mean_scores.argmax()), mean_scores


def _bilinear_weights(out_size: int, in_size: int, scale: float, device: torch.device) -> Tensor:
    """(out_size, in_size) bilinear taps at ``src = (i + 0.5) · scale − 0.5`` (clamped as PyTorch does)."""
    src = ((torch.arange(out_size, dtype=torch.float64, device=device) + 0.5) * scale - 0.5).clamp(min=0)
    i0 = src.floor().long().clamp(max=in_size - 1)
    i1 = (i0 + 1).clamp(max=in_size - 1)
    w1 = (src - i0).clamp(max=1.0)
    rows = torch.arange(out_size, device=device)
    m = torch.zeros(out_size, in_size, dtype=torch.float64, device=device)
    m.index_put_((rows, i0), 1 - w1, accumulate=True)
    m.index_put_((rows, i1), w1, accumulate=True)
    return m


def resize_mask_logits(
    logits: Tensor, input_size: Tuple[int, int], output_size: Tuple[int, int], stride: int = 4
) -> Tensor:
    """
    Bilinear resampling of mask logits computed on a padded input to the original frame size.

    Args:
        logits: (N, h_m, w_m) logits at ``stride`` of the padded input.
        input_size: (h, w) of the resized, unpadded input in pixels.
        output_size: (H0, W0) original size.
        stride: input pixels per logit cell.

    Returns:
        (N, H0, W0) logits.
    """
    h, w = input_size
    H0, W0 = output_size
    if h % stride == 0 and w % stride == 0:
        cropped = logits[:, : h // stride, : w // stride]
        return F.interpolate(cropped[:, None], size=(H0, W0), mode="bilinear", align_corners=False)[:, 0]
    hc, wc = -(-h // stride), -(-w // stride)  # cells touching the unpadded area
    cropped = logits[:, :hc, :wc]
    my = _bilinear_weights(H0, hc, h / (stride * H0), logits.device).to(logits.dtype)
    mx = _bilinear_weights(W0, wc, w / (stride * W0), logits.device).to(logits.dtype)
    return torch.einsum("yi,nij,xj->nyx", my, cropped, mx)


def boxes_to_original(boxes: Tensor, output_size: Tuple[int, int]) -> Tensor:
    """(..., 4) normalised cxcywh of the unpadded input → (..., 4) xyxy in original pixels."""
    H0, W0 = output_size
    cx, cy, bw, bh = boxes.unbind(-1)
    xyxy = torch.stack([cx - 0.5 * bw, cy - 0.5 * bh, cx + 0.5 * bw, cy + 0.5 * bh], dim=-1)
    return xyxy * xyxy.new_tensor([W0, H0, W0, H0])
