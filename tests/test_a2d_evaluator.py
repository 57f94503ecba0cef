"""A2DSentencesEvaluator / JHMDBSentencesEvaluator: docs/formats_and_metrics.md §6.4 end to end (P@K, oIoU,
mIoU and COCOeval mAP from pycocotools), every-query mAP, GT from masks, from h5/mat files and from a COCO
json."""

import json
import os

import numpy as np
import pytest

from soc.data.build import group_expressions
from soc.evaluation import A2DSentencesEvaluator, JHMDBSentencesEvaluator
from soc.evaluation.a2d_evaluator import encode_mask

from helpers import G, Z, sq

TOL = 1e-6

SAMPLES = [(G, 0.9), (sq(1, 4, 2, 5), 0.8), (Z, 0.7)]  # (prediction, score); the GT is G for each

EXPECTED_6_4 = {
    "P@0.5": 2 / 3,
    "P@0.6": 1 / 3,
    "P@0.7": 1 / 3,
    "P@0.8": 1 / 3,
    "P@0.9": 1 / 3,
    "oIoU": 0.5,
    "mIoU": 0.50000005,
    "mAP": 0.369307,
    "AP50": 0.663366,
    "AP75": 0.336634,
    "APs": 0.369307,
    "APm": -1.0,
    "APl": -1.0,
    "AR1": 0.366667,
    "AR10": 0.366667,
    "AR100": 0.366667,
}


def a2d_records(n=3):
    return [
        {
            "video_id": "vidA",
            "exp_id": "0",
            "instance_id": 0,
            "frame_idx": 10 * (i + 1),
            "annotated_frame": 10 * (i + 1) - 1,
            "image_id": f"v_vidA_f_{10 * (i + 1)}_i_0",
            "height": 5,
            "width": 5,
            "obj_ids": [0],
        }
        for i in range(n)
    ]


def outputs_all_queries(samples, extra=None):
    """query_masks (1, N, 5, 5) and query_scores (1, N); ``extra`` = {sample index: (mask, score)}."""
    outs = []
    for i, (mask, score) in enumerate(samples):
        masks, scores = [mask], [score]
        if extra and i in extra:
            masks.append(extra[i][0])
            scores.append(extra[i][1])
        outs.append(
            {
                "query_masks": np.stack(masks)[None],
                "query_scores": np.array(scores)[None],
                "pred_masks": mask[None],
                "score": score,
            }
        )
    return outs


def evaluate(evaluator, records, outputs):
    evaluator.reset()
    evaluator.process(records, outputs)
    return evaluator.evaluate()


def check(res, expected):
    for k, v in expected.items():
        assert res[k] == pytest.approx(v, abs=TOL), k


def test_worked_example_6_4():
    ev = A2DSentencesEvaluator(gt_reader=lambda rec: G[None])
    res = evaluate(ev, a2d_records(), outputs_all_queries(SAMPLES))["a2d_sentences"]
    check(res, EXPECTED_6_4)


def test_top1_only_outputs():
    # without query_masks the single selected mask enters mAP; with one query per sample nothing changes here
    outs = [{k: o[k] for k in ("pred_masks", "score")} for o in outputs_all_queries(SAMPLES)]
    res = evaluate(A2DSentencesEvaluator(gt_reader=lambda rec: G[None]), a2d_records(), outs)["a2d_sentences"]
    check(res, EXPECTED_6_4)


def test_every_query_enters_map_but_not_precision():
    # A second query on s3 with the right mask and score 0.1. Hand-derived COCO AP (101 recall points):
    # IoU 0.5: TP, TP, FP, TP -> precision 1 up to recall 2/3 (67 points), 3/4 after (34 points): 92.5/101;
    # IoU >= 0.55: s2 is a FP -> precision 1 up to recall 1/3 (34 points), 1/2 up to 2/3 (33 points):
    # 50.5/101.
    outs = outputs_all_queries(SAMPLES, extra={2: (G, 0.1)})
    res = evaluate(A2DSentencesEvaluator(gt_reader=lambda rec: G[None]), a2d_records(), outs)["a2d_sentences"]
    assert res["AP50"] == pytest.approx(92.5 / 101, abs=TOL)
    assert res["AP75"] == pytest.approx(50.5 / 101, abs=TOL)
    assert res["mAP"] == pytest.approx((92.5 + 9 * 50.5) / 1010, abs=TOL)
    check(res, {k: EXPECTED_6_4[k] for k in ("P@0.5", "P@0.9", "oIoU", "mIoU")})  # top-1 is still Z on s3


def test_top_scoring_query_is_used_for_iou():
    outs = outputs_all_queries(SAMPLES, extra={2: (G, 0.95)})  # now G outranks Z on s3
    res = evaluate(A2DSentencesEvaluator(gt_reader=lambda rec: G[None]), a2d_records(), outs)["a2d_sentences"]
    assert res["oIoU"] == pytest.approx(24 / 30)
    assert res["P@0.5"] == pytest.approx(1.0)


def test_annotated_frame_position_from_keep_frames():
    rec = dict(a2d_records(1)[0], keep_frames=[1])
    masks = np.stack([Z, G, Z])[:, None]  # (T'=3, N=1, 5, 5): only frame 1 is the annotated one
    out = {"query_masks": masks, "query_scores": np.array([[0.1], [0.9], [0.2]])}
    res = evaluate(A2DSentencesEvaluator(gt_reader=lambda r: G[None]), [rec], [out])["a2d_sentences"]
    assert res["mIoU"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="keep_frames"):
        A2DSentencesEvaluator(gt_reader=lambda r: G[None]).process(a2d_records(1), [out])


def test_gt_from_coco_json(tmp_path):
    records = a2d_records()
    gt = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "dummy_class"}]}
    for i, rec in enumerate(records):
        rle = encode_mask(G)
        gt["images"].append({"id": rec["image_id"], "height": 5, "width": 5})
        gt["annotations"].append(
            {
                "id": i + 1,
                "image_id": rec["image_id"],
                "category_id": 1,
                "segmentation": rle,
                "area": 9.0,
                "bbox": [1.0, 1.0, 3.0, 3.0],
                "iscrowd": 0,
            }
        )
    path = tmp_path / "a2d_sentences_test_annotations_in_coco_format.json"
    path.write_text(json.dumps(gt))

    def no_reader(rec):
        raise AssertionError("the GT must come from the json")

    ev = A2DSentencesEvaluator(gt_json=str(path), gt_reader=no_reader)
    check(evaluate(ev, records, outputs_all_queries(SAMPLES))["a2d_sentences"], EXPECTED_6_4)


def test_default_reader_a2d_h5(tmp_path):
    import h5py

    # one h5 per annotated frame, reMask stored transposed (W, H) for a single instance; GT = G for instance 3
    records = []
    for i in range(3):
        path = tmp_path / "ann" / f"{10 * (i + 1):05d}.h5"
        path.parent.mkdir(exist_ok=True)
        with h5py.File(path, "w") as f:
            f["instance"] = np.array([3.0])
            f["reMask"] = G.T.astype(np.uint8)
            f["reBBox"] = np.array([[1.0], [1.0], [3.0], [3.0]])
            f["id"] = np.array([[11.0]])
        rec = dict(
            a2d_records()[i], obj_ids=[3], instance_id=3, annotations={"type": "a2d_h5", "file": str(path)}
        )
        del rec["image_id"]  # built from video, frame and instance
        records.append(rec)
    ev = A2DSentencesEvaluator(output_dir=str(tmp_path / "out"))
    check(evaluate(ev, records, outputs_all_queries(SAMPLES))["a2d_sentences"], EXPECTED_6_4)
    with open(tmp_path / "out" / "a2d_sentences_samples.json") as f:
        saved = json.load(f)
    assert sorted(saved) == ["v_vidA_f_10_i_3", "v_vidA_f_20_i_3", "v_vidA_f_30_i_3"]
    assert saved["v_vidA_f_20_i_3"]["I"] == 6 and saved["v_vidA_f_20_i_3"]["U"] == 12


def test_jhmdb_image_ids_and_mat_reader(tmp_path):
    import scipy.io

    mat = tmp_path / "puppet_mask.mat"
    scipy.io.savemat(mat, {"part_mask": np.stack([G] * 40, axis=-1).astype(np.uint8)})  # (H, W, T)
    records = [
        {
            "video_id": "run_01",
            "exp_id": "0",
            "frame_idx": f,
            "annotated_frame": f - 1,
            "obj_ids": [1],
            "annotations": {"type": "jhmdb_mat", "file": str(mat), "frame": f - 1},
        }
        for f in (5, 17, 33)
    ]
    ev = JHMDBSentencesEvaluator(output_dir=str(tmp_path / "out"))
    res = evaluate(ev, records, outputs_all_queries(SAMPLES))
    check(res["jhmdb_sentences"], EXPECTED_6_4)
    with open(tmp_path / "out" / "jhmdb_sentences_samples.json") as f:
        assert sorted(json.load(f)) == ["v_run_01_f_17", "v_run_01_f_33", "v_run_01_f_5"]


def test_temporal_subset_reported():
    records = [dict(r, exp_id=str(i)) for i, r in enumerate(a2d_records())]  # three expressions
    records[0]["temporal"] = True
    res = evaluate(A2DSentencesEvaluator(gt_reader=lambda r: G[None]), records, outputs_all_queries(SAMPLES))[
        "a2d_sentences"
    ]
    assert res["temporal/oIoU"] == pytest.approx(1.0) and res["temporal/P@0.9"] == pytest.approx(1.0)
    assert res["oIoU"] == pytest.approx(0.5)


def shared_frame_records():
    """The three samples of ``a2d_records`` with the first two on one annotated frame (instances 0 and 1)."""
    records = [dict(r, expression="the first actor") for r in a2d_records()]
    records[1] = dict(
        records[0],
        exp_id="1",
        instance_id=1,
        obj_ids=[1],
        image_id="v_vidA_f_10_i_1",
        expression="the second",
    )
    return records


def grouped_outputs(groups, records, outputs):
    """Per group, the list of its expressions' outputs (as the model answers a group)."""
    by_id = {r["image_id"]: o for r, o in zip(records, outputs)}
    return [[by_id[p["image_id"]] for p in g["per_expression"]] for g in groups]


def test_grouped_samples_equal_ungrouped():
    records = shared_frame_records()
    outputs = outputs_all_queries(SAMPLES, extra={2: (G, 0.1)})
    single = evaluate(A2DSentencesEvaluator(gt_reader=lambda r: G[None]), records, outputs)["a2d_sentences"]
    check(single, {k: EXPECTED_6_4[k] for k in ("P@0.5", "P@0.9", "oIoU", "mIoU")})
    groups = group_expressions(records)
    assert [g["exp_ids"] for g in groups] == [["0", "1"], ["0"]]
    ev = A2DSentencesEvaluator(gt_reader=lambda r: G[None])
    grouped = evaluate(ev, groups, grouped_outputs(groups, records, outputs))["a2d_sentences"]
    assert grouped == single
    reverse = evaluate(A2DSentencesEvaluator(gt_reader=lambda r: G[None]), records[::-1], outputs[::-1])
    assert reverse["a2d_sentences"] == single  # any order: the same sums
    with pytest.raises(ValueError, match="a group of 2 expressions needs a list of as many outputs"):
        ev.process(groups[:1], outputs[:1])


# ------------------------------------------------------------------------------------------ 2 processes
def _worker(out_file):
    import torch.distributed as dist
    from detectron2.utils import comm

    rank = comm.get_rank()
    records, outputs = a2d_records(), outputs_all_queries(SAMPLES, extra={2: (G, 0.1)})
    shard = [0, 1] if rank == 0 else [2]
    ev = A2DSentencesEvaluator(gt_reader=lambda r: G[None])
    ev.process([records[i] for i in shard], [outputs[i] for i in shard])
    res = {"ungrouped": ev.evaluate()}
    # grouped inputs: rank 0 has the group of the shared frame, rank 1 the other sample
    records = shared_frame_records()
    groups = group_expressions(records)
    ev.reset()
    ev.process(groups[rank : rank + 1], grouped_outputs(groups, records, outputs)[rank : rank + 1])
    res["grouped"] = ev.evaluate()
    if comm.is_main_process():
        with open(out_file, "w") as f:
            json.dump(res, f)
    else:
        assert res == {"ungrouped": {}, "grouped": {}}
    comm.synchronize()
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path):
    from detectron2.engine import launch

    out_file = str(tmp_path / "dist.json")
    launch(_worker, 2, dist_url="auto", args=(out_file,))
    with open(out_file) as f:
        dist = json.load(f)
    outputs = outputs_all_queries(SAMPLES, extra={2: (G, 0.1)})
    single = evaluate(A2DSentencesEvaluator(gt_reader=lambda r: G[None]), a2d_records(), outputs)
    assert dist["ungrouped"]["a2d_sentences"] == pytest.approx(single["a2d_sentences"], abs=1e-12)
    single = evaluate(A2DSentencesEvaluator(gt_reader=lambda r: G[None]), shared_frame_records(), outputs)
    assert dist["grouped"]["a2d_sentences"] == pytest.approx(single["a2d_sentences"], abs=1e-12)
    assert os.path.getsize(out_file) > 0
