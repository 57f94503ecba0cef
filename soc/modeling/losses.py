"""Loss and cost functions of SOC's set criterion, as plain tensor functions.

They follow the authors' definitions (DETR-style), with two details that change numbers, kept on purpose:

- the generalised IoU adds ``1e-6`` to the numerator and denominator of both its ratios, so a zero box (the
  ground truth of a frame where the object is absent) gives a finite value, and zero vs zero box gives GIoU 0;
- the focal matching cost adds ``1e-8`` inside its logarithms.

Boxes are normalised ``(cx, cy, w, h)`` unless a name says ``xyxy``.
"""

from typing import Union

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import box_convert, sigmoid_focal_loss

__all__ = [
    "generalized_box_iou",
    "cxcywh_generalized_box_iou",
    "dice_coefficient",
    "dice_loss",
    "mask_focal_loss",
    "focal_class_cost",
    "contrastive_loss",
]

_GIOU_EPS = 1e-6
_COST_LOG_EPS = 1e-8


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor, eps: float = _GIOU_EPS) -> Tensor:
    """Generalised IoU of ``xyxy`` boxes, element-wise with broadcasting.

    ``generalized_box_iou(a[:, None], b[None])`` is the pairwise ``(N, M)`` matrix,
    ``generalized_box_iou(a, b)`` the paired vector. Unlike ``torchvision.ops.generalized_box_iou``, ``eps``
    is added to both ratios (``(I + eps) / (U + eps)`` and ``(C - U + eps) / (C + eps)``), as the authors'
    code does: degenerate boxes give finite values (two zero boxes give exactly 0, torchvision NaN), and
    identical boxes of area A give ``1 - eps / (A + eps)``.

    Args:
        boxes1, boxes2: ``(..., 4)`` ``x0, y0, x1, y1`` with ``x1 >= x0`` and ``y1 >= y0``, broadcastable.
    Returns:
        ``(...)`` GIoU in ``[-1, 1]``.
    """
    area1 = (boxes1[..., 2] - boxes1[..., 0]) * (boxes1[..., 3] - boxes1[..., 1])
    area2 = (boxes2[..., 2] - boxes2[..., 0]) * (boxes2[..., 3] - boxes2[..., 1])
    inter_wh = torch.minimum(boxes1[..., 2:], boxes2[..., 2:]) - torch.maximum(
        boxes1[..., :2], boxes2[..., :2]
    )
    inter_wh = inter_wh.clamp(min=0)
    inter = inter_wh[..., 0] * inter_wh[..., 1]
    union = area1 + area2 - inter
    iou = (inter + eps) / (union + eps)
    hull_wh = torch.maximum(boxes1[..., 2:], boxes2[..., 2:]) - torch.minimum(
        boxes1[..., :2], boxes2[..., :2]
    )
    hull_wh = hull_wh.clamp(min=0)
    hull = hull_wh[..., 0] * hull_wh[..., 1]
    return iou - (hull - union + eps) / (hull + eps)


def cxcywh_generalized_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """:func:`generalized_box_iou` of normalised ``cxcywh`` boxes (``(..., 4)``, broadcastable)."""
    return generalized_box_iou(box_convert(boxes1, "cxcywh", "xyxy"), box_convert(boxes2, "cxcywh", "xyxy"))


def dice_coefficient(probs: Tensor, targets: Tensor, smooth: float = 1.0) -> Tensor:
    """Soft dice ``(2 sum(pt) + s) / (sum(p) + sum(t) + s)`` over the last axis, pairwise over the one before.

    Args:
        probs: ``(..., N, P)`` probabilities (``P`` pixels).
        targets: ``(..., M, P)`` binary masks (any dtype).
    Returns:
        ``(..., N, M)`` dice coefficient of every (prediction, target) pair.
    """
    targets = targets.to(probs.dtype)
    numerator = 2 * probs @ targets.transpose(-1, -2)
    denominator = probs.sum(-1)[..., :, None] + targets.sum(-1)[..., None, :]
    return (numerator + smooth) / (denominator + smooth)


def dice_loss(
    logits: Tensor, targets: Tensor, num_masks: Union[float, Tensor], smooth: float = 1.0
) -> Tensor:
    """Paired dice loss ``1 - dice``, summed over masks and divided by ``num_masks``.

    Args:
        logits: ``(M, P)`` mask logits, flattened pixels.
        targets: ``(M, P)`` binary masks.
    Returns:
        0-d tensor.
    """
    probs = logits.sigmoid()
    targets = targets.to(probs.dtype)
    numerator = 2 * (probs * targets).sum(-1)
    denominator = probs.sum(-1) + targets.sum(-1)
    return (1 - (numerator + smooth) / (denominator + smooth)).sum() / num_masks


def mask_focal_loss(
    logits: Tensor, targets: Tensor, num_masks: Union[float, Tensor], alpha: float = 0.25, gamma: float = 2.0
) -> Tensor:
    """Sigmoid focal loss of each mask, averaged over its pixels, summed over masks, divided by ``num_masks``.

    Args:
        logits: ``(M, P)`` mask logits, flattened pixels.
        targets: ``(M, P)`` binary masks.
    Returns:
        0-d tensor.
    """
    loss = sigmoid_focal_loss(logits, targets.to(logits.dtype), alpha=alpha, gamma=gamma, reduction="none")
    return loss.mean(-1).sum() / num_masks


def focal_class_cost(logits: Tensor, alpha: float = 0.25, gamma: float = 2.0) -> Tensor:
    """Focal-style cost of labelling an entry positive: ``a (1-p)^g (-log p) - (1-a) p^g (-log(1-p))``.

    ``p = sigmoid(logits)``; ``1e-8`` is added inside both logarithms (authors' code). Element-wise.
    """
    prob = logits.sigmoid()
    pos = alpha * (1 - prob) ** gamma * -(prob + _COST_LOG_EPS).log()
    neg = (1 - alpha) * prob**gamma * -(1 - prob + _COST_LOG_EPS).log()
    return pos - neg


def contrastive_loss(
    query_embeds: Tensor, sentence_feature: Tensor, query_idx: Tensor, scale: float
) -> Tensor:
    """Visual-linguistic contrastive loss: cross-entropy over the video queries against the matched one.

    ``s_n = (query_embeds_n / scale) . sentence_feature``, ``log_softmax`` over queries, minus the
    log-probability of the matched query, averaged over the batch. Videos whose ``query_idx`` is ``-1`` (no
    referred trajectory matched) contribute 0 but still count in the batch mean.

    Args:
        query_embeds: ``(B, N, D)`` video-query embeddings.
        sentence_feature: ``(B, D)`` sentence feature.
        query_idx: ``(B,)`` long, matched query per video, ``-1`` for none.
        scale: divisor of the query embeddings (authors' code: ``D``; paper: ``sqrt(D)``).
    Returns:
        0-d tensor.
    """
    sim = torch.einsum("bnd,bd->bn", query_embeds / scale, sentence_feature)  # B, N
    log_prob = F.log_softmax(sim, dim=-1)
    has_match = query_idx >= 0
    picked = log_prob.gather(1, query_idx.clamp(min=0)[:, None])[:, 0]  # B
    return -(picked * has_match.to(picked.dtype)).sum() / query_embeds.shape[0]
