"""soc/evaluation/mevis_evaluator.py: MeViS J&F (eval_mevis.py's protocol), v2 N-acc / T-acc / Final, ReVOS
figures (VISA's eval_revos.py), the no-target threshold selection and the submission zip, on hand-made 5x5
masks with the arithmetic written out."""

import json
import os
import zipfile

import numpy as np
import pytest
import torch
from helpers import G, Z, sq

from soc.data.build import group_expressions
from soc.data.datasets.mevis import load_mevis, mevis_files
from soc.data.synthetic.files import write_jpeg
from soc.data.synthetic.mevis_writer import encode_rle
from soc.evaluation.mevis_evaluator import (
    MevisEvaluator,
    MevisScores,
    ReVOSEvaluator,
    mevis_summary,
    revos_summary,
    score_mevis_expression,
    select_no_target_threshold,
    threshold_scores,
)

ONES = np.ones((5, 5), bool)


# ------------------------------------------------------------------------------------ per expression
@pytest.mark.parametrize(
    "gt, pred, j, f",
    [
        ([Z, Z], [Z, Z], 1.0, 1.0),  # empty / empty: J = F = 1 in every frame
        ([G, Z], [G, G], 0.5, 0.5),  # a false positive on the absent frame: J = F = 0 there
        ([G, Z], [Z, Z], 0.5, 0.5),  # a miss: J = F = 0 on frame 0, 1 on the empty frame
        ([ONES], [ONES], 1.0, 1.0),  # an all-ones mask has no boundary (seg2bmap): F = 1 as both are empty
        ([ONES], [G], 9 / 25, 0.0),  # one boundary empty, the other not: F = 0
    ],
)
def test_expression_scores_by_hand(gt, pred, j, f):
    s = score_mevis_expression(np.stack(gt), np.stack(pred), score=0.4)
    assert (s.J, s.F) == pytest.approx((j, f))
    assert s.gt_empty == (not np.any(gt)) and s.pred_empty == (not np.any(pred)) and s.score == 0.4
    empty = score_mevis_expression(np.stack(gt), np.zeros_like(np.stack(gt)))
    assert (s.empty_J, s.empty_F) == (empty.J, empty.F)


# Four expressions: two with a target, two without.
#   e1 target, predicted exactly            J = F = 1      predicted non-empty
#   e2 target, predicted empty              J = F = 0      predicted empty
#   e3 no target, predicted empty           J = F = 1      predicted empty
#   e4 no target, something in 1 of 2 frames J = F = 0.5   predicted non-empty
# J = F = (1 + 0 + 1 + 0.5)/4 = 0.625; T-acc = 1/2 (e1); N-acc = 1/2 (e3); Final = (0.625 + 0.5 + 0.5)/3.
CASES = {
    "v/e1": (np.stack([G, G]), np.stack([G, G]), 0.9),
    "v/e2": (np.stack([G, G]), np.stack([Z, Z]), 0.2),
    "v/e3": (np.stack([Z, Z]), np.stack([Z, Z]), 0.1),
    "v/e4": (np.stack([Z, Z]), np.stack([G, Z]), 0.3),
}


def _scores():
    return {k: score_mevis_expression(gt, pred, s) for k, (gt, pred, s) in CASES.items()}


def test_v2_summary_by_hand():
    out = mevis_summary(_scores().values())
    assert out["J"] == out["F"] == out["J&F"] == pytest.approx(0.625)
    assert (out["T_acc"], out["N_acc"]) == (0.5, 0.5)
    assert out["Final"] == pytest.approx((0.625 + 0.5 + 0.5) / 3)
    v1 = mevis_summary([s for k, s in _scores().items() if k in ("v/e1", "v/e2")])
    assert v1 == {"J&F": 0.5, "J": 0.5, "F": 0.5, "T_acc": 0.5}  # no no-target expression: no N-acc, Final


def test_threshold_selection_by_hand():
    # threshold t empties the predictions whose clip score is < t; candidates are 0 and the midpoints of the
    # sorted scores 0.1, 0.2, 0.3, 0.9 and 1: 0.6 empties e4 (0.3) and e2, e3 (already empty):
    # J = (1 + 0 + 1 + 1)/4 = 0.75, N-acc 1, T-acc 1/2, Final 0.75; 0.95 empties e1 too: Final 0.5
    best, table = select_no_target_threshold(_scores())
    assert best == pytest.approx(0.6)
    finals = {t: row["Final"] for t, row in table}
    assert sorted(finals) == pytest.approx([0.0, 0.15, 0.25, 0.6, 0.95])
    assert finals[0.0] == pytest.approx((0.625 + 0.5 + 0.5) / 3)
    assert finals[best] == pytest.approx(0.75)
    assert finals[max(finals)] == pytest.approx((0.5 + 1 + 0) / 3)
    with pytest.raises(ValueError, match="target and no-target"):
        select_no_target_threshold({"v/e1": _scores()["v/e1"]})


def test_selected_threshold_is_off_the_scores_and_survives_rounding():
    # The threshold used to be a clip score itself (the kept expression on the boundary) and the CLI printed
    # it with 6 significant digits: the printed value could then empty the kept expression too.
    scores = {k: s._replace(score=v) for (k, s), v in zip(_scores().items(), (0.91237, 0.2, 0.1, 0.31237))}
    best, table = select_no_target_threshold(scores)
    assert best not in {s.score for s in scores.values()}
    assert mevis_summary(threshold_scores(scores, float(f"{best:.4g}"))) == dict(table)[best]
    # a clip score of 1 cannot be emptied by a threshold in [0, 1] (the config's range): no candidate above 1
    top = {k: s._replace(score=1.0) if k == "v/e1" else s for k, s in _scores().items()}
    assert max(t for t, _ in select_no_target_threshold(top)[1]) <= 1.0


def test_revos_summary_by_hand():
    def s(j, f, type_id):
        return MevisScores(j, f, False, False, type_id=type_id)

    # referring: J 33.33 (1/3 rounded to 0.01 %) and 100 -> 66.665 %; F 50 and 100 -> 75 %
    # reasoning: J 50 %, F 25 %; type_id 2 is left out; overall = mean of the two categories
    out = revos_summary([s(1 / 3, 0.5, 0), s(1, 1, 0), s(0.5, 0.25, 1), s(0, 0, 2)])
    assert out["referring/J"] == pytest.approx(0.66665)
    assert out["referring/J&F"] == pytest.approx((0.66665 + 0.75) / 2)
    assert out["reasoning/J&F"] == pytest.approx(0.375)
    assert out["J&F"] == pytest.approx(((0.66665 + 0.75) / 2 + 0.375) / 2)
    assert out["J"] == pytest.approx((0.66665 + 0.5) / 2)


# ----------------------------------------------------------------------------------------- evaluator
A, B = sq(0, 2, 0, 2), sq(3, 5, 3, 5)


@pytest.fixture
def records(tmp_path):
    """One 2-frame 5x5 video: exp 0 = objects 0 and 1 (anno 1: A in both frames, anno 2: B in frame 1 only),
    exp 1 = no target."""
    split = tmp_path / "valid_u"
    for f in ("00000", "00001"):
        write_jpeg(str(split / "JPEGImages" / "vid" / f"{f}.jpg"), np.zeros((5, 5, 3), np.uint8))
    exps = {
        "0": {"exp": "the two squares", "obj_id": [0, 1], "anno_id": [1, 2]},
        "1": {"exp": "the green circle", "obj_id": [], "anno_id": []},
    }
    json.dump(
        {"videos": {"vid": {"frames": ["00000", "00001"], "expressions": exps}}},
        open(split / "meta_expressions.json", "w"),
    )
    json.dump(
        {"1": [encode_rle(A), encode_rle(A)], "2": [None, encode_rle(B)]}, open(split / "mask_dict.json", "w")
    )
    return load_mevis(*mevis_files(str(tmp_path), "valid_u"))


def _run(evaluator, inputs, outputs):
    evaluator.reset()
    evaluator.process(inputs, outputs)
    return evaluator.evaluate()


def _out(*frames, score=0.5):
    return {"pred_masks": torch.from_numpy(np.stack(frames)), "score": score}


def test_evaluator_union_no_target_and_zip(records, tmp_path):
    out_dir = str(tmp_path / "out")
    ev = MevisEvaluator("x", out_dir, distributed=False)
    # exp 0 predicted as A only: frame 0 J = 1 (GT = A), frame 1 J = |A| / |A u B| = 4/8; exp 1 empty: 1
    res = _run(ev, records, [_out(A, A), _out(Z, Z)])["mevis"]
    j0 = (1 + 0.5) / 2
    assert res["J"] == pytest.approx((j0 + 1) / 2)
    assert (res["T_acc"], res["N_acc"]) == (1.0, 1.0)
    assert res["Final"] == pytest.approx((res["J&F"] + 2) / 3)
    with zipfile.ZipFile(os.path.join(out_dir, "submission.zip")) as zf:
        names = sorted(n for n in zf.namelist() if n.endswith(".png"))
    assert names == ["vid/0/00000.png", "vid/0/00001.png", "vid/1/00000.png", "vid/1/00001.png"]
    # the union predicted exactly and the no-target one answered with a mask: N-acc 0, J = F = 0 there
    res = _run(ev, records, [_out(A, A | B), _out(G, G)])["mevis"]
    assert (res["J"], res["N_acc"], res["T_acc"]) == (pytest.approx(0.5), 0.0, 1.0)
    grouped = group_expressions(records)
    assert _run(ev, grouped, [[_out(A, A | B), _out(G, G)]]) == {"mevis": res}


def test_revos_evaluator_reports_categories(records):
    records = [dict(r, type_id=i) for i, r in enumerate(records)]
    res = _run(ReVOSEvaluator(distributed=False), records, [_out(A, A | B), _out(Z, Z)])["revos"]
    assert res["referring/J&F"] == res["reasoning/J&F"] == res["J&F"] == 1.0


def test_no_ground_truth_gives_only_the_submission(records, tmp_path):
    bare = [dict(r, annotations=None) for r in records]
    out_dir = str(tmp_path / "sub")
    assert _run(MevisEvaluator(None, out_dir, distributed=False), bare, [_out(A, A), _out(Z, Z)]) == {}
    assert os.path.isfile(os.path.join(out_dir, "submission.zip"))
