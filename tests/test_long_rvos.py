"""Long-RVOS: metrics on hand-made masks (arithmetic written out), the loader and the evaluator on a hand-made
tree, PNG-folder scoring, and the long SynthRVOS split written in the Long-RVOS layout."""

import json
import os

import numpy as np
import pytest
from detectron2.data import MetadataCatalog
from helpers import G, Z, sq
from PIL import Image

from soc.data.build import group_expressions
from soc.data.datasets.long_rvos import load_long_rvos, read_long_rvos_masks
from soc.data.io import DataError
from soc.data.synthetic import generate
from soc.data.synthetic.__main__ import main as cli_main
from soc.data.synthetic.files import tree_files
from soc.data.synthetic.long_rvos_writer import EXPRESSION_TYPE_OF_FAMILY
from soc.evaluation import LongRVOSEvaluator, build_evaluator, evaluate_long_rvos_folder
from soc.evaluation.long_rvos import (
    LongRVOSScores,
    best_matching_objects,
    identity_switches,
    long_rvos_aggregate,
    long_rvos_summary,
    score_expression,
    temporal_ious,
)

# ------------------------------------------------------------------------------------------- metrics
# A 4-frame 5x5 video (boundary radius 1). Object 1 (referred) is G in frames 0-1 and absent after; object 2
# is a 2-pixel bar at the bottom left in frames 0-1, G-shaped in frame 2 (where object 1 has gone), absent in
# frame 3. The prediction follows object 1, then jumps to object 2 when object 1 leaves:
#   frame | GT (obj 1) | prediction     | J   | F | identity
#   0     | G          | G              | 1   | 1 | 1 (IoU 1 with obj 1, 0 with obj 2)
#   1     | G          | G one px right | 1/2 | 1 | 1 (IoU 1/2 with obj 1, 0 with obj 2)      (§6.1 example 2)
#   2     | Z          | object 2 (= G) | 0   | 0 | 2 (obj 1 absent: IoU 0; IoU 1 with obj 2) (§6.1 example 7)
#   3     | Z          | Z              | 1   | 1 | none (empty prediction)                  (§6.1 example 5)
BAR = sq(4, 5, 0, 2)
OBJ1 = np.stack([G, G, Z, Z])
OBJ2 = np.stack([BAR, BAR, G, Z])
PRED = np.stack([G, sq(1, 4, 2, 5), G, Z])


def test_temporal_ious_by_hand():
    # GT present in frames 0, 1, 4; prediction in 0, 2, 4: both in {0, 4}, either in {0, 1, 2, 4}
    j = np.array([0.5, 0.0, 0.0, 1.0, 0.25])
    tiou, viou = temporal_ious([1, 1, 0, 0, 1], [1, 0, 1, 0, 1], j)
    assert tiou == 2 / 4
    assert viou == (0.5 + 0.25) / 4  # 0.1875: J summed over {0, 4}, divided by |{0, 1, 2, 4}|
    assert temporal_ious([0, 0], [0, 0], [1.0, 1.0]) == (1.0, 1.0)  # empty everywhere: both 1
    assert temporal_ious([1, 0], [0, 1], [0.0, 0.0]) == (0.0, 0.0)  # never together


def test_best_matching_objects_and_switches():
    ious = np.array([[0.6, 0.2, 0.0, 0.3, 0.4], [0.1, 0.7, 0.0, 0.3, 0.0]])  # rows: objects 3 and 7
    present = np.array([1, 1, 1, 1, 0], bool)
    # frame 2 overlaps nothing, frame 3 is a tie (to the first row), frame 4 has no prediction
    assert best_matching_objects(ious, [3, 7], present) == [3, 7, None, 3, None]
    assert identity_switches([3, 7, None, 3, None]) == 2  # 3 -> 7 -> 3
    assert identity_switches([1, None, 1, 2, 2, None, 1]) == 2
    assert identity_switches([None, 5, None]) == 0 and identity_switches([]) == 0


def test_score_expression_by_hand():
    s = score_expression(OBJ1, PRED, 1, [(2, OBJ2)])
    assert s.J == (1 + 0.5 + 0 + 1) / 4  # 0.625
    assert s.F == (1 + 1 + 0 + 1) / 4  # 0.75
    assert s.tIoU == 2 / 3  # both in {0, 1}; either in {0, 1, 2}
    assert s.vIoU == (1 + 0.5) / 3  # 0.5
    assert s.switches == 1  # identities 1, 1, 2, none
    # following object 2 instead: it is present in frames 0-2 like the prediction
    s2 = score_expression(OBJ2, np.stack([BAR, BAR, G, Z]), 2, [(1, OBJ1)])
    assert s2 == LongRVOSScores(1.0, 1.0, 1.0, 1.0, 0)
    # an empty prediction of an object that is never there: every measure is 1, no identity
    assert score_expression(np.zeros((3, 5, 5), bool), np.zeros((3, 5, 5), bool), 1) == (1, 1, 1, 1, 0)


def test_aggregate_and_summary_by_hand():
    a = LongRVOSScores(0.625, 0.75, 2 / 3, 0.5, 1)
    b = LongRVOSScores(1.0, 1.0, 1.0, 1.0, 0)
    c = LongRVOSScores(0.25, 0.5, 0.5, 0.0, 3)
    r = long_rvos_aggregate([a, b, c])
    assert r["J"] == pytest.approx((0.625 + 1 + 0.25) / 3)  # 0.625
    assert r["F"] == pytest.approx((0.75 + 1 + 0.5) / 3)  # 0.75
    assert r["J&F"] == pytest.approx((0.625 + 0.75) / 2)  # 0.6875
    assert r["tIoU"] == pytest.approx((2 / 3 + 1 + 0.5) / 3)  # 0.722222
    assert r["vIoU"] == pytest.approx((0.5 + 1 + 0) / 3)  # 0.5
    assert r["switches"] == 4  # a total, not a mean
    summary = long_rvos_summary({"v/0": a, "v/1": b, "w/0": c}, {"v/0": ["static"], "v/1": ["dynamic"]})
    assert summary["static/J"] == 0.625 and summary["dynamic/tIoU"] == 1.0 and summary["static/switches"] == 1
    assert not any(k.startswith(("hybrid/", "temporal/")) for k in summary)  # w/0 has no type
    assert summary["J&F"] == r["J&F"]


# ----------------------------------------------------------------------------------- hand-made tree
def _png(path, mask):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(path)


def _write_tree(root):
    """The 4-frame video above as Long-RVOS ``valid``: PNGs only where an object is visible."""
    names = ["00000", "00001", "00002", "00003"]
    split = os.path.join(root, "valid")
    for name in names:
        os.makedirs(os.path.join(split, "JPEGImages", "vidA"), exist_ok=True)
        Image.new("RGB", (5, 5), (90, 90, 90)).save(os.path.join(split, "JPEGImages", "vidA", name + ".jpg"))
    for oid, masks in ((1, OBJ1), (2, OBJ2)):
        for name, m in zip(names, masks):
            if m.any():
                _png(os.path.join(split, "Annotations", "vidA", str(oid), name + ".png"), m)
    meta = {
        "videos": {
            "vidA": {
                "frames": names,
                "expressions": {
                    "0": {"exp": "the square", "obj_id": "1", "type": "static"},
                    "1": {"exp": "the bar that moves up", "obj_id": "2", "type": "dynamic"},
                },
            }
        }
    }
    with open(os.path.join(split, "meta_expressions.json"), "w") as f:
        json.dump(meta, f)
    with open(os.path.join(split, "temporal_expressions.json"), "w") as f:
        json.dump({"temporal": ["vidA/1"]}, f)
    return names


# expression 0 scores as in test_score_expression_by_hand; expression 1 (object 2, predicted exactly) 1, 0
EXPECTED = {
    "J": (0.625 + 1) / 2,  # 0.8125
    "F": (0.75 + 1) / 2,  # 0.875
    "J&F": (0.8125 + 0.875) / 2,  # 0.84375
    "tIoU": (2 / 3 + 1) / 2,  # 0.833333
    "vIoU": (0.5 + 1) / 2,  # 0.75
    "switches": 1,
    "static/J&F": (0.625 + 0.75) / 2,  # 0.6875
    "static/tIoU": 2 / 3,
    "dynamic/J&F": 1.0,
    "temporal/vIoU": 1.0,
}


def test_loader_reads_missing_pngs_as_absent(tmp_path):
    _write_tree(tmp_path)
    recs = load_long_rvos(str(tmp_path), "valid")
    assert [(r["exp_id"], r["obj_ids"], r["expression_type"], r["temporal"]) for r in recs] == [
        ("0", [1], "static", False),
        ("1", [2], "dynamic", True),
    ]
    assert recs[0]["annotations"]["objects"] == [1, 2]
    assert recs[0]["file_names"][2].endswith(os.path.join("valid", "JPEGImages", "vidA", "00002.jpg"))
    assert np.array_equal(read_long_rvos_masks(recs[0]), OBJ1)  # frames 2, 3 have no PNG: empty
    assert np.array_equal(read_long_rvos_masks(recs[0], 2), OBJ2)
    assert np.array_equal(read_long_rvos_masks(recs[1]), OBJ2)


def test_evaluator_on_hand_made_tree(tmp_path):
    _write_tree(tmp_path)
    recs = load_long_rvos(str(tmp_path), "valid")
    ev = LongRVOSEvaluator("hand", str(tmp_path / "out"), distributed=False)
    ev.process(recs, [{"pred_masks": PRED}, {"pred_masks": OBJ2}])
    res = ev.evaluate()["long_rvos"]
    for key, value in EXPECTED.items():
        assert res[key] == pytest.approx(value), key
    assert not any(k.startswith("hybrid/") for k in res)
    per_exp = json.load(open(tmp_path / "out" / "long_rvos_per_expression.json"))
    assert per_exp["vidA/0"] == {"J": 0.625, "F": 0.75, "tIoU": 2 / 3, "vIoU": 0.5, "switches": 1}
    ev.reset()
    assert ev.evaluate() == {}
    (group,) = group_expressions(recs)  # both expressions of the video in one input, a list of outputs
    ev.process([group], [[{"pred_masks": PRED}, {"pred_masks": OBJ2}]])
    assert ev.evaluate()["long_rvos"] == res
    ev.reset()
    with pytest.raises(ValueError, match="pred_masks of shape"):
        ev.process(recs[:1], [{"pred_masks": PRED[:3]}])


def test_folder_scoring_missing_png_is_empty(tmp_path):
    names = _write_tree(tmp_path / "data")
    recs = load_long_rvos(str(tmp_path / "data"), "valid")
    for exp_id, masks in (("0", PRED), ("1", OBJ2)):  # only non-empty frames are written
        for name, m in zip(names, masks):
            if m.any():
                _png(str(tmp_path / "pred" / "vidA" / exp_id / (name + ".png")), m)
    res = evaluate_long_rvos_folder(str(tmp_path / "pred"), recs)["long_rvos"]
    for key, value in EXPECTED.items():
        assert res[key] == pytest.approx(value), key
    (tmp_path / "none").mkdir()  # no folder for vidA: 0 on every measure, as the official scripts
    zero = evaluate_long_rvos_folder(str(tmp_path / "none"), recs)["long_rvos"]
    assert (zero["J&F"], zero["tIoU"], zero["vIoU"], zero["switches"]) == (0, 0, 0, 0)


def test_loader_bad_input(tmp_path):
    _write_tree(tmp_path)
    meta_file = tmp_path / "valid" / "meta_expressions.json"
    meta = json.load(open(meta_file))
    for field, value, message in (("type", "moving", "type 'moving'"), ("obj_id", "x1", "not an integer")):
        bad = json.loads(json.dumps(meta))
        bad["videos"]["vidA"]["expressions"]["0"][field] = value
        json.dump(bad, open(meta_file, "w"))
        with pytest.raises(DataError, match=message):
            load_long_rvos(str(tmp_path), "valid")
    bad = {"videos": {"../vidA": meta["videos"]["vidA"]}}
    json.dump(bad, open(meta_file, "w"))
    with pytest.raises(DataError, match="video id"):
        load_long_rvos(str(tmp_path), "valid")
    os.makedirs(tmp_path / "train")
    json.dump(meta, open(tmp_path / "train" / "meta_expressions.json", "w"))
    with pytest.raises(DataError, match="needs masks"):  # train without Annotations
        load_long_rvos(str(tmp_path), "train")


def test_registered_splits_and_evaluator():
    for name in ("long_rvos_train", "long_rvos_valid", "long_rvos_test", "synthrvos_long_valid"):
        assert MetadataCatalog.get(name).evaluator_type == "long_rvos"
    assert MetadataCatalog.get("synthrvos_long_valid").root.endswith(os.path.join("synthrvos", "long_rvos"))
    assert isinstance(build_evaluator(None, "long_rvos_valid"), LongRVOSEvaluator)


# -------------------------------------------------------------------------------- long SynthRVOS split
def _runs(visible):
    """Runs of equal values: [True, True, False, True] -> [(True, 2), (False, 1), (True, 1)]."""
    out = []
    for v in visible:
        if out and out[-1][0] == v:
            out[-1][1] += 1
        else:
            out.append([bool(v), 1])
    return [tuple(r) for r in out]


# The long split proper (300-400 frames) is slow; the same checks run fast on 40-48-frame long videos.
@pytest.mark.parametrize("frames", [(40, 48), pytest.param(None, marks=pytest.mark.slow)])
def test_long_synthrvos_split_round_trip(tmp_path, frames):
    truth = generate(
        str(tmp_path), "long_rvos", 2, 5, frames=frames, long_videos=True, size=(48, 64), progress=False
    )
    recs = load_long_rvos(str(tmp_path), "valid")
    assert len(recs) == sum(len(tv["expressions"]) for tv in truth["videos"].values())
    ev = LongRVOSEvaluator(distributed=False)
    for vid, tv in truth["videos"].items():
        t = len(tv["frame_names"])
        assert (40 <= t <= 48 if frames else 300 <= t <= 400) and tv["frame_names"][:2] == ["00000", "00001"]
        assert len(os.listdir(tmp_path / "valid" / "JPEGImages" / vid)) == t
        looks = [(o["shape"], o["colour"], o["size"]) for o in tv["objects"].values()]
        assert looks[0] == looks[1] and tv["objects"][1]["motion"] != tv["objects"][2]["motion"]  # twins
        assert tv["objects"][1]["motion"].startswith("moves")
        for oid, masks in tv["masks"].items():
            visible = masks.any(axis=(1, 2))
            pngs = sorted(os.listdir(tmp_path / "valid" / "Annotations" / vid / str(oid)))
            assert pngs == [n + ".png" for n, v in zip(tv["frame_names"], visible) if v]  # absent: no PNG
            if tv["objects"][oid]["motion"].startswith("moves"):  # leaves and comes back
                runs = _runs(visible)
                assert runs[0][0] and any(not v and n >= t // 30 for v, n in runs[1:-1]), runs
        for rec in (r for r in recs if r["video_id"] == vid):
            exp = tv["expressions"][rec["exp_id"]]
            assert rec["expression"] == exp["exp"] and rec["obj_ids"] == [exp["obj_id"]]
            assert rec["expression_type"] == EXPRESSION_TYPE_OF_FAMILY[exp["family"]] == exp["type"]
            assert rec["temporal"] == exp["temporal"] == (exp["obj_id"] in (1, 2))
            assert rec["annotations"]["objects"] == sorted(tv["objects"])
            gt = read_long_rvos_masks(rec)
            assert np.array_equal(gt, tv["masks"][exp["obj_id"]])
            ev.process([rec], [{"pred_masks": gt}])
    res = ev.evaluate()["long_rvos"]
    assert (res["J&F"], res["tIoU"], res["vIoU"], res["switches"]) == (1.0, 1.0, 1.0, 0.0)


def test_long_option_deterministic_and_cli(tmp_path):
    args = ["--format", "long_rvos", "--long", "--videos", "2", "--seed", "3", "--frames", "20:24"]
    args += ["--size", "24x32"]
    assert cli_main(["--out", str(tmp_path / "cli")] + args) == 0
    generate(str(tmp_path / "api"), "long_rvos", 2, 3, frames=(20, 24), size=(24, 32), long_videos=True)
    files = tree_files(str(tmp_path / "cli"))
    assert files == tree_files(str(tmp_path / "api")) and "valid/meta_expressions.json" in files
    assert all((tmp_path / "cli" / f).read_bytes() == (tmp_path / "api" / f).read_bytes() for f in files)
    temporal = json.load(open(tmp_path / "api" / "valid" / "temporal_expressions.json"))["temporal"]
    assert {k.split("/")[0] for k in temporal} == set(os.listdir(tmp_path / "api" / "valid" / "JPEGImages"))


def test_training_reads_long_rvos_masks(tmp_path):
    """read_masks serves Long-RVOS records (any frame subset): the train mapper trains on long_rvos_train."""
    from detectron2.data import transforms as T

    from soc.data.io import read_masks
    from soc.data.mappers.refvos_mapper import RefVOSMapper

    _write_tree(tmp_path)
    os.rename(tmp_path / "valid", tmp_path / "train")
    recs = load_long_rvos(str(tmp_path), "train")
    assert np.array_equal(read_masks(recs[0]), OBJ1)
    assert np.array_equal(read_masks(recs[0], [2, 0]), OBJ1[[2, 0]])
    assert np.array_equal(read_masks(recs[1], [1, 2, 3]), OBJ2[1:])
    mapper = RefVOSMapper(is_train=True, augmentations=[T.NoOpTransform()], sampling_frame_num=2)
    for _ in range(5):  # object 1 is visible in frames 0-1 only: every window shows it at least once
        out = mapper(recs[0])
        assert out["targets"]["masks"].shape == (2, 5, 5)
        assert out["targets"]["is_visible"].any()
