"""Mappers: the flip's word swap, centred A2D/JHMDB windows, training windows, targets and clip-consistent
augmentation, on hand-made fixtures."""

import json
import os
import uuid

import numpy as np
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.data import MetadataCatalog
from detectron2.data import transforms as T
from PIL import Image

from soc.config import add_soc_config
from soc.data import (
    A2DMapper,
    DataError,
    RefVOSMapper,
    build_soc_mapper,
    davis_palette,
    centered_window,
    register_a2d_sentences,
    register_ref_ytvos,
    swap_left_right,
)
from soc.data.build import group_expressions, ungroup
from soc.data.mappers import sample_window
from soc.data.mappers.clip_utils import clip_input, masks_to_targets


@pytest.mark.parametrize(
    "text, want",
    [
        ("the man on the left", "the man on the right"),
        ("left of the car, right of the dog", "right of the car, left of the dog"),
        ("Left hand raised; RIGHT foot", "Right hand raised; LEFT foot"),
        ("the leftmost zebra", "the rightmost zebra"),
        ("a bright light, upright", "a bright light, upright"),
        ("no side words", "no side words"),
    ],
)
def test_swap_left_right(text, want):
    assert swap_left_right(text) == want
    assert swap_left_right(swap_left_right(text)) == text


def test_centered_window_formulas():
    # A2D: w=8, 1-based frame 28 -> 0-based 23..30, annotated frame at position 4
    w = centered_window(27, 100, 8)
    assert w == list(range(23, 31)) and w[4] == 27
    # JHMDB: c=2 (1-based), w=8 -> [1,1,1,1,2,3,4,5] (1-based)
    assert [i + 1 for i in centered_window(1, 40, 8)] == [1, 1, 1, 1, 2, 3, 4, 5]
    assert centered_window(4, 6, 8) == [0, 1, 2, 3, 4, 5, 5, 5]
    assert centered_window(2, 10, 5) == [0, 1, 2, 3, 4]  # odd window: centre at 5 // 2 = 2
    with pytest.raises(ValueError):
        centered_window(6, 6, 8)


def test_sample_window():
    np.random.seed(0)
    starts = set()
    for _ in range(300):
        w = sample_window(10, 4, anchor=5)
        assert w == list(range(w[0], w[0] + 4)) and 5 in w
        starts.add(w[0])
    assert starts == {2, 3, 4, 5}  # every window containing the anchor occurs
    assert sample_window(10, 4, anchor=0) == [0, 1, 2, 3]
    assert sample_window(3, 5, anchor=1) == [0, 1, 2, 2, 2]  # short video: last frame repeated


def test_masks_to_targets_hand_computed():
    m = np.zeros((2, 5, 8), dtype=bool)
    m[0, 1:3, 2:6] = True  # rows 1..2, cols 2..5 -> inclusive box (2, 1, 5, 2)
    tfm = T.TransformList([T.ResizeTransform(5, 8, 10, 16), T.HFlipTransform(16)])
    out = masks_to_targets(m, tfm)
    assert out["masks"].shape == (2, 10, 16) and out["is_visible"].tolist() == [True, False]
    # box scaled x2: (4, 2, 10, 4); flipped x -> 16 - x: (6, 2, 12, 4); cxcywh / (16, 10)
    torch.testing.assert_close(out["boxes"][0], torch.tensor([9 / 16, 3 / 10, 6 / 16, 2 / 10]))
    assert out["boxes"][1].tolist() == [0, 0, 0, 0]
    # rows 1..2 -> 2..5; cols 2..5 -> 4..11 -> flipped 16-12..16-5 = 4..11: 4 x 8 pixels
    assert out["masks"][0].sum() == 32 and out["masks"][0, 2:6, 4:12].all()


def _write_video(root, vid, frames, index, obj_frames=None):
    """A one-video Ref-YouTube-VOS train split; object 1 per the index maps."""
    names = [f"{5 * i:05d}" for i in range(len(frames))]
    for n, f, m in zip(names, frames, index):
        os.makedirs(root / "train" / "JPEGImages" / vid, exist_ok=True)
        os.makedirs(root / "train" / "Annotations" / vid, exist_ok=True)
        Image.fromarray(f).save(root / "train" / "JPEGImages" / vid / f"{n}.jpg", quality=95)
        png = Image.fromarray(m)
        png.putpalette(davis_palette())
        png.save(root / "train" / "Annotations" / vid / f"{n}.png")
    (root / "meta_expressions" / "train").mkdir(parents=True, exist_ok=True)
    meta = {
        "videos": {
            vid: {"expressions": {"0": {"exp": "the thing on the left", "obj_id": "1"}}, "frames": names}
        }
    }
    json.dump(meta, open(root / "meta_expressions" / "train" / "meta_expressions.json", "w"))
    obj = {"category": "x"}
    if obj_frames is not None:
        obj["frames"] = [names[i] for i in obj_frames]
    json.dump({"videos": {vid: {"objects": {"1": obj}}}}, open(root / "train" / "meta.json", "w"))
    return names


def _cfg(**kw):
    cfg = get_cfg()
    add_soc_config(cfg)
    cfg.INPUT.MIN_SIZE_TRAIN = (16,)
    cfg.INPUT.MAX_SIZE_TRAIN = 1000
    cfg.INPUT.MIN_SIZE_TEST = 16
    cfg.INPUT.MAX_SIZE_TEST = 1000
    for k, v in kw.items():
        setattr(cfg.INPUT, k, v)
    return cfg


def _stripes(n, h=16, w=24):
    """Frames whose content encodes their index (a bright column at x = 2 * i), and a colour ramp."""
    frames = np.zeros((n, h, w, 3), dtype=np.uint8)
    frames[..., 0] = np.arange(w, dtype=np.uint8)[None, None] * 10
    for i in range(n):
        frames[i, :, 2 * i] = 255
    return frames


def test_train_window_finds_object(tmp_path):
    """The object is visible in frames 7..8 only; meta.json lists no frames, so random anchors fall back to
    the frames where the masks show the object: every clip contains it."""
    frames = _stripes(10)
    index = np.zeros((10, 16, 24), dtype=np.uint8)
    index[7:9, 4:8, 4:8] = 1
    _write_video(tmp_path, "vid0000001", frames, index)
    from soc.data import load_ref_ytvos

    (record,) = load_ref_ytvos(str(tmp_path), "train")
    mapper = RefVOSMapper(_cfg(SAMPLING_FRAME_NUM=3, FLIP_PROB=0.0), is_train=True)
    np.random.seed(0)
    for _ in range(20):
        out = mapper(record)
        assert out["targets"]["is_visible"].any()
        assert set(out["frame_indices"]) & {7, 8}
        for t, i in enumerate(out["frame_indices"]):  # each frame is the file of its index (bright column 2i)
            assert int(out["frames"][t, 1, 0].float().argmax()) == 2 * i


def test_train_uses_meta_json_anchor(tmp_path):
    frames = _stripes(10)
    index = np.zeros((10, 16, 24), dtype=np.uint8)
    index[2, 4:8, 4:8] = 1
    _write_video(tmp_path, "vid0000002", frames, index, obj_frames=[2])
    from soc.data import load_ref_ytvos

    (record,) = load_ref_ytvos(str(tmp_path), "train")
    assert record["obj_frames"] == ["00010"]
    mapper = RefVOSMapper(_cfg(SAMPLING_FRAME_NUM=2, FLIP_PROB=0.0), is_train=True)
    np.random.seed(3)
    windows = {tuple(mapper(record)["frame_indices"]) for _ in range(30)}
    assert windows == {(1, 2), (2, 3)}


def test_flip_is_clip_consistent(tmp_path):
    """With p = 0.5 each clip is flipped as a whole or not at all, and the expression follows."""
    frames = _stripes(6)
    index = np.zeros((6, 16, 24), dtype=np.uint8)
    index[:, 2:6, 1:5] = 1
    _write_video(tmp_path, "vid0000003", frames, index)
    from soc.data import load_ref_ytvos

    (record,) = load_ref_ytvos(str(tmp_path), "train")
    mapper = RefVOSMapper(_cfg(SAMPLING_FRAME_NUM=6, FLIP_PROB=0.5), is_train=True)
    np.random.seed(7)
    seen = set()
    for _ in range(20):
        out = mapper(record)
        flipped = [
            bool(out["targets"]["masks"][t, 3, 20]) for t in range(6)
        ]  # the mask moves to the right side
        assert len(set(flipped)) == 1
        red = out["frames"][:, 0, 0].float()  # the ramp decreases left to right when flipped
        assert all(bool(red[t, 1] > red[t, -2]) == flipped[0] for t in range(6))
        assert out["expression"] == ("the thing on the right" if flipped[0] else "the thing on the left")
        seen.add(flipped[0])
    assert seen == {True, False}


def test_test_mapper_keeps_original_size(tmp_path):
    frames = _stripes(4, h=16, w=24)
    _write_video(tmp_path, "vid0000004", frames, np.ones((4, 16, 24), dtype=np.uint8))
    from soc.data import load_ref_ytvos

    (record,) = load_ref_ytvos(str(tmp_path), "train")
    out = RefVOSMapper(_cfg(MIN_SIZE_TEST=32), is_train=False)(record)
    assert out["frames"].shape == (4, 3, 32, 48) and out["frames"].dtype == torch.uint8
    assert (out["height"], out["width"]) == (16, 24) and out["frame_names"] == record["frame_names"]
    assert "targets" not in out and out["obj_ids"] == [1]


def test_build_soc_mapper():
    cfg = _cfg()
    a, b = f"m_{uuid.uuid4().hex[:6]}", f"m_{uuid.uuid4().hex[:6]}"
    register_a2d_sentences(a, "/nonexistent", "train")
    register_ref_ytvos(b, "/nonexistent", "train")
    for name, cls in ((a, A2DMapper), (b, RefVOSMapper)):
        for is_train in (True, False):
            mapper = build_soc_mapper(cfg, name, is_train)
            assert type(mapper) is cls and mapper.is_train == is_train
    assert build_soc_mapper(cfg, a, True).window_size == cfg.INPUT.SAMPLING_FRAME_NUM
    assert build_soc_mapper(cfg, a, False).window_size == cfg.INPUT.TEST_WINDOW
    assert MetadataCatalog.get(a).evaluator_type == "a2d_sentences"


def test_train_mapper_needs_ground_truth():
    record = {
        "video_id": "v",
        "exp_id": "0",
        "expression": "x",
        "file_names": ["a.jpg"],
        "frame_names": ["a"],
        "obj_ids": [],
        "annotations": None,
    }
    with pytest.raises(DataError, match="no ground truth"):
        RefVOSMapper(_cfg(), is_train=True)(record)


def _assert_same_input(a, b):
    assert a.keys() == b.keys()
    for k in a:
        if isinstance(a[k], torch.Tensor):
            assert torch.equal(a[k], b[k]), k
        else:
            assert a[k] == b[k], k


def test_test_mapper_maps_a_group_like_its_records(tmp_path):
    """A group of a video's records gives one input (frames once, ``expressions`` normalised) whose
    per-expression views are the inputs of the records mapped one by one."""
    frames = _stripes(4, h=16, w=24)
    _write_video(tmp_path, "vid0000005", frames, np.ones((4, 16, 24), dtype=np.uint8))
    from soc.data import load_ref_ytvos

    (record,) = load_ref_ytvos(str(tmp_path), "train")
    texts = ["The thing on the LEFT ", "a  dog", "x"]
    records = [dict(record, exp_id=str(i), expression=t, obj_ids=[i + 1]) for i, t in enumerate(texts)]
    mapper = RefVOSMapper(_cfg(MIN_SIZE_TEST=32), is_train=False)
    (group,) = group_expressions(records)
    out = mapper(group)
    assert out["expressions"] == ["the thing on the left", "a dog", "x"] and out["exp_ids"] == ["0", "1", "2"]
    assert "expression" not in out and out["frames"].shape == (4, 3, 32, 48)
    singles = ungroup(out)
    assert len(singles) == 3
    for single, r in zip(singles, records):
        _assert_same_input(single, mapper(r))


def _two_object_video(root):
    """6 frames; object 1 in every frame, object 2 in frames 0–1 only; records: objects 1, 2, 1."""
    index = np.zeros((6, 16, 24), dtype=np.uint8)
    index[:, 2:6, 1:5] = 1
    index[:2, 8:12, 10:14] = 2
    _write_video(root, "vid0000009", _stripes(6), index)
    from soc.data import load_ref_ytvos

    (record,) = load_ref_ytvos(str(root), "train")
    texts = ["the first one", "the second one", "the first one again"]
    records = [
        dict(record, exp_id=str(i), expression=t, obj_ids=[o])
        for i, (t, o) in enumerate(zip(texts, [1, 2, 1]))
    ]
    return records, index


def test_train_mapper_draws_expressions_of_a_group(tmp_path):
    """A training group gives one clip with up to EXPRESSIONS_PER_CLIP expressions, each with the targets of
    its own object on the shared frames; an expression whose object the window does not show is left out."""
    records, index = _two_object_video(tmp_path)
    (group,) = group_expressions(records)
    cfg = _cfg(SAMPLING_FRAME_NUM=2, FLIP_PROB=0.0)
    np.random.seed(0)
    counts = set()
    for per_clip in (0, 2):
        cfg.DATALOADER.EXPRESSIONS_PER_CLIP = per_clip
        mapper = RefVOSMapper(cfg, is_train=True)
        for _ in range(25):
            out = mapper(group)
            texts, targets = out["expressions"], out["targets"]
            assert len(texts) == len(targets) == len(out["exp_ids"]) >= 1 and len(texts) <= (per_clip or 3)
            counts.add(len(texts))
            for exp_id, t in zip(out["exp_ids"], targets):
                obj = [1, 2, 1][int(exp_id)]
                expected = torch.from_numpy(index[out["frame_indices"]] == obj)
                assert torch.equal(t["masks"], expected) and t["is_visible"].any()
            if "1" in out["exp_ids"]:  # object 2's expression only comes with a window that shows it
                assert set(out["frame_indices"]) & {0, 1}
    assert counts == {1, 2, 3}


def test_train_group_of_one_is_the_record_mapped_alone(tmp_path):
    records, _ = _two_object_video(tmp_path)
    (group,) = group_expressions(records)
    cfg = _cfg(SAMPLING_FRAME_NUM=3, FLIP_PROB=0.5)
    cfg.DATALOADER.EXPRESSIONS_PER_CLIP = 1
    mapper = RefVOSMapper(cfg, is_train=True)
    for seed in range(6):
        np.random.seed(seed)
        out = mapper(group)
        np.random.seed(seed)
        lead = records[np.random.permutation(3)[0]]
        single = mapper(lead)
        assert out["expressions"] == [single["expression"]] and out["exp_ids"] == [lead["exp_id"]]
        assert out["frame_indices"] == single["frame_indices"] and torch.equal(
            out["frames"], single["frames"]
        )
        (t,) = out["targets"]
        assert all(torch.equal(t[k], single["targets"][k]) for k in single["targets"])


def test_flip_swaps_every_expression_of_a_group():
    group = {"video_id": "v", "expressions": ["Left of the car", "the right one"], "exp_ids": ["0", "1"]}
    frame = np.zeros((4, 6, 3), dtype=np.uint8)
    out = clip_input(group, ("expression",), [frame], T.TransformList([T.HFlipTransform(6)]))
    assert out["expressions"] == ["right of the car", "the left one"] and out["exp_ids"] == ["0", "1"]
    out = clip_input(group, ("expression",), [frame], T.TransformList([]))
    assert out["expressions"] == ["left of the car", "the right one"]


def _record(vid, exp_id, frames=("00000", "00005"), **extra):
    return {
        "video_id": vid,
        "exp_id": exp_id,
        "expression": f"expression {exp_id} of {vid}",
        "file_names": [f"/data/{vid}/{f}.jpg" for f in frames],
        "frame_names": list(frames),
        "height": 4,
        "width": 6,
        "obj_ids": [int(exp_id)],
        "annotations": None,
        **extra,
    }


def test_group_expressions_by_clip():
    records = [
        _record("v1", "0"),
        _record("v2", "0"),
        _record("v1", "1", temporal=True),
        _record("v1", "2"),
        _record("v2", "1"),
        _record("v1", "3", frames=("00000",)),  # other frames: another clip
    ]
    groups = group_expressions(records)
    assert [(g["video_id"], g["exp_ids"]) for g in groups] == [
        ("v1", ["0", "1", "2"]),
        ("v2", ["0", "1"]),
        ("v1", ["3"]),
    ]
    assert groups[0]["expressions"] == ["expression 0 of v1", "expression 1 of v1", "expression 2 of v1"]
    assert groups[0]["per_expression"] == [
        {"obj_ids": [0], "annotations": None},
        {"obj_ids": [1], "annotations": None, "temporal": True},
        {"obj_ids": [2], "annotations": None},
    ]
    assert groups[2]["frame_names"] == ["00000"] and groups[2]["file_names"] == ["/data/v1/00000.jpg"]
    # ungroup inverts the grouping, clip by clip
    assert [r for g in groups for r in ungroup(g)] == [records[i] for i in (0, 2, 3, 1, 4, 5)]
    assert ungroup(records[0]) == [records[0]]
    chunks = group_expressions(records, max_per_group=2)
    assert [(g["video_id"], g["exp_ids"]) for g in chunks] == [
        ("v1", ["0", "1"]),
        ("v1", ["2"]),
        ("v2", ["0", "1"]),
        ("v1", ["3"]),
    ]
    assert group_expressions(records, max_per_group=1) == records
    with pytest.raises(ValueError, match=">= 0"):
        group_expressions(records, max_per_group=-1)
    broken = dict(groups[0], exp_ids=["0"])
    with pytest.raises(ValueError, match="3 expressions, 1 exp_ids"):
        ungroup(broken)


def test_a2d_records_group_by_video_and_annotated_frame():
    def a2d(vid, frame, inst):
        return {
            "video_id": vid,
            "exp_id": str(inst),
            "expression": f"actor {inst}",
            "video_file": f"/a2d/{vid}.mp4",
            "annotated_frame": frame - 1,
            "frame_idx": frame,
            "instance_id": inst,
            "image_id": f"v_{vid}_f_{frame}_i_{inst}",
            "obj_ids": [inst],
            "annotations": {"type": "a2d_h5", "file": f"/a2d/{vid}/{frame:05d}.h5"},
        }

    records = [a2d("A", 10, 0), a2d("A", 10, 1), a2d("A", 20, 0), a2d("A", 20, 1), a2d("B", 10, 0)]
    groups = group_expressions(records)
    assert [(g["video_id"], g["annotated_frame"], g["exp_ids"]) for g in groups] == [
        ("A", 9, ["0", "1"]),
        ("A", 19, ["0", "1"]),
        ("B", 9, ["0"]),
    ]
    assert [p["image_id"] for p in groups[1]["per_expression"]] == ["v_A_f_20_i_0", "v_A_f_20_i_1"]
    assert [r for g in groups for r in ungroup(g)] == records


def test_a2d_training_refuses_groups():
    group = {
        "video_id": "A",
        "expressions": ["actor 0", "actor 1"],
        "exp_ids": ["0", "1"],
        "per_expression": [],
    }
    with pytest.raises(ValueError, match="A.*DATALOADER.EXPRESSIONS_PER_CLIP must be 1"):
        A2DMapper(_cfg(), is_train=True)(group)


def test_all_object_targets_add_the_visible_other_objects(tmp_path):
    """INPUT.ALL_OBJECT_TARGETS: the referred object first (``referred_idx`` 0), then each other object that
    the (flipped or not) clip shows, with the same masks and boxes as if it were referred; the same random
    draws as without the option, so the referred trajectory equals the plain mapper's."""
    records, index = _two_object_video(tmp_path)
    index[:, 13:15, 20:23] = 255  # DAVIS's void label is not an object
    for t, name in enumerate(records[0]["frame_names"]):
        png = Image.fromarray(index[t])
        png.putpalette(davis_palette())
        png.save(tmp_path / "train" / "Annotations" / "vid0000009" / f"{name}.png")
    plain = RefVOSMapper(_cfg(SAMPLING_FRAME_NUM=2, FLIP_PROB=0.5), is_train=True)
    full = RefVOSMapper(_cfg(SAMPLING_FRAME_NUM=2, FLIP_PROB=0.5, ALL_OBJECT_TARGETS=True), is_train=True)
    seen, compared = set(), 0
    for seed in range(12):
        for record, other_id in ((records[0], 2), (records[1], 1)):
            np.random.seed(seed)
            single = plain(record)
            np.random.seed(seed)
            out = full(record)
            t = out["targets"]
            assert out["frame_indices"] == single["frame_indices"] and t["referred_idx"] == 0
            for k in ("masks", "boxes", "is_visible"):
                assert torch.equal(t[k][:, 0], single["targets"][k])
            shows_other = bool((index[out["frame_indices"]] == other_id).any())
            assert t["masks"].shape[1] == 1 + shows_other
            if shows_other:  # the other object as the plain mapper gives it when it is the referred one
                np.random.seed(seed)
                as_referred = plain(dict(record, obj_ids=[other_id]))
                if as_referred["frame_indices"] == out["frame_indices"]:
                    for k in ("masks", "boxes", "is_visible"):
                        assert torch.equal(t[k][:, 1], as_referred["targets"][k])
                    compared += 1
                seen.add(other_id)
    assert seen == {1, 2} and compared >= 3


def test_all_object_targets_need_palette_pngs():
    from soc.data.io import read_other_object_masks

    record = {"video_id": "v", "exp_id": "0", "obj_ids": [1], "annotations": {"type": "a2d_h5", "file": "x"}}
    with pytest.raises(DataError, match="v/0.*palette PNGs only.*a2d_h5.*INPUT.ALL_OBJECT_TARGETS"):
        read_other_object_masks(record, [0])


def test_read_other_object_masks_hand_made(tmp_path):
    """Ids 3 and 7 besides the referred 5, in id order; 0 and 255 are not objects; only the frames asked."""
    from soc.data.io import read_other_object_masks

    maps = np.zeros((3, 4, 6), dtype=np.uint8)
    maps[0, 0, 0], maps[0, 1, 1], maps[0, 2, 2], maps[0, 3, 3] = 5, 7, 255, 9
    maps[1, 0, :2], maps[1, 3, 5] = 3, 7
    maps[2, 2, 2] = 9
    files = []
    for i, m in enumerate(maps):
        png = Image.fromarray(m)
        png.putpalette(davis_palette())
        files.append(str(tmp_path / f"{i}.png"))
        png.save(files[-1])
    record = {"obj_ids": [5], "annotations": {"type": "png", "files": files}, "height": 4, "width": 6}
    got = read_other_object_masks(record, [1, 0])
    assert got.shape == (3, 2, 4, 6) and got.dtype == bool
    assert [int(got[i].sum()) for i in range(3)] == [2, 2, 1]  # ids 3, 7, 9
    assert got[0, 0, 0, :2].all() and got[1, 0, 3, 5] and got[1, 1, 1, 1] and got[2, 1, 3, 3]
    with pytest.raises(DataError, match="1.png is \\(2, 2\\)"):
        Image.fromarray(np.zeros((2, 2), dtype=np.uint8)).save(files[1])
        read_other_object_masks(record, [0, 1])
