"""RefVOSEvaluator (per-expression J&F, submission), RefDAVISEvaluator (four runs, unsupervised protocol) and
build_evaluator, on small hand-made Ref-YouTube-VOS / Ref-DAVIS17-format sets written to a temp dir."""

import io
import json
import os
import zipfile

import numpy as np
import pytest
from PIL import Image

from soc.data.build import group_expressions
from soc.data.io import davis_palette
from soc.evaluation import RefDAVISEvaluator, RefVOSEvaluator, build_evaluator
from soc.evaluation.metrics import db_eval_boundary, db_eval_iou
from soc.evaluation.ref_davis_evaluator import merge_object_probs

from helpers import tree

H = W = 24  # boundary radius ceil(0.008 * 33.9) = 1


def box(r0, r1, c0, c1, h=H, w=W):
    m = np.zeros((h, w), bool)
    m[r0:r1, c0:c1] = True
    return m


def write_palette(path, index_map):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img = Image.fromarray(index_map.astype(np.uint8))
    img.putpalette(davis_palette())
    img.save(path)


# ------------------------------------------------------------------------------- Ref-YouTube-VOS fixture
# Objects are squares at least 4 px apart, so two different non-empty masks are disjoint, with boundaries
# farther apart than the 1-px tolerance: J = F = 0 for them, J = F = 1 for identical masks (both empty
# included).
YTVOS_VIDEOS = {
    "v1": {
        "frames": ["00000", "00005", "00010"],
        "objects": {
            1: [box(2, 8, 2, 8)] * 3,
            2: [box(14, 20, 14, 20), box(14, 20, 13, 19), None],
            3: [box(2, 6, 16, 22), None, None],
        },
        "expressions": {"0": 1, "1": 2, "2": 1, "3": 3},
    },
    "v2": {
        "frames": ["00005", "00010"],  # starts later, as 25 real valid videos do
        "objects": {1: [box(10, 16, 3, 9)] * 2, 2: [None, box(3, 7, 15, 21)]},
        "expressions": {"0": 1, "1": 2},
    },
}
WRONG_OBJECT = {("v1", 1): 2, ("v1", 2): 3, ("v1", 3): 1, ("v2", 1): 2, ("v2", 2): 1}


def object_masks(video, obj):
    return np.stack(
        [m if m is not None else np.zeros((H, W), bool) for m in YTVOS_VIDEOS[video]["objects"][obj]]
    )


def make_ytvos_fixture(root, with_gt=True, write=True, temporal=()):
    """Write the palette annotation PNGs (unless ``write`` is False); return the records (DEVELOPERS.md),
    flagged ``temporal`` (as the SynthRVOS loaders flag them) when their ``"<video>/<exp_id>"`` is in
    ``temporal``."""
    records = []
    for vid, v in YTVOS_VIDEOS.items():
        files = []
        for t, frame in enumerate(v["frames"]):
            index = np.zeros((H, W), np.uint8)
            for obj, masks in v["objects"].items():
                if masks[t] is not None:
                    index[masks[t]] = obj
            path = os.path.join(root, "valid", "Annotations", vid, frame + ".png")
            if write:
                write_palette(path, index)
            files.append(path)
        for exp_id, obj in v["expressions"].items():
            records.append(
                {
                    "video_id": vid,
                    "exp_id": exp_id,
                    "expression": f"object {obj}",
                    "file_names": [
                        os.path.join(root, "valid", "JPEGImages", vid, f + ".jpg") for f in v["frames"]
                    ],
                    "frame_names": list(v["frames"]),
                    "height": H,
                    "width": W,
                    "obj_ids": [obj] if with_gt else [],
                    "annotations": {"type": "png", "files": files} if with_gt else None,
                    "temporal": f"{vid}/{exp_id}" in temporal,
                }
            )
    return records


def ytvos_outputs(records, wrong=False):
    outs = []
    for r in records:
        obj = YTVOS_VIDEOS[r["video_id"]]["expressions"][r["exp_id"]]
        if wrong:
            obj = WRONG_OBJECT[(r["video_id"], obj)]
        outs.append({"pred_masks": object_masks(r["video_id"], obj)})
    return outs


def independent_jf(records, outputs):
    """Per-expression J, F from set counts and the fixture's F rule; expression-weighted means."""
    per = {}
    for r, o in zip(records, outputs):
        gt = object_masks(r["video_id"], YTVOS_VIDEOS[r["video_id"]]["expressions"][r["exp_id"]])
        js, fs = [], []
        for g, p in zip(gt, o["pred_masks"]):
            union = (g | p).sum()
            js.append(1.0 if union == 0 else (g & p).sum() / union)
            fs.append(1.0 if np.array_equal(g, p) else 0.0)
        per[f"{r['video_id']}/{r['exp_id']}"] = (np.mean(js), np.mean(fs))
    j = np.mean([v[0] for v in per.values()])
    f = np.mean([v[1] for v in per.values()])
    return per, {"J&F": (j + f) / 2, "J": j, "F": f}


def run(evaluator, records, outputs, batch=2):
    evaluator.reset()
    for i in range(0, len(records), batch):
        evaluator.process(records[i : i + batch], outputs[i : i + batch])
    return evaluator.evaluate()


def grouped(records, outputs, max_per_group=0):
    """The records grouped by video, as the test loader groups them, and per group its list of outputs."""
    by_key = {(r["video_id"], r["exp_id"]): o for r, o in zip(records, outputs)}
    groups = group_expressions(records, max_per_group)
    return groups, [[by_key[g["video_id"], e] for e in g["exp_ids"]] for g in groups]


def test_perfect_predictions_give_one(tmp_path):
    records = make_ytvos_fixture(str(tmp_path / "data"), temporal={"v1/1"})
    res = run(RefVOSEvaluator(output_dir=str(tmp_path / "out")), records, ytvos_outputs(records))
    assert res["refvos"] == pytest.approx(
        {"J&F": 1.0, "J": 1.0, "F": 1.0, "temporal/J&F": 1.0, "temporal/J": 1.0, "temporal/F": 1.0}
    )


def test_wrong_object_scores_match_independent_computation(tmp_path):
    records = make_ytvos_fixture(str(tmp_path / "data"), temporal={"v1/1", "v2/0"})
    outputs = ytvos_outputs(records, wrong=True)
    per, expected = independent_jf(records, outputs)
    assert 0 < expected["J"] < 1  # v1/1 has a both-empty frame
    res = run(RefVOSEvaluator(output_dir=str(tmp_path / "out")), records, outputs)
    assert res["refvos"]["J&F"] == pytest.approx(expected["J&F"], abs=1e-9)
    assert res["refvos"]["J"] == pytest.approx(expected["J"], abs=1e-9)
    assert res["refvos"]["F"] == pytest.approx(expected["F"], abs=1e-9)
    assert res["refvos"]["J"] == pytest.approx(1 / 18, abs=1e-9)  # only v1/1 frame 3 (both empty) scores
    assert res["refvos"]["temporal/J"] == pytest.approx((per["v1/1"][0] + per["v2/0"][0]) / 2, abs=1e-9)
    with open(tmp_path / "out" / "refvos_per_expression.json") as f:
        saved = json.load(f)
    assert saved["v1/1"]["J"] == pytest.approx(1 / 3)


def test_temporal_subset_from_record_flags(tmp_path):
    records = make_ytvos_fixture(str(tmp_path / "data"), temporal={"v1/1"})
    res = run(RefVOSEvaluator(), records, ytvos_outputs(records, wrong=True))
    assert res["refvos"]["temporal/J"] == pytest.approx(1 / 3)
    assert res["refvos"]["temporal/F"] == pytest.approx(1 / 3)
    # no flagged input (real data): no temporal scores
    records = make_ytvos_fixture(str(tmp_path / "data"), write=False)
    res = run(RefVOSEvaluator(), records, ytvos_outputs(records, wrong=True))
    assert not any(k.startswith("temporal/") for k in res["refvos"])


def test_expression_weighted_not_frame_pooled(tmp_path):
    # perfect on v2/0 (2 frames), empty predictions elsewhere; an empty prediction scores 1 exactly on the
    # GT-empty frames: v1/1 frame 3, v1/3 frames 2-3, v2/1 frame 1
    records = make_ytvos_fixture(str(tmp_path / "data"))
    outputs = [{"pred_masks": np.zeros((len(r["frame_names"]), H, W), bool)} for r in records]
    outputs[4] = {"pred_masks": object_masks("v2", 1)}
    assert (records[4]["video_id"], records[4]["exp_id"]) == ("v2", "0")
    res = run(RefVOSEvaluator(), records, outputs)
    assert res["refvos"]["J"] == pytest.approx((1 / 3 + 2 / 3 + 1 + 1 / 2) / 6)  # 0.416667
    assert res["refvos"]["F"] == pytest.approx((1 / 3 + 2 / 3 + 1 + 1 / 2) / 6)
    assert abs(res["refvos"]["J"] - 6 / 16) > 0.04  # frame-pooled: 6 of 16 frames score 1


def test_submission_tree_and_png_encoding(tmp_path):
    records = make_ytvos_fixture(str(tmp_path / "data"), with_gt=False)
    outputs = ytvos_outputs(records)
    out = tmp_path / "out"
    res = run(RefVOSEvaluator(output_dir=str(out)), records, outputs)
    assert res == {}  # no ground truth: nothing to score
    with zipfile.ZipFile(out / "submission.zip") as zf:
        names = zf.namelist()
        files = {n for n in names if not n.endswith("/")}
        expected = {
            f"Annotations/{r['video_id']}/{r['exp_id']}/{f}.png" for r in records for f in r["frame_names"]
        }
        assert files == expected
        assert all(n.startswith("Annotations/") for n in names)
        for r, o in zip(records, outputs):
            for f, mask in zip(r["frame_names"], o["pred_masks"]):
                with Image.open(
                    io.BytesIO(zf.read(f"Annotations/{r['video_id']}/{r['exp_id']}/{f}.png"))
                ) as img:
                    assert img.mode == "L" and img.size == (W, H)
                    arr = np.array(img)
                assert set(np.unique(arr)) <= {0, 255}
                np.testing.assert_array_equal(arr, mask.astype(np.uint8) * 255)


@pytest.mark.parametrize("max_per_group, batch", [(0, 1), (0, 2), (2, 3)])
def test_grouped_inputs_give_the_same_scores_and_submission(tmp_path, max_per_group, batch):
    """A video's expressions in one input (or in groups of at most 2), answered by a list of outputs: the
    same per-expression scores, results and submission PNGs as one input per expression."""
    records = make_ytvos_fixture(str(tmp_path / "data"), temporal={"v1/1", "v2/0"})
    outputs = ytvos_outputs(records, wrong=True)
    outputs[1] = {"pred_masks": object_masks("v1", 2)}  # one right answer among the wrong ones
    single = run(RefVOSEvaluator(output_dir=str(tmp_path / "single")), records, outputs)
    groups, group_outputs = grouped(records, outputs, max_per_group)
    assert len(groups) == (2 if max_per_group == 0 else 3)
    res = run(RefVOSEvaluator(output_dir=str(tmp_path / "grouped")), groups, group_outputs, batch=batch)
    assert res == single and 0 < res["refvos"]["J"] < 1 and "temporal/J" in res["refvos"]
    assert run(RefVOSEvaluator(), records[::-1], outputs[::-1]) == single  # any order: the same sums
    files = tree(tmp_path / "single")
    assert tree(tmp_path / "grouped") == files
    assert "refvos_per_expression.json" in files and len(files) == 1 + sum(
        len(r["frame_names"]) for r in records
    )
    with zipfile.ZipFile(tmp_path / "grouped" / "submission.zip") as zg:
        with zipfile.ZipFile(tmp_path / "single" / "submission.zip") as zs:
            assert sorted(zg.namelist()) == sorted(zs.namelist())
            assert all(zg.read(n) == zs.read(n) for n in zs.namelist())


def test_grouped_input_needs_a_list_of_outputs(tmp_path):
    records = make_ytvos_fixture(str(tmp_path / "data"), write=False)
    groups, group_outputs = grouped(records, ytvos_outputs(records))
    ev = RefVOSEvaluator()
    with pytest.raises(
        ValueError, match="v1: a group of 4 expressions needs a list of as many outputs, got dict"
    ):
        ev.process(groups[:1], [group_outputs[0][0]])
    with pytest.raises(ValueError, match="got a list of 3"):
        ev.process(groups[:1], [group_outputs[0][:3]])


def test_injected_gt_reader_and_size_check(tmp_path):
    records = make_ytvos_fixture(str(tmp_path / "data"), with_gt=False)
    outputs = ytvos_outputs(records)

    def reader(rec):  # GT = object 1 of the video for every expression
        return object_masks(rec["video_id"], 1)

    res = run(RefVOSEvaluator(gt_reader=reader), records, outputs)
    # the 3 expressions of object 1 are perfect; the other 3 predict a disjoint object or nothing where
    # object 1 is: 0 on every frame
    assert res["refvos"] == pytest.approx({"J&F": 0.5, "J": 0.5, "F": 0.5})
    bad = [{"pred_masks": np.zeros((3, H, W + 1), bool)}]
    with pytest.raises(ValueError, match="original frame size"):
        RefVOSEvaluator(gt_reader=reader).process(records[:1], bad)


# ------------------------------------------------------------------------------------ Ref-DAVIS17 fixture
DH, DW = 12, 12
S1_OBJ = {1: box(1, 5, 1, 5, DH, DW), 2: box(7, 11, 7, 11, DH, DW)}
S1_VOID = box(1, 5, 6, 7, DH, DW)  # a void column right of object 1 (not touching object 2)
S2_OBJ = {1: box(3, 9, 3, 9, DH, DW)}
T = 3


def make_davis_fixture(root, write=True):
    """Sequences s1 (2 objects, void pixels) and s2 (1 object), 3 frames, exp ids 4k+a."""
    records = []
    for seq, objs, void in (("s1", S1_OBJ, S1_VOID), ("s2", S2_OBJ, None)):
        names = [f"{t:05d}" for t in range(T)]
        files = []
        for name in names:
            index = np.zeros((DH, DW), np.uint8)
            for k, m in objs.items():
                index[m] = k
            if void is not None:
                index[void] = 255
            path = os.path.join(root, "valid", "Annotations", seq, name + ".png")
            if write:
                write_palette(path, index)
            files.append(path)
        for k in sorted(objs):
            for a in range(4):
                records.append(
                    {
                        "video_id": seq,
                        "exp_id": str(4 * (k - 1) + a),
                        "expression": f"object {k}",
                        "frame_names": names,
                        "file_names": [f.replace("Annotations", "JPEGImages") for f in files],
                        "height": DH,
                        "width": DW,
                        "obj_ids": [k],
                        "annotations": {"type": "png", "files": files},
                    }
                )
    return records


def davis_prediction(rec):
    """Run 0 perfect; run 1 swaps the objects of s1; run 2 predicts nothing for s1's object 1; run 3 perfect
    plus the void column on s1's object 1. s2 is perfect in every run."""
    seq, e = rec["video_id"], int(rec["exp_id"])
    k, a = e // 4 + 1, e % 4
    objs = S1_OBJ if seq == "s1" else S2_OBJ
    mask = objs[k]
    if seq == "s1" and a == 1:
        mask = objs[3 - k]
    if seq == "s1" and a == 2 and k == 1:
        mask = np.zeros_like(mask)
    if seq == "s1" and a == 3 and k == 1:
        mask = mask | S1_VOID
    probs = np.where(mask, 0.9, 0.2).astype(np.float32)
    return {"pred_masks": np.stack([mask] * T), "mask_probs": np.stack([probs] * T)}


def expected_identity(records):
    per = []
    for r in records:
        out = davis_prediction(r)
        gt = np.stack([(S1_OBJ if r["video_id"] == "s1" else S2_OBJ)[r["obj_ids"][0]]] * T)
        per.append(
            (np.mean(db_eval_iou(gt, out["pred_masks"])), np.mean(db_eval_boundary(gt, out["pred_masks"])))
        )
    j, f = np.mean([p[0] for p in per]), np.mean([p[1] for p in per])
    return {"identity/J&F": (j + f) / 2, "identity/J": j, "identity/F": f}


def expected_davis():
    # objects pooled per run: run 2 has s1/obj1 at J = F = 0 and two objects at 1 -> 2/3; the others 1
    runs = {0: 1.0, 1: 1.0, 2: 2 / 3, 3: 1.0}
    res = {
        "J&F": np.mean(list(runs.values())),
        "J": np.mean(list(runs.values())),
        "F": np.mean(list(runs.values())),
    }
    for a, v in runs.items():
        res.update({f"anno_{a}/J&F": v, f"anno_{a}/J": v, f"anno_{a}/F": v})
    return res


def davis_expected_map(records):
    exp = {}
    for r in records:
        exp.setdefault((int(r["exp_id"]) % 4, r["video_id"]), set()).add(r["exp_id"])
    return exp


@pytest.mark.parametrize("streaming", [True, False], ids=["finish-early", "finish-in-evaluate"])
def test_ref_davis_four_runs(tmp_path, streaming):
    records = make_davis_fixture(str(tmp_path / "data"))
    ev = RefDAVISEvaluator(
        output_dir=str(tmp_path / "out"),
        expected_expressions=davis_expected_map(records) if streaming else None,
    )
    res = run(ev, records, [davis_prediction(r) for r in records], batch=3)["refvos"]
    for k, v in {**expected_davis(), **expected_identity(records)}.items():
        assert res[k] == pytest.approx(v, abs=1e-9), k
    assert res["identity/J"] < res["J"]  # the swapped run is forgiven by the Hungarian matching only
    assert res["J-Recall"] == pytest.approx(np.mean([1, 1, 2 / 3, 1]))
    # the merged maps as DAVIS result PNGs: frame-index names, palette, object k -> label k
    with Image.open(tmp_path / "out" / "anno_0" / "s1" / "00002.png") as img:
        assert img.mode == "P"
        arr = np.array(img)
    np.testing.assert_array_equal(arr, S1_OBJ[1] * 1 + S1_OBJ[2] * 2)
    with Image.open(tmp_path / "out" / "anno_1" / "s1" / "00000.png") as img:
        np.testing.assert_array_equal(np.array(img), S1_OBJ[1] * 2 + S1_OBJ[2] * 1)


def test_ref_davis_grouped_equals_ungrouped(tmp_path):
    """Each sequence's expressions (all four runs) in one input: the runs finish in ``process`` and give the
    same results and PNGs as one input per expression."""
    records = make_davis_fixture(str(tmp_path / "data"))
    outputs = [davis_prediction(r) for r in records]
    single = run(RefDAVISEvaluator(output_dir=str(tmp_path / "single")), records, outputs)
    groups, group_outputs = grouped(records, outputs)
    assert [len(g["exp_ids"]) for g in groups] == [8, 4]
    ev = RefDAVISEvaluator(
        output_dir=str(tmp_path / "grouped"), expected_expressions=davis_expected_map(records)
    )
    ev.process(groups[:1], group_outputs[:1])
    assert sorted(ev._objects) == [(a, "s1") for a in range(4)] and not ev._pending
    res = run(ev, groups, group_outputs, batch=1)
    assert res == single
    for k, v in expected_davis().items():
        assert res["refvos"][k] == pytest.approx(v, abs=1e-9), k
    assert tree(tmp_path / "grouped") == tree(tmp_path / "single") != {}


def test_ref_davis_partial_states_merge(tmp_path):
    # expressions of one (run, sequence) split over two "processes": the rank-0 merge equals one process
    records = make_davis_fixture(str(tmp_path / "data"))
    outputs = [davis_prediction(r) for r in records]
    expected = run(RefDAVISEvaluator(), records, outputs)["refvos"]
    order = np.random.RandomState(0).permutation(len(records))
    halves = [order[: len(order) // 2], order[len(order) // 2 :]]
    states = []
    for half in halves:
        ev = RefDAVISEvaluator(distributed=False, expected_expressions=davis_expected_map(records))
        ev.process([records[i] for i in half], [outputs[i] for i in half])
        states.append(ev._state())
    merged = RefDAVISEvaluator(distributed=False)._summarize(states)
    assert merged == pytest.approx(expected, abs=1e-12)


def test_merge_object_probs_is_thresholded_argmax():
    rng = np.random.RandomState(1)
    probs = rng.rand(4, 2, 6, 7).astype(np.float32)  # 4 objects, 2 frames
    probs[1, 0, 0, :3] = probs[3, 0, 0, :3] = 0.8  # exact ties go to the lower label
    ref = np.concatenate([np.full((1, 2, 6, 7), 0.1, np.float32), np.where(probs >= 0.5, probs, 0)]).argmax(0)
    for order in ([0, 1, 2, 3], [3, 1, 0, 2]):
        state = {}
        for k in order:
            merge_object_probs(state, ["a", "b"], probs[k], k + 1)
        np.testing.assert_array_equal(np.stack([state["a"][0], state["b"][0]]), ref)


def test_ref_davis_too_many_objects(tmp_path):
    records = make_davis_fixture(str(tmp_path / "data"))[:1]
    rec = dict(records[0], exp_id=str(4 * 20))  # label 21
    ev = RefDAVISEvaluator(distributed=False)
    ev.process([rec], [davis_prediction(records[0])])
    with pytest.raises(ValueError, match="at most 20"):
        ev.evaluate()


def test_build_evaluator_by_type(tmp_path):
    from detectron2.data import MetadataCatalog

    from soc.evaluation import A2DSentencesEvaluator, JHMDBSentencesEvaluator

    expected = {
        "ref_ytvos": RefVOSEvaluator,
        "ref_davis": RefDAVISEvaluator,
        "a2d_sentences": A2DSentencesEvaluator,
        "jhmdb_sentences": JHMDBSentencesEvaluator,
    }
    for etype, cls in expected.items():
        name = f"_test_build_{etype}"
        MetadataCatalog.get(name).set(evaluator_type=etype, root=str(tmp_path), split="test")
        assert type(build_evaluator(None, name, str(tmp_path))) is cls
    MetadataCatalog.get("_test_build_unknown").set(evaluator_type="coco")
    with pytest.raises(NotImplementedError, match="coco"):
        build_evaluator(None, "_test_build_unknown")


# ------------------------------------------------------------------------------------------ 2 processes
def _distributed_worker(data_root, davis_root, out_file):
    from detectron2.utils import comm

    rank, world = comm.get_rank(), comm.get_world_size()
    results = {}
    records = make_ytvos_fixture(data_root, write=False, temporal={"v1/1"})  # the parent wrote the files
    outputs = ytvos_outputs(records, wrong=True)
    ev = RefVOSEvaluator()
    n = (len(records) + world - 1) // world  # contiguous shards, as detectron2's InferenceSampler makes them
    ev.process(records[rank * n : (rank + 1) * n], outputs[rank * n : (rank + 1) * n])
    results["ytvos"] = ev.evaluate()
    records = make_davis_fixture(davis_root, write=False)
    outputs = [davis_prediction(r) for r in records]
    n = (len(records) + world - 1) // world
    ev = RefDAVISEvaluator(expected_expressions=davis_expected_map(records))
    ev.process(records[rank * n : (rank + 1) * n], outputs[rank * n : (rank + 1) * n])
    results["davis"] = ev.evaluate()
    # grouped inputs, sharded as detectron2's InferenceSampler shards the groups: v1 | v2, s1 | s2
    records = make_ytvos_fixture(data_root, write=False, temporal={"v1/1"})
    groups, group_outputs = grouped(records, ytvos_outputs(records, wrong=True))
    ev = RefVOSEvaluator()
    ev.process(groups[rank : rank + 1], group_outputs[rank : rank + 1])
    results["ytvos_grouped"] = ev.evaluate()
    records = make_davis_fixture(davis_root, write=False)
    groups, group_outputs = grouped(records, [davis_prediction(r) for r in records])
    ev = RefDAVISEvaluator(expected_expressions=davis_expected_map(records))
    ev.process(groups[rank : rank + 1], group_outputs[rank : rank + 1])
    results["davis_grouped"] = ev.evaluate()
    if comm.is_main_process():
        with open(out_file, "w") as f:
            json.dump(results, f)
    else:
        assert results == {"ytvos": {}, "davis": {}, "ytvos_grouped": {}, "davis_grouped": {}}
    _shutdown()


def _shutdown():
    # leave together and tear gloo down explicitly: a rank exiting while the other still talks can abort
    import torch.distributed as dist
    from detectron2.utils import comm

    comm.synchronize()
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path):
    from detectron2.engine import launch

    data_root, davis_root = str(tmp_path / "ytvos"), str(tmp_path / "davis")
    out_file = str(tmp_path / "dist.json")
    make_ytvos_fixture(data_root)
    make_davis_fixture(davis_root)
    launch(_distributed_worker, 2, dist_url="auto", args=(data_root, davis_root, out_file))
    with open(out_file) as f:
        dist = json.load(f)
    records = make_ytvos_fixture(data_root, temporal={"v1/1"})
    single = run(RefVOSEvaluator(), records, ytvos_outputs(records, wrong=True))
    assert dist["ytvos"]["refvos"] == pytest.approx(single["refvos"], abs=1e-12)
    assert dist["ytvos_grouped"]["refvos"] == pytest.approx(single["refvos"], abs=1e-12)
    records = make_davis_fixture(davis_root)
    single = run(RefDAVISEvaluator(), records, [davis_prediction(r) for r in records])
    assert dist["davis"]["refvos"] == pytest.approx(single["refvos"], abs=1e-12)
    assert dist["davis_grouped"]["refvos"] == pytest.approx(single["refvos"], abs=1e-12)
