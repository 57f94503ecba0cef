"""soc/modeling/losses.py: each function against hand-computed numbers or an independent numpy formula."""

import math

import numpy as np
import pytest
import torch
from torchvision.ops import generalized_box_iou as tv_generalized_box_iou

from soc.modeling.losses import (
    contrastive_loss,
    cxcywh_generalized_box_iou,
    dice_coefficient,
    dice_loss,
    focal_class_cost,
    generalized_box_iou,
    mask_focal_loss,
)

LN3 = math.log(3.0)


def _np_focal(logits, targets, alpha=0.25, gamma=2.0):
    p = 1.0 / (1.0 + np.exp(-logits))
    return -alpha * targets * (1 - p) ** gamma * np.log(p) - (1 - alpha) * (
        1 - targets
    ) * p**gamma * np.log(1 - p)


# ------------------------------------------------------------------ GIoU
def test_giou_without_eps_equals_torchvision():
    g = torch.Generator().manual_seed(0)
    xy = torch.rand(7, 2, generator=g, dtype=torch.float64)
    a = torch.cat([xy, xy + torch.rand(7, 2, generator=g, dtype=torch.float64) + 0.01], -1)
    xy = torch.rand(5, 2, generator=g, dtype=torch.float64)
    b = torch.cat([xy, xy + torch.rand(5, 2, generator=g, dtype=torch.float64) + 0.01], -1)
    ours = generalized_box_iou(a[:, None], b[None], eps=0.0)
    torch.testing.assert_close(ours, tv_generalized_box_iou(a, b), rtol=0, atol=1e-12)
    # paired form = diagonal of the pairwise form
    torch.testing.assert_close(
        generalized_box_iou(a[:5], b), torch.diag(generalized_box_iou(a[:5, None], b[None]))
    )


def test_giou_eps_on_degenerate_boxes():
    zero = torch.zeros(4, dtype=torch.float64)
    # zero box vs zero box: (0 + e) / (0 + e) - (0 - 0 + e) / (0 + e) = 0, where torchvision gives NaN
    assert generalized_box_iou(zero, zero).item() == 0.0
    assert torch.isnan(tv_generalized_box_iou(zero[None], zero[None])).all()
    # box [0.2, 0.6]^2 (area 0.16) vs the zero box: I = 0, U = 0.16, hull [0, 0.6]^2 = 0.36
    box = torch.tensor([0.2, 0.2, 0.6, 0.6], dtype=torch.float64)
    e = 1e-6
    expected = e / (0.16 + e) - (0.36 - 0.16 + e) / (0.36 + e)
    assert generalized_box_iou(box, zero).item() == pytest.approx(expected, rel=1e-12)
    # identical boxes: IoU 1, and the hull term keeps e / (A + e) (1 with torchvision)
    assert generalized_box_iou(box, box).item() == pytest.approx(1 - e / (0.16 + e), rel=1e-12)


def test_giou_cxcywh_hand_value():
    # cxcywh (0.5, 0.5, 0.4, 0.4) = xyxy [0.3, 0.7]^2; (0.6, 0.5, 0.4, 0.2) = x [0.4, 0.8], y [0.4, 0.6]
    a = torch.tensor([0.5, 0.5, 0.4, 0.4], dtype=torch.float64)
    b = torch.tensor([0.6, 0.5, 0.4, 0.2], dtype=torch.float64)
    inter, union, hull = 0.3 * 0.2, 0.16 + 0.08 - 0.06, 0.5 * 0.4
    e = 1e-6
    expected = (inter + e) / (union + e) - (hull - union + e) / (hull + e)
    assert cxcywh_generalized_box_iou(a, b).item() == pytest.approx(expected, rel=1e-12)


# ------------------------------------------------------------------ dice
def test_dice_loss_hand_value():
    # probs [0.5, 0.5, 0.75, 0.25], target [1, 0, 1, 0]: sum(pt) = 1.25, sum(p) = 2, sum(t) = 2
    logits = torch.tensor([[0.0, 0.0, LN3, -LN3]], dtype=torch.float64)
    target = torch.tensor([[1, 0, 1, 0]], dtype=torch.bool)
    assert dice_loss(logits, target, 1).item() == pytest.approx(1 - 3.5 / 5.0, rel=1e-12)
    # second mask: all-zero logits vs empty target: sum(p) = 2 -> 1 - 1/3; both summed, / num_masks 4
    logits2 = torch.cat([logits, torch.zeros(1, 4, dtype=torch.float64)])
    target2 = torch.cat([target, torch.zeros(1, 4, dtype=torch.bool)])
    assert dice_loss(logits2, target2, 4).item() == pytest.approx((0.3 + 2 / 3) / 4, rel=1e-12)


def test_dice_coefficient_pairwise():
    g = torch.Generator().manual_seed(1)
    probs = torch.rand(2, 3, 6, generator=g, dtype=torch.float64)  # T, N, P
    tgt = torch.rand(2, 2, 6, generator=g) > 0.5  # T, M, P
    ours = dice_coefficient(probs, tgt)
    p, t = probs.numpy(), tgt.numpy().astype(np.float64)
    for k in range(2):
        for n in range(3):
            for m in range(2):
                ref = (2 * (p[k, n] * t[k, m]).sum() + 1) / (p[k, n].sum() + t[k, m].sum() + 1)
                assert ours[k, n, m].item() == pytest.approx(ref, rel=1e-12)


# ------------------------------------------------------------------ focal terms
def test_mask_focal_loss_hand_value_and_numpy():
    # one pixel, logit 0 (p = 0.5), target 1: 0.25 * 0.5^2 * ln 2
    logits = torch.zeros(1, 1, dtype=torch.float64)
    assert mask_focal_loss(logits, torch.ones(1, 1), 1).item() == pytest.approx(
        0.25 * 0.25 * math.log(2), rel=1e-12
    )
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(3, 8, generator=g, dtype=torch.float64) * 3
    tgt = torch.rand(3, 8, generator=g) > 0.5
    ref = _np_focal(logits.numpy(), tgt.numpy().astype(np.float64)).mean(1).sum() / 5.0
    assert mask_focal_loss(logits, tgt, 5.0).item() == pytest.approx(ref, rel=1e-10)
    ref_a5 = _np_focal(logits.numpy(), tgt.numpy().astype(np.float64), 0.5, 1.0).mean(1).sum() / 5.0
    assert mask_focal_loss(logits, tgt, 5.0, alpha=0.5, gamma=1.0).item() == pytest.approx(ref_a5, rel=1e-10)


def test_focal_class_cost():
    # logit ln 3: p = 0.75 -> 0.25 * 0.0625 * -ln 0.75 - 0.75 * 0.5625 * -ln 0.25
    x = torch.tensor([LN3], dtype=torch.float64)
    expected = 0.25 * 0.0625 * -math.log(0.75) - 0.75 * 0.5625 * -math.log(0.25)
    assert focal_class_cost(x).item() == pytest.approx(expected, rel=1e-6)
    # the cost falls as the logit rises: a confident positive is the cheapest match
    xs = torch.linspace(-6, 6, 13, dtype=torch.float64)
    assert (focal_class_cost(xs).diff() < 0).all()


# ------------------------------------------------------------------ contrastive
def test_contrastive_hand_value():
    q = torch.tensor([[[2.0, 0.0], [0.0, 2.0]]], dtype=torch.float64)  # B=1, N=2, D=2
    s = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    # scale D=2: similarities [1, 0]; -log softmax at query 0 = log(1 + e^-1)
    assert contrastive_loss(q, s, torch.tensor([0]), 2.0).item() == pytest.approx(math.log(1 + math.exp(-1)))
    assert contrastive_loss(q, s, torch.tensor([1]), 2.0).item() == pytest.approx(math.log(1 + math.e))
    # scale sqrt(2): similarities [sqrt 2, 0]
    r2 = math.sqrt(2)
    assert contrastive_loss(q, s, torch.tensor([0]), r2).item() == pytest.approx(math.log(1 + math.exp(-r2)))
    # batch mean; a video without match (-1) adds 0 but counts in the mean
    q2 = torch.cat([q, q])
    s2 = torch.cat([s, s])
    assert contrastive_loss(q2, s2, torch.tensor([0, -1]), 2.0).item() == pytest.approx(
        math.log(1 + math.exp(-1)) / 2
    )


def test_contrastive_minimal_when_sentence_aligns_with_matched_query():
    g = torch.Generator().manual_seed(3)
    q = torch.randn(1, 5, 8, generator=g, dtype=torch.float64)
    q = q / q.norm(dim=-1, keepdim=True) * 8  # equal norms
    matched = 2
    aligned = q[:, matched] / q[:, matched].norm() * 8
    best = contrastive_loss(q, aligned, torch.tensor([matched]), 8.0)
    for _ in range(50):
        s = torch.randn(1, 8, generator=g, dtype=torch.float64)
        s = s / s.norm() * 8
        assert contrastive_loss(q, s, torch.tensor([matched]), 8.0) >= best - 1e-12
    for other in range(5):
        if other != matched:
            s = q[:, other] / q[:, other].norm() * 8
            assert contrastive_loss(q, s, torch.tensor([matched]), 8.0) > best


# ------------------------------------------------------------------ gradients (finite differences, float64)
def test_gradcheck_losses():
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 6, generator=g, dtype=torch.float64, requires_grad=True)
    tgt = (torch.rand(2, 6, generator=g) > 0.5).double()
    assert torch.autograd.gradcheck(lambda x: dice_loss(x, tgt, 3.0), (logits,))
    assert torch.autograd.gradcheck(lambda x: mask_focal_loss(x, tgt, 3.0), (logits,))
    boxes = torch.tensor(
        [[0.5, 0.5, 0.3, 0.4], [0.3, 0.6, 0.2, 0.1]], dtype=torch.float64, requires_grad=True
    )
    gt = torch.tensor([[0.45, 0.5, 0.35, 0.3], [0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda b: cxcywh_generalized_box_iou(b, gt), (boxes,))
    q = torch.randn(2, 3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    s = torch.randn(2, 4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: contrastive_loss(a, b, torch.tensor([1, 2]), 4.0), (q, s))
