"""soc/modeling/criterion.py: hand-computed losses, naming, normalisation, gradients, and parity with the
authors' criterion on the training case of the parity bundle (``$SOC_PARITY_DIR/case_train.pt``)."""

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from detectron2.config import get_cfg

from soc.config import add_soc_config
from soc.modeling.criterion import LOSS_NAMES, SOCCriterion
from soc.modeling.matcher import HungarianTrajectoryMatcher

PARITY_DIR = Path(os.environ.get("SOC_PARITY_DIR", ""))  # the authors' outputs, see tests/test_parity.py
LN3 = math.log(3.0)
LN43 = math.log(4.0 / 3.0)


def make_criterion(**kwargs) -> SOCCriterion:
    kwargs.setdefault("num_aux_layers", 0)
    return SOCCriterion(matcher=HungarianTrajectoryMatcher(), **kwargs)


def np_focal(logits, targets, alpha=0.25, gamma=2.0):
    p = 1.0 / (1.0 + np.exp(-logits))
    return -alpha * targets * (1 - p) ** gamma * np.log(p) - (1 - alpha) * (
        1 - targets
    ) * p**gamma * np.log(1 - p)


def tiny_case(dtype=torch.float64):
    """T=1, B=1, N=2, K=1, D=2, 2x2 masks at the target size; query 0 is the match (see the hand values)."""
    out = {
        "pred_masks": torch.tensor(
            [[[[[0.0, 0.0], [LN3, -LN3]], [[-5.0, -5.0], [-5.0, -5.0]]]]], dtype=dtype
        ),
        "pred_boxes": torch.tensor([[[[0.5, 0.5, 0.4, 0.4], [0.1, 0.1, 0.1, 0.1]]]], dtype=dtype),
        "pred_cls": torch.tensor([[[[LN3], [-LN3]]]], dtype=dtype),
        "pred_video_queries": torch.tensor([[[2.0, 0.0], [0.0, 2.0]]], dtype=dtype),
        "text_sentence_feature": torch.tensor([[1.0, 0.0]], dtype=dtype),
    }
    target = {
        "masks": torch.tensor([[[True, False], [True, False]]]),
        "boxes": torch.tensor([[0.6, 0.5, 0.4, 0.2]], dtype=dtype),
        "is_visible": torch.tensor([True]),
    }
    return out, target


def random_case(T=2, B=1, N=4, h=3, w=3, H=6, W=6, D=8, seed=0, dtype=torch.float64, aux=0):
    g = torch.Generator().manual_seed(seed)

    def layer():
        return {
            "pred_masks": torch.randn(T, B, N, h, w, generator=g, dtype=dtype) * 2,
            "pred_boxes": torch.rand(T, B, N, 4, generator=g, dtype=dtype) * 0.5 + 0.25,
            "pred_cls": torch.randn(T, B, N, 1, generator=g, dtype=dtype),
            "pred_video_queries": torch.randn(B, N, D, generator=g, dtype=dtype),
            "text_sentence_feature": torch.randn(B, D, generator=g, dtype=dtype),
        }

    out = layer()
    if aux:
        out["aux_outputs"] = [layer() for _ in range(aux)]
    targets = []
    for _ in range(B):
        visible = torch.rand(T, generator=g) > 0.3
        visible[0] = True
        targets.append(
            {
                "masks": (torch.rand(T, H, W, generator=g) > 0.5) & visible[:, None, None],
                "boxes": (torch.rand(T, 4, generator=g, dtype=dtype) * 0.4 + 0.2) * visible[:, None],
                "is_visible": visible,
            }
        )
    return out, targets


# ------------------------------------------------------------------ hand-computed values
def test_tiny_case_hand_values():
    out, target = tiny_case()
    crit = make_criterion()
    losses = crit(out, [target])
    assert crit.last_indices[0][0][0].tolist() == [0]
    assert set(losses) == set(LOSS_NAMES)
    # num_masks = 1. Pixels (p, t): (.5, 1), (.5, 0), (.75, 1), (.25, 0)
    focal = (
        0.25 * 0.25 * math.log(2) + 0.75 * 0.25 * math.log(2) + 0.25 * 0.0625 * LN43 + 0.75 * 0.0625 * LN43
    ) / 4
    assert losses["loss_sigmoid_focal"].item() == pytest.approx(focal, rel=1e-12)
    assert losses["loss_dice"].item() == pytest.approx(1 - (2 * 1.25 + 1) / (2 + 2 + 1), rel=1e-12)
    # class: matched query p=.75 target 1, other query p=.25 target 0
    assert losses["loss_cls"].item() == pytest.approx(0.25 * 0.0625 * LN43 + 0.75 * 0.0625 * LN43, rel=1e-12)
    assert losses["loss_bbox"].item() == pytest.approx(0.1 + 0.2, rel=1e-12)
    # boxes x [0.3, 0.7] y [0.3, 0.7] vs x [0.4, 0.8] y [0.4, 0.6]
    e = 1e-6
    inter, union, hull = 0.3 * 0.2, 0.16 + 0.08 - 0.06, 0.5 * 0.4
    giou = (inter + e) / (union + e) - (hull - union + e) / (hull + e)
    assert losses["loss_giou"].item() == pytest.approx(1 - giou, rel=1e-12)
    # similarities (q / D) . s = [1, 0]
    assert losses["loss_con"].item() == pytest.approx(math.log(1 + math.exp(-1)), rel=1e-12)


def test_contrastive_sqrt_dim_scale():
    out, target = tiny_case()
    loss = make_criterion(contrastive_scale="sqrt_dim")(out, [target])["loss_con"]
    assert loss.item() == pytest.approx(math.log(1 + math.exp(-math.sqrt(2))), rel=1e-12)


def test_absent_frame_class_and_box_terms():
    """Class loss: positive only in visible frames; box and mask losses: all frames; / num_masks = T."""
    out, targets = random_case(T=3, N=3, seed=3)
    t = targets[0]
    t["is_visible"] = torch.tensor([True, False, True])
    t["masks"][1] = False
    t["boxes"][1] = 0
    crit = make_criterion()
    losses = crit(out, targets)
    q = int(crit.last_indices[0][0][0])
    logits = out["pred_cls"][:, 0, :, 0].numpy()  # T, N
    cls_target = np.zeros_like(logits)
    cls_target[[0, 2], q] = 1
    assert losses["loss_cls"].item() == pytest.approx(np_focal(logits, cls_target).sum() / 3, rel=1e-10)
    pb, gb = out["pred_boxes"][:, 0, q].numpy(), t["boxes"].numpy()
    assert losses["loss_bbox"].item() == pytest.approx(np.abs(pb - gb).sum() / 3, rel=1e-10)
    # the absent frame contributes its dice term 1 - 1 / (sum(p) + 1)
    probs = torch.sigmoid(
        torch.nn.functional.interpolate(
            out["pred_masks"][:, 0, q][:, None], size=(6, 6), mode="bilinear", align_corners=False
        )
    )[:, 0].numpy()
    gt = t["masks"].numpy().astype(np.float64)
    dice = [1 - (2 * (probs[k] * gt[k]).sum() + 1) / (probs[k].sum() + gt[k].sum() + 1) for k in range(3)]
    assert losses["loss_dice"].item() == pytest.approx(sum(dice) / 3, rel=1e-10)


def test_multiclass_class_loss_uses_per_frame_labels():
    out, targets = random_case(T=2, N=3, seed=5)
    out["pred_cls"] = torch.randn(2, 1, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    targets[0]["is_visible"] = torch.tensor([True, True])
    targets[0]["labels"] = torch.tensor([3, 1])
    crit = make_criterion(num_classes=4)
    loss = crit(out, targets)["loss_cls"]
    q = int(crit.last_indices[0][0][0])
    tgt = np.zeros((2, 3, 4))
    tgt[0, q, 3] = tgt[1, q, 1] = 1
    assert loss.item() == pytest.approx(np_focal(out["pred_cls"][:, 0].numpy(), tgt).sum() / 2, rel=1e-10)


def test_batch_of_two_is_the_normalised_sum_of_singles():
    out, targets = random_case(T=2, B=2, N=4, seed=7)
    crit = make_criterion()
    both = crit(out, targets)
    singles = [
        crit({k: v[:, b : b + 1] if v.dim() > 3 else v[b : b + 1] for k, v in out.items()}, [targets[b]])
        for b in range(2)
    ]
    for name in LOSS_NAMES:
        if name == "loss_con":  # batch mean
            expected = (singles[0][name] + singles[1][name]) / 2
        else:  # sums / num_masks, num_masks 2 per clip
            expected = (singles[0][name] * 2 + singles[1][name] * 2) / 4
        torch.testing.assert_close(both[name], expected, msg=name)


# ------------------------------------------------------------------ names, weights, configuration
def test_aux_names_weights_and_indices_order():
    out, targets = random_case(aux=2, seed=9)
    crit = make_criterion(num_aux_layers=2)
    losses = crit(out, targets)
    expected = set(LOSS_NAMES) | {f"{n}_{i}" for n in LOSS_NAMES for i in (0, 1)}
    assert set(losses) == expected == set(crit.weight_dict)
    assert crit.weight_dict["loss_dice_1"] == 5 and crit.weight_dict["loss_sigmoid_focal_0"] == 2
    assert crit.weight_dict["loss_con"] == 1 and crit.weight_dict["loss_cls_1"] == 2
    assert len(crit.last_indices) == 3
    matcher = HungarianTrajectoryMatcher()
    for layer, idx in zip([out] + out["aux_outputs"], crit.last_indices):
        ref = matcher(layer, targets)
        assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(idx, ref))
    # aux layer i is computed from aux_outputs[i] alone
    alone = make_criterion()(out["aux_outputs"][1], targets)
    for n in LOSS_NAMES:
        torch.testing.assert_close(losses[f"{n}_1"], alone[n])
    assert "aux_outputs" in out  # inputs not modified


def test_wrong_number_of_aux_layers_is_an_error():
    out, targets = random_case(aux=1, seed=10)
    with pytest.raises(AssertionError, match="aux_outputs"):
        make_criterion(num_aux_layers=2)(out, targets)


def test_zero_contrastive_weight_disables_the_term():
    out, targets = random_case(seed=11)
    del out["pred_video_queries"], out["text_sentence_feature"]
    crit = make_criterion(contrastive_weight=0.0)
    losses = crit(out, targets)
    assert "loss_con" not in losses and "loss_con" not in crit.weight_dict
    assert set(losses) == set(LOSS_NAMES) - {"loss_con"}


def test_from_config():
    cfg = get_cfg()
    add_soc_config(cfg)
    crit = SOCCriterion(cfg)
    assert isinstance(crit.matcher, HungarianTrajectoryMatcher)
    assert crit.num_aux_layers == cfg.MODEL.SOC.DECODER.DEC_LAYERS - 1 == 2
    assert {k: crit.weight_dict[k] for k in LOSS_NAMES} == {
        "loss_sigmoid_focal": 2,
        "loss_dice": 5,
        "loss_con": 1,
        "loss_cls": 2,
        "loss_bbox": 2,
        "loss_giou": 2,
    }
    cfg.MODEL.SOC.LOSS.DEEP_SUPERVISION = False
    cfg.MODEL.SOC.LOSS.CONTRASTIVE_WEIGHT = 0.0
    cfg.MODEL.SOC.LOSS.CONTRASTIVE_SCALE = "sqrt_dim"
    cfg.MODEL.SOC.LOSS.DICE_WEIGHT = 3.0
    crit = SOCCriterion(cfg)
    assert crit.num_aux_layers == 0 and crit.contrastive_scale == "sqrt_dim"
    assert crit.weight_dict == {
        "loss_sigmoid_focal": 2,
        "loss_dice": 3,
        "loss_cls": 2,
        "loss_bbox": 2,
        "loss_giou": 2,
    }


def test_num_masks_is_averaged_over_processes(monkeypatch):
    out, targets = random_case(T=2, seed=12)
    single = make_criterion()(out, targets)
    # pretend a second process holds 6 (frame, trajectory) targets: num_masks = (2 + 6) / 2 = 4 instead of 2
    monkeypatch.setattr("soc.modeling.criterion.comm.get_world_size", lambda: 2)
    monkeypatch.setattr(torch.distributed, "all_reduce", lambda t, *a, **k: t.add_(6.0))
    double = make_criterion()(out, targets)
    for name in LOSS_NAMES:
        factor = 1.0 if name == "loss_con" else 0.5
        torch.testing.assert_close(double[name], single[name] * factor, msg=name)


# ------------------------------------------------------------------ empty / absent targets
def test_clip_without_targets():
    out, _ = random_case(T=2, B=1, N=3, seed=13)
    for v in out.values():
        v.requires_grad_(True)
    empty = {
        "masks": torch.zeros(2, 0, 6, 6, dtype=torch.bool),
        "boxes": torch.zeros(2, 0, 4, dtype=torch.float64),
        "is_visible": torch.zeros(2, 0, dtype=torch.bool),
    }
    crit = make_criterion()
    losses = crit(out, [empty])
    for name in ("loss_sigmoid_focal", "loss_dice", "loss_bbox", "loss_giou", "loss_con"):
        assert losses[name].item() == 0.0, name
    # every class entry is a negative; num_masks = 0 clamped to 1
    neg = np_focal(out["pred_cls"].detach().numpy(), np.zeros((2, 1, 3, 1))).sum()
    assert losses["loss_cls"].item() == pytest.approx(neg, rel=1e-10)
    sum(losses.values()).backward()
    assert out["pred_cls"].grad.abs().sum() > 0


def test_object_absent_in_every_frame():
    out, targets = random_case(T=3, N=3, seed=14)
    t = targets[0]
    t["is_visible"][:] = False
    t["masks"][:] = False
    t["boxes"][:] = 0
    losses = make_criterion()(out, targets)
    assert all(torch.isfinite(v) for v in losses.values())
    neg = np_focal(out["pred_cls"].numpy(), np.zeros((3, 1, 3, 1))).sum() / 3
    assert losses["loss_cls"].item() == pytest.approx(neg, rel=1e-10)  # no positive anywhere


# ------------------------------------------------------------------ gradients
def test_gradients_reach_matched_query_only_for_masks_and_boxes():
    out, targets = random_case(T=2, N=4, D=8, seed=15, dtype=torch.float32)
    for v in out.values():
        v.requires_grad_(True)
    crit = make_criterion()
    losses = crit(out, targets)
    sum(crit.weight_dict[k] * v for k, v in losses.items()).backward()
    q = int(crit.last_indices[0][0][0])
    others = [n for n in range(4) if n != q]
    for key in ("pred_masks", "pred_boxes"):
        grad = out[key].grad
        assert grad[:, 0, q].abs().sum() > 0 and grad[:, 0, others].abs().sum() == 0, key
    assert (out["pred_cls"].grad != 0).all()  # every (frame, query) entry is supervised
    assert (out["pred_video_queries"].grad.abs().sum(-1) > 0).all() and out[
        "text_sentence_feature"
    ].grad.abs().sum() > 0


def test_gradcheck_whole_criterion():
    out, targets = random_case(T=2, N=3, h=2, w=2, H=4, W=4, D=4, seed=16)
    keys = ["pred_masks", "pred_boxes", "pred_cls", "pred_video_queries", "text_sentence_feature"]
    crit = make_criterion()
    weights = crit.weight_dict

    def total(*tensors):
        losses = crit(dict(zip(keys, tensors)), targets)
        return sum(weights[k] * v for k, v in losses.items())

    inputs = tuple(out[k].clone().requires_grad_(True) for k in keys)
    assert torch.autograd.gradcheck(total, inputs)


# ------------------------------------------------------------------ parity with the authors' criterion
def _official_outputs(outputs):
    """The authors' outputs under our key names: their ``pred_logit`` holds the video-query embeddings."""
    ours = {("pred_video_queries" if k == "pred_logit" else k): v for k, v in outputs.items()}
    if "aux_outputs" in ours:
        ours["aux_outputs"] = [_official_outputs(a) for a in ours["aux_outputs"]]
    return ours


def _official_targets_to_clip(frames):
    """Official layout (list over T of per-frame dicts, one instance) -> our per-clip target dict."""
    return {
        "masks": torch.stack([f["masks"][0] for f in frames]),
        "boxes": torch.stack([f["boxes"][0] for f in frames]),
        "is_visible": torch.stack([f["is_ref_inst_visible"] for f in frames]).bool(),
        "labels": torch.stack([f["labels"][0] for f in frames]),
    }


@pytest.fixture(scope="module")
def train_case():
    path = PARITY_DIR / "case_train.pt"
    if not os.environ.get("SOC_PARITY_DIR") or not path.is_file():
        pytest.skip("parity bundle not found (set SOC_PARITY_DIR to the folder of case_train.pt)")
    return torch.load(path, weights_only=True)


@pytest.mark.parity
def test_parity_matcher(train_case):
    outputs = _official_outputs(train_case["outputs"])
    target = _official_targets_to_clip(train_case["targets"])
    matcher = HungarianTrajectoryMatcher()
    for layer, ref_cost, ref_idx in zip(
        [outputs] + outputs["aux_outputs"], train_case["matcher_cost"], train_case["matcher_indices"]
    ):
        cost = matcher.compute_costs(layer, [target])[0]
        assert cost.shape == ref_cost.shape == (20, 1)
        torch.testing.assert_close(cost, ref_cost, rtol=1e-5, atol=1e-5 * ref_cost.abs().max().item())
        ((q, t),) = matcher(layer, [target])
        assert q.tolist() == ref_idx[0][0].tolist() and t.tolist() == ref_idx[0][1].tolist()


@pytest.mark.parity
def test_parity_losses(train_case):
    outputs = _official_outputs(train_case["outputs"])
    target = _official_targets_to_clip(train_case["targets"])
    crit = make_criterion(num_aux_layers=2)
    losses = crit(outputs, [target])
    ref = train_case["losses"]
    assert set(losses) == set(ref)
    assert crit.weight_dict == train_case["weight_dict"]
    for name, value in ref.items():
        assert losses[name].item() == pytest.approx(value.item(), rel=1e-6), name
    for ours, theirs in zip(crit.last_indices, train_case["matcher_indices"]):
        assert ours[0][0].tolist() == theirs[0][0].tolist() and ours[0][1].tolist() == theirs[0][1].tolist()
    total = sum(crit.weight_dict[k] * v for k, v in losses.items())
    assert total.item() == pytest.approx(train_case["total_loss"].item(), rel=1e-6)
    # the absent frame (zero GT box) enters the GIoU loss; the authors' eps keeps it finite
    assert not bool(target["is_visible"][train_case["absent_frame"]])
