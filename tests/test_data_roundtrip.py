"""Round trip: SynthRVOS generator truth == registered loaders + real mappers, for all four formats."""

import uuid

import numpy as np
import pytest
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from PIL import Image

from soc.config import add_soc_config
from soc.data import (
    A2DMapper,
    RefVOSMapper,
    read_masks,
    register_a2d_sentences,
    register_jhmdb_sentences,
    register_ref_davis17,
    register_ref_ytvos,
    swap_left_right,
)
from soc.data.build import group_expressions, ungroup
from soc.data.synthetic import generate


def _cfg(h, w, *, train_size=None, flip=0.0, window=8):
    cfg = get_cfg()
    add_soc_config(cfg)
    side = min(h, w) if train_size is None else train_size
    cfg.INPUT.MIN_SIZE_TRAIN = (side,)
    cfg.INPUT.MAX_SIZE_TRAIN = 10_000
    cfg.INPUT.MIN_SIZE_TEST = min(h, w)  # identity size at test time
    cfg.INPUT.MAX_SIZE_TEST = 10_000
    cfg.INPUT.FLIP_PROB = flip
    cfg.INPUT.SAMPLING_FRAME_NUM = window
    cfg.INPUT.TEST_WINDOW = window
    return cfg


def _register(fn, *args):
    name = f"test_{fn.__name__}_{uuid.uuid4().hex[:8]}"
    fn(name, *args)
    return name


def _flagged(records):
    """The temporal subset as the loaders flag it: ``"<video>/<exp_id>"`` of the records with ``temporal``."""
    return {f"{r['video_id']}/{r['exp_id']}" for r in records if r["temporal"]}


def _hwc(frames):
    return frames.permute(0, 2, 3, 1).numpy().astype(np.int16)


def _assert_frames_match(got, truth, indices, tol):
    """Lossy codecs: each frame is close to its truth frame and closer to it than to any other frame."""
    truth = truth.astype(np.int16)
    for g, i in zip(got, indices):
        dists = np.abs(truth - g[None]).mean(axis=(1, 2, 3))
        assert dists[i] < tol, (i, dists[i])
        assert dists[i] == dists.min(), (i, dists)


def _box(mask, flip=False):
    """Hand formula: inclusive pixel bbox, flipped as x -> W - x, as normalised cxcywh."""
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    x1, x2, y1, y2 = xs.min(), xs.max(), ys.min(), ys.max()
    if flip:
        x1, x2 = w - x2, w - x1
    return np.array([(x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h])


@pytest.fixture(scope="module")
def ytvos(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("ytvos"))
    train = generate(root, "ytvos", 4, seed=11, frames=(5, 9), size=(48, 80), split="train", progress=False)
    valid = generate(
        root, "ytvos", 3, seed=12, frames=(4, 6), size=(48, 80), split="valid", test_videos=2, progress=False
    )
    return root, train, valid


def test_ytvos_train_roundtrip(ytvos):
    root, truth, _ = ytvos
    name = _register(register_ref_ytvos, root, "train")
    records = DatasetCatalog.get(name)
    expected = {(v, k): e for v, tv in truth["videos"].items() for k, e in tv["expressions"].items()}
    assert {(r["video_id"], r["exp_id"]) for r in records} == set(expected)
    assert _flagged(records) == truth["temporal"]  # the one source of the temporal subset
    assert MetadataCatalog.get(name).as_dict().keys() == {"name", "evaluator_type", "root", "split"}
    mapper = RefVOSMapper(_cfg(48, 80, window=4), is_train=True)
    np.random.seed(0)
    for r in records:
        tv = truth["videos"][r["video_id"]]
        e = expected[(r["video_id"], r["exp_id"])]
        assert r["frame_names"] == tv["frame_names"] and r["temporal"] == e["temporal"]
        out = mapper(r)
        idx = out["frame_indices"]
        assert len(idx) == 4 and idx == list(range(idx[0], idx[0] + 4))
        assert out["expression"] == e["exp"] and (out["height"], out["width"]) == (48, 80)
        assert out["frame_names"] == [tv["frame_names"][i] for i in idx]
        assert out["frames"].dtype.is_floating_point is False and out["frames"].shape == (4, 3, 48, 80)
        _assert_frames_match(_hwc(out["frames"]), tv["frames"], idx, tol=4.0)
        gt = tv["masks"][e["obj_id"]][idx]
        tg = out["targets"]
        assert np.array_equal(tg["masks"].numpy(), gt)
        assert np.array_equal(tg["is_visible"].numpy(), gt.any(axis=(1, 2))) and gt.any()
        for t in range(4):
            want = _box(gt[t]) if gt[t].any() else np.zeros(4)
            np.testing.assert_allclose(tg["boxes"][t].numpy(), want, atol=1e-6)


def test_ytvos_train_flip_and_resize(ytvos):
    root, truth, _ = ytvos
    name = _register(register_ref_ytvos, root, "train")
    mapper = RefVOSMapper(_cfg(48, 80, train_size=36, flip=1.0, window=3), is_train=True)
    np.random.seed(1)
    for r in DatasetCatalog.get(name):
        tv = truth["videos"][r["video_id"]]
        e = tv["expressions"][r["exp_id"]]
        out = mapper(r)
        idx = out["frame_indices"]
        assert out["frames"].shape == (3, 3, 36, 60)
        assert out["expression"] == swap_left_right(e["exp"])
        for t, i in enumerate(idx):  # masks: truth resized with PIL nearest, then flipped
            m = Image.fromarray(tv["masks"][e["obj_id"]][i].astype(np.uint8)).resize((60, 36), Image.NEAREST)
            assert np.array_equal(out["targets"]["masks"][t].numpy(), np.asarray(m)[:, ::-1].astype(bool))
            f = np.asarray(Image.fromarray(tv["frames"][i]).resize((60, 36), Image.BILINEAR))[:, ::-1]
            assert np.abs(_hwc(out["frames"])[t] - f.astype(np.int16)).mean() < 5.0
            if tv["masks"][e["obj_id"]][i].any():  # box: the original inclusive box, scaled then flipped
                full = _box(tv["masks"][e["obj_id"]][i], flip=True)
                np.testing.assert_allclose(out["targets"]["boxes"][t].numpy(), full, atol=1e-6)


def test_ytvos_valid_roundtrip(ytvos):
    root, _, truth = ytvos
    name = _register(register_ref_ytvos, root, "valid")
    records = DatasetCatalog.get(name)
    valid_vids = {v for v, tv in truth["videos"].items() if tv["split"] == "valid"}
    assert len(valid_vids) == 3 and len(truth["videos"]) == 5  # 2 test videos listed in valid and test
    assert {r["video_id"] for r in records} == valid_vids
    mapper = RefVOSMapper(_cfg(48, 80), is_train=False)
    for r in records:
        tv = truth["videos"][r["video_id"]]
        e = tv["expressions"][r["exp_id"]]
        out = mapper(r)
        assert "targets" not in out and out["expression"] == e["exp"]
        assert out["frame_names"] == tv["frame_names"] and out["frames"].shape[0] == len(tv["frame_names"])
        _assert_frames_match(_hwc(out["frames"]), tv["frames"], range(len(tv["frame_names"])), tol=4.0)
        assert np.array_equal(read_masks(out), tv["masks"][e["obj_id"]])  # the evaluator's GT path


def test_ytvos_valid_groups_roundtrip(ytvos):
    """One test sample per video: its frames once, and per expression (as the evaluators see it through
    ``ungroup``) the truth's expression, flag and masks."""
    root, _, truth = ytvos
    records = DatasetCatalog.get(_register(register_ref_ytvos, root, "valid"))
    groups = group_expressions(records)
    assert sorted(g["video_id"] for g in groups) == sorted({r["video_id"] for r in records})
    mapper = RefVOSMapper(_cfg(48, 80), is_train=False)
    for group in groups:
        tv = truth["videos"][group["video_id"]]
        out = mapper(group)
        assert sorted(out["exp_ids"]) == sorted(tv["expressions"]) and "targets" not in out
        _assert_frames_match(_hwc(out["frames"]), tv["frames"], range(len(tv["frame_names"])), tol=4.0)
        for single in ungroup(out):
            e = tv["expressions"][single["exp_id"]]
            assert single["expression"] == e["exp"] and single["temporal"] == e["temporal"]
            assert single["frame_names"] == tv["frame_names"] and single["frames"] is out["frames"]
            assert np.array_equal(read_masks(single), tv["masks"][e["obj_id"]])


def test_davis_roundtrip(tmp_path):
    truth = generate(str(tmp_path), "davis", 3, seed=5, frames=(4, 6), size=(48, 80), progress=False)
    name = _register(register_ref_davis17, str(tmp_path), "valid", None)
    records = DatasetCatalog.get(name)
    n_objects = sum(
        len(set(e["obj_id"] for e in tv["expressions"].values())) for tv in truth["videos"].values()
    )
    assert len(records) == 4 * n_objects
    assert MetadataCatalog.get(name).evaluator_type == "ref_davis"
    mapper = RefVOSMapper(_cfg(48, 80), is_train=False)
    for r in records:
        tv = truth["videos"][r["video_id"]]
        e = tv["expressions"][r["exp_id"]]
        obj_order = sorted({x["obj_id"] for x in tv["expressions"].values()})
        assert e["obj_id"] == obj_order[int(r["exp_id"]) // 4] and r["annotator"] == int(r["exp_id"]) % 4
        out = mapper(r)
        assert out["expression"] == e["exp"] and out["frame_names"] == tv["frame_names"]
        assert np.array_equal(read_masks(out), tv["masks"][e["obj_id"]])
    for a in range(4):
        sub = DatasetCatalog.get(_register(register_ref_davis17, str(tmp_path), "valid", a))
        assert len(sub) == n_objects and all(int(r["exp_id"]) % 4 == a for r in sub)


def _a2d_expected(truth, subset):
    out = set()
    for vid, tv in truth["videos"].items():
        if tv["split"] != subset:
            continue
        for inst in tv["expressions"]:
            for f in tv["annotated_frames"]:
                if tv["masks"][int(inst)][f].any():
                    out.add((vid, f + 1, int(inst)))
    return out


def test_a2d_roundtrip(tmp_path):
    truth = generate(
        str(tmp_path), "a2d", 6, seed=3, frames=(8, 12), size=(64, 96), test_fraction=0.5, progress=False
    )
    cfg = _cfg(64, 96, window=8)
    for subset in ("train", "test"):
        name = _register(register_a2d_sentences, str(tmp_path), subset)
        records = DatasetCatalog.get(name)
        assert records, subset
        assert {(r["video_id"], r["frame_idx"], r["instance_id"]) for r in records} == _a2d_expected(
            truth, subset
        )
        mapper = A2DMapper(cfg, is_train=subset == "train")
        for r in records:
            tv = truth["videos"][r["video_id"]]
            e = tv["expressions"][r["exp_id"]]
            out = mapper(r)
            c, n = r["frame_idx"] - 1, len(tv["frame_names"])
            window = [min(max(i, 0), n - 1) for i in range(c - 4, c + 4)]
            assert out["frame_indices"] == window and out["keep_frames"].tolist() == [4]
            assert out["frame_names"] == [tv["frame_names"][i] for i in window]
            assert out["expression"] == e["exp"] and r["temporal"] == out["temporal"] == e["temporal"]
            _assert_frames_match(_hwc(out["frames"]), tv["frames"], window, tol=8.0)
            gt = tv["masks"][r["instance_id"]][c]
            assert np.array_equal(read_masks(out)[0], gt)
            if subset == "train":
                assert np.array_equal(out["targets"]["masks"].numpy(), gt[None])
                np.testing.assert_allclose(out["targets"]["boxes"][0].numpy(), _box(gt), atol=1e-6)
            else:
                assert "targets" not in out
        assert _flagged(records) == {
            k for k in truth["temporal"] if truth["videos"][k.split("/")[0]]["split"] == subset
        }
    # test samples grouped by (video, annotated frame): one window, every instance's GT
    mapper = A2DMapper(cfg, is_train=False)
    groups = group_expressions(records)
    assert len(groups) == len({(r["video_id"], r["frame_idx"]) for r in records}) < len(records)
    for group in groups:
        tv = truth["videos"][group["video_id"]]
        out = mapper(group)
        c = group["frame_idx"] - 1
        assert out["frame_indices"] == [
            min(max(i, 0), len(tv["frame_names"]) - 1) for i in range(c - 4, c + 4)
        ]
        for single in ungroup(out):
            inst = single["instance_id"]
            assert single["expression"] == tv["expressions"][single["exp_id"]]["exp"]
            assert single["image_id"] == f"v_{group['video_id']}_f_{c + 1}_i_{inst}"
            assert np.array_equal(read_masks(single)[0], tv["masks"][inst][c])


def test_jhmdb_roundtrip(tmp_path):
    truth = generate(str(tmp_path), "jhmdb", 3, seed=8, frames=(6, 10), size=(48, 64), progress=False)
    name = _register(register_jhmdb_sentences, str(tmp_path))
    records = DatasetCatalog.get(name)
    assert MetadataCatalog.get(name).evaluator_type == "jhmdb_sentences"
    assert sorted((r["video_id"], r["annotated_frame"]) for r in records) == sorted(
        (v, f) for v, tv in truth["videos"].items() for f in tv["annotated_frames"]
    )
    mapper = A2DMapper(_cfg(48, 64, window=8), is_train=False)
    for r in records:
        tv = truth["videos"][r["video_id"]]
        assert len(r["file_names"]) == tv["mask_frames"]  # frames past the last mask are unusable
        out = mapper(r)
        c, n = r["annotated_frame"], tv["mask_frames"]
        window = [min(max(i, 0), n - 1) for i in range(c - 4, c + 4)]
        assert out["frame_indices"] == window and out["keep_frames"].tolist() == [4]
        assert np.array_equal(_hwc(out["frames"]), tv["frames"][window].astype(np.int16))  # PNG: lossless
        assert out["expression"] == tv["expressions"]["0"]["exp"]
        assert np.array_equal(read_masks(out)[0], tv["masks"][tv["actor"]][c])
