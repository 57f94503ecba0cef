"""soc.evaluation.metrics on hand-made masks: the worked examples of docs/formats_and_metrics.md §6 (values
of the official DAVIS code and pycocotools), reproduced to 1e-6, plus hand-derived edge cases."""

import math

import cv2
import numpy as np
import pytest

from soc.evaluation.metrics import (
    a2d_summary,
    boundary_radius,
    coco_mask_ap,
    db_eval_boundary,
    db_eval_iou,
    db_statistics,
    disk,
    evaluate_unsupervised,
    f_measure,
    jf_aggregate,
    sample_iou,
    seg2bmap,
    split_object_masks,
)

from helpers import G, Z, sq

TOL = 1e-6

O = np.ones((5, 5), bool)

# docs/formats_and_metrics.md §6.1: (GT, prediction, J, F, J&F)
SINGLE_FRAME = [
    ("1 identical", G, G, 1, 1, 1),
    ("2 shift right", G, sq(1, 4, 2, 5), 0.5, 1.0, 0.75),
    ("3 shift down", G, sq(2, 5, 1, 4), 0.5, 1.0, 0.75),
    ("4 2x2 inside", G, sq(1, 3, 1, 3), 4 / 9, 22 / 23, 0.700483),
    ("5 both empty", Z, Z, 1, 1, 1),
    ("6 pred empty", G, Z, 0, 0, 0),
    ("7 GT empty", Z, G, 0, 0, 0),
    ("8 both full", O, O, 1, 1, 1),
    ("9 full vs empty", Z, O, 0, 1, 0.5),
    ("10 1px shifted 1", sq(2, 3, 2, 3), sq(2, 3, 3, 4), 0, 1.0, 0.5),
    ("11 1px shifted 2", sq(2, 3, 2, 3), sq(2, 3, 4, 5), 0, 0.5, 0.25),
    ("12 1px diagonal", sq(2, 3, 2, 3), sq(3, 4, 3, 4), 0, 0.75, 0.375),
    ("13 G diagonal", G, sq(2, 5, 2, 5), 4 / 14, 0.909091, 0.597403),
]


@pytest.mark.parametrize("name,gt,pred,j,f,jf", SINGLE_FRAME, ids=[r[0] for r in SINGLE_FRAME])
def test_single_frame_worked_examples(name, gt, pred, j, f, jf):
    got_j = db_eval_iou(gt, pred)
    got_f = db_eval_boundary(gt, pred)
    assert got_j == pytest.approx(j, abs=TOL)
    assert got_f == pytest.approx(f, abs=TOL)
    assert (got_j + got_f) / 2 == pytest.approx(jf, abs=TOL)


@pytest.mark.parametrize("shift,j,f", [(1, 0.5, 1.0), (2, 0.2, 0.666667), (3, 0.0, 0.5)])
def test_row14_10x10_shifts(shift, j, f):
    # §6.1 row 14: sq(3:6, 3:6) in a 10x10 frame shifted right, at the default tolerance, which is
    # ceil(0.008 * 14.14) = 1 pixel on a 10x10 frame (see test_row14_with_radius_2 for r = 2).
    gt = sq(3, 6, 3, 6, 10)
    pred = sq(3, 6, 3 + shift, 6 + shift, 10)
    assert boundary_radius(10, 10) == 1
    assert db_eval_iou(gt, pred) == pytest.approx(j, abs=TOL)
    assert db_eval_boundary(gt, pred) == pytest.approx(f, abs=TOL)


def test_row14_with_radius_2():
    # Hand-derived: a horizontal shift s moves every boundary pixel by exactly s columns, so with r = 2 shifts
    # of 1 and 2 are fully matched (F = 1); shift 3 matches as shift 2 does at r = 1 (F = 2/3).
    gt = sq(3, 6, 3, 6, 10)
    got = [db_eval_boundary(gt, sq(3, 6, 3 + s, 6 + s, 10), bound_th=2) for s in (1, 2, 3)]
    assert got == pytest.approx([1.0, 1.0, 2 / 3], abs=TOL)


def test_example4_precision_recall_by_hand():
    # n_G = 12, n_P = 8, P = 1, R = 11/12 -> F = 22/23
    assert seg2bmap(G).sum() == 12
    assert seg2bmap(sq(1, 3, 1, 3)).sum() == 8
    assert f_measure(sq(1, 3, 1, 3), G) == pytest.approx(2 * 1 * (11 / 12) / (1 + 11 / 12), abs=1e-12)


def test_seg2bmap_3x3_example():
    expected = np.array(
        [
            [1, 1, 1, 1, 0],
            [1, 0, 0, 1, 0],
            [1, 0, 0, 1, 0],
            [1, 1, 1, 1, 0],
            [0, 0, 0, 0, 0],
        ],
        bool,
    )
    np.testing.assert_array_equal(seg2bmap(G), expected)
    # the image border is never a boundary: a full frame has none, and the right half of the frame has only
    # the background column just left of it
    assert seg2bmap(O).sum() == 0
    expected = np.zeros((5, 5), bool)
    expected[:, 2] = True
    np.testing.assert_array_equal(seg2bmap(sq(0, 5, 3, 5)), expected)


@pytest.mark.parametrize(
    "h,w,r",
    [
        (5, 5, 1),
        (100, 100, 2),
        (240, 320, 4),
        (320, 568, 6),
        (480, 854, 8),
        (720, 1280, 12),
        (1080, 1920, 18),
    ],
)
def test_radius_table(h, w, r):
    assert boundary_radius(h, w) == r
    assert boundary_radius(h, w) == math.ceil(0.008 * math.hypot(h, w))


def test_radius_pixels_when_bound_th_at_least_one():
    assert boundary_radius(480, 854, bound_th=3) == 3


def test_disk_by_hand():
    assert disk(0).tolist() == [[1]]
    assert disk(1).tolist() == [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    # r = 2: the 5x5 square minus the corners and their neighbours along the edges (1 + 4 > 4)
    assert disk(2).tolist() == [
        [0, 0, 1, 0, 0],
        [0, 1, 1, 1, 0],
        [1, 1, 1, 1, 1],
        [0, 1, 1, 1, 0],
        [0, 0, 1, 0, 0],
    ]
    assert disk(2).dtype == np.uint8


def test_disk_equals_skimage_for_the_radii_of_the_metric():
    # boundary_radius gives 8 at 480x854, 12 at 720x1280, 18 at 1080x1920
    morphology = pytest.importorskip("skimage.morphology")
    for r in range(21):
        expected = morphology.disk(r)
        assert disk(r).dtype == expected.dtype and np.array_equal(disk(r), expected), r


def test_disk_kernel_differs_from_ellipse():
    # §7.2: 13 vs 17 pixels at r = 2, 197 vs 213 at r = 8
    for r, n_disk, n_ell in ((2, 13, 17), (8, 197, 213)):
        assert disk(r).sum() == n_disk
        assert cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)).sum() == n_ell
    # A 1-px object vs the same moved (1 down, 2 right), r = 2: each boundary is a 2x2 block; the pixel pair
    # at offset (1, 2) is outside disk(2) (1 + 4 > 4) but inside the 5x5 ellipse -> F = 3/4 vs 1.
    gt, pred = np.zeros((20, 20), bool), np.zeros((20, 20), bool)
    gt[8, 8] = True
    pred[9, 10] = True
    assert f_measure(pred, gt, bound_th=2) == pytest.approx(0.75, abs=TOL)
    ellipse = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    assert f_measure(pred, gt, kernel=ellipse) == pytest.approx(1.0, abs=TOL)


def test_void_pixels():
    # J ignores void; F clears both masks under void before extracting boundaries
    void = sq(1, 4, 3, 4)  # the right column of G
    pred = sq(1, 4, 1, 3)  # G without that column
    assert db_eval_iou(G, pred) == pytest.approx(6 / 9)
    assert db_eval_iou(G, pred, void) == pytest.approx(1.0)
    assert db_eval_boundary(G, pred, void) == pytest.approx(1.0)
    assert db_eval_iou(Z, Z, O) == 1.0  # everything void: union 0 -> 1


def test_sequence_shapes():
    gt = np.stack([G, G, Z])
    pred = np.stack([G, Z, Z])
    np.testing.assert_allclose(db_eval_iou(gt, pred), [1, 0, 1])
    np.testing.assert_allclose(db_eval_boundary(gt, pred), [1, 0, 1])


def _frames_6_2():
    shift_right = sq(1, 4, 2, 5)
    inside = sq(1, 3, 1, 3)
    return {"vidA/0": [(G, G), (G, shift_right), (G, Z)], "vidB/0": [(Z, Z), (G, inside)]}


def test_dataset_aggregation_6_2():
    per_exp = {}
    for key, frames in _frames_6_2().items():
        js = [db_eval_iou(g, p) for g, p in frames]
        fs = [db_eval_boundary(g, p) for g, p in frames]
        per_exp[key] = (np.mean(js), np.mean(fs))
    assert per_exp["vidA/0"] == pytest.approx((0.5, 0.666667), abs=TOL)
    assert per_exp["vidB/0"] == pytest.approx((0.722222, 0.978261), abs=TOL)
    res = jf_aggregate(per_exp)
    assert res["J"] == pytest.approx(0.611111, abs=TOL)
    assert res["F"] == pytest.approx(0.822464, abs=TOL)
    assert res["J&F"] == pytest.approx(0.716787, abs=TOL)
    # the frame-pooled variant is a different number
    pooled_j = np.mean([db_eval_iou(g, p) for frames in _frames_6_2().values() for g, p in frames])
    assert pooled_j == pytest.approx(0.588889, abs=TOL)
    assert abs(pooled_j - res["J"]) > 0.02


def test_db_statistics_6_3():
    m, r, d = db_statistics([1, 0.5, 0, 1, 0.25, 0.75, 0.6, 0.4])
    assert m == pytest.approx(0.5625, abs=TOL)
    assert r == pytest.approx(0.5, abs=TOL)  # 0.5 itself is not > 0.5
    assert d == pytest.approx(0.5 - 0.583333, abs=TOL)


def test_db_statistics_uint8_decay_overflow():
    # N = 300: bin bounds [0, 75, 150, 224, 299]; 299 cast to uint8 is 43, so the last bin is empty -> NaN
    v = np.linspace(0, 1, 300)
    m, r, d = db_statistics(v)
    assert m == pytest.approx(0.5, abs=TOL)
    assert r == pytest.approx(150 / 300, abs=TOL)
    assert math.isnan(d)
    # N = 255 is still fine: bins [0:65], [191:255]
    v = np.arange(255, dtype=float)
    assert db_statistics(v)[2] == pytest.approx(np.mean(v[0:65]) - np.mean(v[191:255]))


def test_unsupervised_swap_6_5():
    a, b = sq(0, 2, 0, 2), sq(3, 5, 3, 5)
    gt = np.stack([np.stack([a, a]), np.stack([b, b])])  # (2 objects, 2 frames, 5, 5)
    pred = gt[::-1].copy()  # ids swapped
    j, f, rows = evaluate_unsupervised(gt, pred, np.zeros((2, 5, 5), bool))
    np.testing.assert_allclose(j, 1.0)
    np.testing.assert_allclose(f, 1.0)
    # identity matching (the semi-supervised rule) scores 0
    assert db_eval_iou(gt[0], pred[0]).tolist() == [0, 0]
    assert db_eval_boundary(gt[0], pred[0]).tolist() == [0, 0]


def test_unsupervised_padding_void_and_limit():
    a, b = sq(0, 2, 0, 2), sq(3, 5, 3, 5)
    gt = np.stack([np.stack([a, a]), np.stack([b, b])])
    pred = gt[1:2]  # one predicted object (B): padded with an empty one, which goes to A
    j, f, _ = evaluate_unsupervised(gt, pred)
    assert sorted(j.mean(axis=1).tolist()) == [0.0, 1.0]
    assert sorted(f.mean(axis=1).tolist()) == [0.0, 1.0]
    with pytest.raises(ValueError, match="at most 20"):
        evaluate_unsupervised(gt, np.zeros((21, 2, 5, 5), bool))


def test_split_object_masks():
    maps = np.array([[[0, 1], [2, 0]], [[0, 0], [0, 3]]], np.uint8)
    m = split_object_masks(maps)
    assert m.shape == (3, 2, 2, 2)
    assert m[2, 1, 1, 1] and m.sum() == 3
    assert split_object_masks(maps, 1).shape == (1, 2, 2, 2)
    assert split_object_masks(np.zeros((2, 2, 2), np.uint8)).shape == (0, 2, 2, 2)


def _a2d_samples():
    return [(G, G, 0.9), (sq(1, 4, 2, 5), G, 0.8), (Z, G, 0.7)]  # (pred, GT, score)


def test_a2d_sample_metrics_6_4():
    stats = [sample_iou(p, g) for p, g, _ in _a2d_samples()]
    assert [s[1:] for s in stats] == [(9, 9), (6, 12), (0, 9)]
    assert stats[1][0] == pytest.approx(0.50000004, abs=1e-8) and stats[1][0] > 0.5
    assert stats[2][0] == pytest.approx(1.1e-7, abs=1e-8)
    res = a2d_summary(*zip(*stats))
    assert res["P@0.5"] == pytest.approx(2 / 3, abs=TOL)
    for k in (0.6, 0.7, 0.8, 0.9):
        assert res[f"P@{k}"] == pytest.approx(1 / 3, abs=TOL)
    assert res["oIoU"] == pytest.approx(0.5, abs=TOL)
    assert res["mIoU"] == pytest.approx(0.50000005, abs=TOL)
    assert sample_iou(Z, Z)[0] == 1.0  # MTTR: both empty -> 1 (pycocotools would say 0)


def test_coco_mask_ap_6_4():
    from pycocotools import mask as mask_util

    def rle(m):
        return mask_util.encode(np.asfortranarray(m.astype(np.uint8)))

    gt = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "dummy_class"}]}
    preds = []
    for i, (p, g, score) in enumerate(_a2d_samples()):
        image_id = f"v_vid_f_{i + 1}_i_0"
        gt["images"].append({"id": image_id, "height": 5, "width": 5})
        r = rle(g)
        gt["annotations"].append(
            {
                "id": i + 1,
                "image_id": image_id,
                "category_id": 1,
                "segmentation": r,
                "area": float(mask_util.area(r)),
                "bbox": list(mask_util.toBbox(r)),
                "iscrowd": 0,
            }
        )
        preds.append({"image_id": image_id, "category_id": 1, "segmentation": rle(p), "score": score})
    ap = coco_mask_ap(gt, preds)
    assert ap["mAP"] == pytest.approx((67 + 9 * 34) / 1010, abs=TOL)
    assert ap["mAP"] == pytest.approx(0.369307, abs=TOL)
    assert ap["AP50"] == pytest.approx(0.663366, abs=TOL)
    assert ap["AP75"] == pytest.approx(0.336634, abs=TOL)
    assert ap["APs"] == pytest.approx(0.369307, abs=TOL)
    assert ap["APm"] == -1 and ap["APl"] == -1
    for k in ("AR1", "AR10", "AR100"):
        assert ap[k] == pytest.approx(0.366667, abs=TOL)
