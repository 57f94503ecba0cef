"""soc/modeling/matcher.py: cost terms against independent numpy formulas, assignment, batching, empty
targets."""

import numpy as np
import torch
from detectron2.config import get_cfg

from soc.config import add_soc_config
from soc.modeling.matcher import HungarianTrajectoryMatcher

ONLY = {
    "class": dict(cost_class=1.0, cost_dice=0.0, cost_bbox=0.0, cost_giou=0.0),
    "dice": dict(cost_class=0.0, cost_dice=1.0, cost_bbox=0.0, cost_giou=0.0),
    "bbox": dict(cost_class=0.0, cost_dice=0.0, cost_bbox=1.0, cost_giou=0.0),
    "giou": dict(cost_class=0.0, cost_dice=0.0, cost_bbox=0.0, cost_giou=1.0),
}


def np_bilinear(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Bilinear resize of the last two axes with half-pixel centres (PyTorch's align_corners=False)."""

    def axis_weights(n_in, n_out):
        src = np.maximum((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = np.floor(src).astype(int)
        i1 = np.minimum(i0 + 1, n_in - 1)
        w = np.zeros((n_out, n_in))
        w[np.arange(n_out), i0] += 1 - (src - i0)
        w[np.arange(n_out), i1] += src - i0
        return w

    wh, ww = axis_weights(x.shape[-2], out_h), axis_weights(x.shape[-1], out_w)
    return np.einsum("ih,...hw,jw->...ij", wh, x, ww)


def np_giou(a, b, eps=1e-6):
    """GIoU of cxcywh boxes with the authors' eps, scalar numpy."""
    ax0, ay0, ax1, ay1 = a[0] - a[2] / 2, a[1] - a[3] / 2, a[0] + a[2] / 2, a[1] + a[3] / 2
    bx0, by0, bx1, by1 = b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2
    inter = max(min(ax1, bx1) - max(ax0, bx0), 0) * max(min(ay1, by1) - max(ay0, by0), 0)
    union = a[2] * a[3] + b[2] * b[3] - inter
    hull = (max(ax1, bx1) - min(ax0, bx0)) * (max(ay1, by1) - min(ay0, by0))
    return (inter + eps) / (union + eps) - (hull - union + eps) / (hull + eps)


def random_outputs(T, B, N, h, w, K=1, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return {
        "pred_cls": torch.randn(T, B, N, K, generator=g, dtype=dtype),
        "pred_boxes": torch.rand(T, B, N, 4, generator=g, dtype=dtype) * 0.5 + 0.25,
        "pred_masks": torch.randn(T, B, N, h, w, generator=g, dtype=dtype) * 3,
    }


def random_target(T, H, W, I=None, seed=0):
    """One clip; I=None gives the single-trajectory layout."""
    g = torch.Generator().manual_seed(seed)
    shape = (T,) if I is None else (T, I)
    visible = torch.rand(*shape, generator=g) > 0.3
    masks = (torch.rand(*shape, H, W, generator=g) > 0.5) & visible[..., None, None]
    boxes = (torch.rand(*shape, 4, generator=g) * 0.5 + 0.2) * visible[..., None]
    return {"masks": masks, "boxes": boxes, "is_visible": visible}


# ------------------------------------------------------------------ each cost term, independently computed
def test_class_cost_averages_over_visible_frames():
    out = random_outputs(T=3, B=1, N=2, h=2, w=2)
    tgt = random_target(3, 2, 2)
    tgt["is_visible"] = torch.tensor([True, False, True])
    cost = HungarianTrajectoryMatcher(**ONLY["class"]).compute_costs(out, [tgt])[0]
    p = torch.sigmoid(out["pred_cls"][:, 0, :, 0]).numpy()  # T, N
    c = 0.25 * (1 - p) ** 2 * -np.log(p) - 0.75 * p**2 * -np.log(1 - p)
    expected = c[[0, 2]].mean(0)
    np.testing.assert_allclose(cost[:, 0].numpy(), expected, rtol=1e-6)


def test_dice_cost_upsamples_bilinearly_and_averages_over_all_frames():
    out = random_outputs(T=2, B=1, N=3, h=2, w=3)
    tgt = random_target(2, 4, 6)
    tgt["is_visible"] = torch.tensor([True, False])
    tgt["masks"][1] = False  # absent frame, still counted in the mean
    cost = HungarianTrajectoryMatcher(**ONLY["dice"]).compute_costs(out, [tgt])[0]
    probs = 1 / (1 + np.exp(-np_bilinear(out["pred_masks"][:, 0].numpy(), 4, 6)))  # T, N, 4, 6
    gt = tgt["masks"].numpy().astype(np.float64)
    dice = np.array(
        [
            [(2 * (probs[t, n] * gt[t]).sum() + 1) / (probs[t, n].sum() + gt[t].sum() + 1) for n in range(3)]
            for t in range(2)
        ]
    )
    np.testing.assert_allclose(cost[:, 0].numpy(), -dice.mean(0), rtol=1e-10)


def test_box_costs_average_over_all_frames_including_absent():
    out = random_outputs(T=3, B=1, N=2, h=2, w=2, seed=5)
    tgt = random_target(3, 2, 2, seed=5)
    tgt["is_visible"] = torch.tensor([True, False, True])
    tgt["boxes"][1] = 0
    pb, gb = out["pred_boxes"][:, 0].numpy(), tgt["boxes"].numpy().astype(np.float64)
    l1 = HungarianTrajectoryMatcher(**ONLY["bbox"]).compute_costs(out, [tgt])[0]
    np.testing.assert_allclose(l1[:, 0].numpy(), np.abs(pb - gb[:, None]).sum(-1).mean(0), rtol=1e-6)
    giou = HungarianTrajectoryMatcher(**ONLY["giou"]).compute_costs(out, [tgt])[0]
    expected = [-np.mean([np_giou(pb[t, n], gb[t]) for t in range(3)]) for n in range(2)]
    np.testing.assert_allclose(giou[:, 0].numpy(), expected, rtol=1e-6)


def test_total_cost_is_the_weighted_sum():
    out = random_outputs(T=2, B=1, N=4, h=3, w=3, seed=7)
    tgt = random_target(2, 6, 6, seed=7)
    parts = {k: HungarianTrajectoryMatcher(**v).compute_costs(out, [tgt])[0] for k, v in ONLY.items()}
    total = HungarianTrajectoryMatcher().compute_costs(out, [tgt])[0]  # defaults 2, 5, 2, 2
    expected = 2 * parts["class"] + 5 * parts["dice"] + 2 * parts["bbox"] + 2 * parts["giou"]
    torch.testing.assert_close(total, expected)


# ------------------------------------------------------------------ assignment
def _constructed_case():
    """T=2, N=3, 4x4; GT trajectory: top-left square in frame 0, bottom-right in frame 1."""
    T, N = 2, 3
    gt = torch.zeros(T, 4, 4, dtype=torch.bool)
    gt[0, :2, :2] = True
    gt[1, 2:, 2:] = True
    gt_boxes = torch.tensor([[0.25, 0.25, 0.5, 0.5], [0.75, 0.75, 0.5, 0.5]])
    masks = torch.full((T, 1, N, 4, 4), -10.0)
    masks[:, 0, 1][gt] = 10.0  # query 1 follows the object
    masks[0, 0, 2][gt[0]] = 10.0  # query 2 only in frame 0, then the top-right corner
    masks[1, 0, 2, :2, 2:] = 10.0
    masks[:, 0, 0, 2:, :2] = 10.0  # query 0 sits bottom-left
    boxes = torch.tensor([[0.25, 0.75, 0.5, 0.5], gt_boxes[0].tolist(), gt_boxes[0].tolist()])
    boxes = torch.stack([boxes, torch.stack([boxes[0], gt_boxes[1], torch.tensor([0.75, 0.25, 0.5, 0.5])])])
    out = {"pred_cls": torch.zeros(T, 1, N, 1), "pred_boxes": boxes[:, None], "pred_masks": masks}
    target = {"masks": gt, "boxes": gt_boxes, "is_visible": torch.ones(T, dtype=torch.bool)}
    return out, target


def test_matcher_picks_the_query_that_follows_the_trajectory():
    out, target = _constructed_case()
    ((q, t),) = HungarianTrajectoryMatcher()(out, [target])
    assert q.tolist() == [1] and t.tolist() == [0]
    assert q.dtype == t.dtype == torch.int64


def test_matcher_two_trajectories():
    out, target = _constructed_case()
    # second trajectory: the bottom-left square in both frames (query 0)
    second = torch.zeros(2, 4, 4, dtype=torch.bool)
    second[:, 2:, :2] = True
    multi = {
        "masks": torch.stack([second, target["masks"]], 1),  # T, I, H, W: trajectory 1 is query 1's
        "boxes": torch.stack([torch.tensor([[0.25, 0.75, 0.5, 0.5]] * 2), target["boxes"]], 1),
        "is_visible": torch.ones(2, 2, dtype=torch.bool),
    }
    ((q, t),) = HungarianTrajectoryMatcher()(out, [multi])
    assert q.tolist() == [0, 1] and t.tolist() == [0, 1]


def test_single_and_instance_axis_layouts_agree():
    out = random_outputs(T=2, B=1, N=5, h=3, w=4, seed=11)
    tgt = random_target(2, 6, 8, seed=11)
    multi = {
        "masks": tgt["masks"][:, None],
        "boxes": tgt["boxes"][:, None],
        "is_visible": tgt["is_visible"][:, None],
    }
    m = HungarianTrajectoryMatcher()
    torch.testing.assert_close(
        m.compute_costs(out, [tgt])[0], m.compute_costs(out, [multi])[0], rtol=0, atol=0
    )


def test_batched_equals_single():
    B = 3
    out = random_outputs(T=3, B=B, N=6, h=4, w=4, seed=21)
    targets = [
        random_target(3, 8, 8, seed=30),
        random_target(3, 8, 8, I=2, seed=31),
        random_target(3, 8, 8, seed=32),
    ]
    m = HungarianTrajectoryMatcher()
    batched_costs = m.compute_costs(out, targets)
    batched = m(out, targets)
    for b in range(B):
        single_out = {k: v[:, b : b + 1] for k, v in out.items()}
        torch.testing.assert_close(m.compute_costs(single_out, [targets[b]])[0], batched_costs[b])
        ((q, t),) = m(single_out, [targets[b]])
        assert torch.equal(q, batched[b][0]) and torch.equal(t, batched[b][1])
    assert [len(q) for q, _ in batched] == [1, 2, 1]


def test_targets_of_different_sizes_are_zero_padded():
    out = random_outputs(T=2, B=2, N=3, h=2, w=3, seed=41)
    small, big = random_target(2, 4, 4, seed=42), random_target(2, 4, 6, seed=43)
    padded = dict(small, masks=torch.nn.functional.pad(small["masks"], (0, 2)))
    m = HungarianTrajectoryMatcher()
    torch.testing.assert_close(m.compute_costs(out, [small, big]), m.compute_costs(out, [padded, big]))


# ------------------------------------------------------------------ empty and absent targets
def test_video_without_targets_gets_no_match():
    out = random_outputs(T=2, B=2, N=4, h=2, w=2, seed=51)
    empty = {
        "masks": torch.zeros(2, 0, 4, 4, dtype=torch.bool),
        "boxes": torch.zeros(2, 0, 4),
        "is_visible": torch.zeros(2, 0, dtype=torch.bool),
    }
    full = random_target(2, 4, 4, seed=52)
    m = HungarianTrajectoryMatcher()
    costs = m.compute_costs(out, [empty, full])
    assert costs[0].shape == (4, 0)
    indices = m(out, [empty, full])
    assert indices[0][0].numel() == 0 and indices[0][1].numel() == 0
    assert len(indices[1][0]) == 1
    assert m(out, [empty, empty])[1][0].numel() == 0


def test_object_absent_in_every_frame():
    out = random_outputs(T=3, B=1, N=4, h=2, w=2, seed=61)
    absent = {
        "masks": torch.zeros(3, 4, 4, dtype=torch.bool),
        "boxes": torch.zeros(3, 4),
        "is_visible": torch.zeros(3, dtype=torch.bool),
    }
    # no visible frame: the class term is 0 (not NaN) and the other terms still rank the queries
    assert torch.equal(
        HungarianTrajectoryMatcher(**ONLY["class"]).compute_costs(out, [absent])[0],
        torch.zeros(4, 1, dtype=torch.float64),
    )
    cost = HungarianTrajectoryMatcher().compute_costs(out, [absent])[0]
    assert torch.isfinite(cost).all()
    ((q, t),) = HungarianTrajectoryMatcher()(out, [absent])
    assert q.tolist() == [int(cost[:, 0].argmin())] and t.tolist() == [0]


# ------------------------------------------------------------------ K > 1 and config
def test_multiclass_cost_uses_category_of_first_visible_frame():
    T, N, K = 3, 2, 3
    cls = torch.full((T, 1, N, K), -5.0)
    cls[:, 0, 0, 0] = 5.0  # query 0 is confident about class 0
    cls[:, 0, 1, 2] = 5.0  # query 1 about class 2
    out = {
        "pred_cls": cls,
        "pred_boxes": torch.full((T, 1, N, 4), 0.5),
        "pred_masks": torch.zeros(T, 1, N, 2, 2),
    }
    tgt = random_target(T, 2, 2, seed=71)
    tgt["is_visible"] = torch.tensor([False, True, True])
    tgt["labels"] = torch.tensor([0, 2, 2])  # frame 0 absent: its label is not the category
    ((q, _),) = HungarianTrajectoryMatcher(**ONLY["class"])(out, [tgt])
    assert q.tolist() == [1]
    tgt["labels"] = torch.tensor([2, 0, 0])
    ((q, _),) = HungarianTrajectoryMatcher(**ONLY["class"])(out, [tgt])
    assert q.tolist() == [0]


def test_from_config():
    cfg = get_cfg()
    add_soc_config(cfg)
    cfg.MODEL.SOC.MATCHER.COST_CLASS = 3.0
    cfg.MODEL.SOC.MATCHER.COST_DICE = 4.0
    cfg.MODEL.SOC.MATCHER.COST_BBOX = 1.5
    cfg.MODEL.SOC.MATCHER.COST_GIOU = 0.5
    cfg.MODEL.SOC.LOSS.FOCAL_ALPHA = 0.3
    cfg.MODEL.SOC.LOSS.FOCAL_GAMMA = 1.0
    m = HungarianTrajectoryMatcher(cfg)
    assert (m.cost_class, m.cost_dice, m.cost_bbox, m.cost_giou) == (3.0, 4.0, 1.5, 0.5)
    assert (m.focal_alpha, m.focal_gamma) == (0.3, 1.0)
