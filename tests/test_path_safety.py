"""Names from data files never lead outside their folders: every loader rejects unsafe video ids, expression
ids and frame names with a DataError naming the file and the key; every writer (submission PNGs and zip,
Ref-DAVIS maps, SynthRVOS) refuses them with a ValueError. Hostile files and records are written by hand
under a temp dir, and the whole temp tree is compared before and after."""

import builtins
import json
import os
import re

import numpy as np
import pytest

from soc.data import (
    DataError,
    load_a2d_sentences,
    load_jhmdb_sentences,
    load_ref_davis17,
    load_ref_ytvos,
    load_refcoco,
)
from soc.data.synthetic.videos import draw_video
from soc.data.synthetic.writers import WRITERS
from soc.evaluation import RefDAVISEvaluator, RefVOSEvaluator
from soc.evaluation.folder_eval import evaluate_folders
from soc.evaluation.ytvos_submission import write_expression_masks, zip_submission

SEP, DOTS, NUL = "contains a path separator", "is '..'", "contains a NUL or control character"


def tree(root):
    """Every file and folder under ``root`` (links not followed) -> (size, mtime_ns)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, name))
            out[os.path.join(dirpath, name)] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture
def space(tmp_path, monkeypatch):
    """``data`` (the dataset root), ``outside`` (a folder next to it holding a frame and a mask that a
    hostile absolute id would reach) and the list of paths passed to ``open`` during the test."""
    data, outside = tmp_path / "data", tmp_path / "outside"
    data.mkdir()
    (outside / "vid").mkdir(parents=True)
    (outside / "vid" / "00000.jpg").write_bytes(b"secret")
    (outside / "vid" / "00000.png").write_bytes(b"secret")
    opened = []
    real_open = builtins.open

    def recording_open(file, *args, **kwargs):
        opened.append(os.fspath(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", recording_open)
    return data, outside, opened


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f)


def expect_data_error(space, load, source, key, name, reason):
    """``load()`` raises DataError "<source>: <key> '<name>': <reason>", writes nothing, reads under data."""
    data, _, opened = space
    before = tree(data.parent)
    with pytest.raises(DataError, match=re.escape(f"{source}: {key} {name!r}: {reason}")):
        load()
    assert tree(data.parent) == before
    assert opened and all(p.startswith(str(data) + os.sep) for p in opened), opened


# --------------------------------------------------------------------------------------------- loaders
GOOD_VIDEO = {"frames": ["00000"], "expressions": {"0": {"exp": "a cat", "obj_id": "1"}}}


def _hostile_videos(case, outside):
    """(meta_expressions ``videos``, key, name, reason) for one hostile Ref-YouTube-VOS case."""
    if case == "dotdot_video":
        return {"../x": GOOD_VIDEO}, "video id", "../x", SEP
    if case == "absolute_video":
        vid = str(outside / "vid")
        return {vid: GOOD_VIDEO}, "video id", vid, SEP
    if case == "dotdot_frame":
        return {"v1": dict(GOOD_VIDEO, frames=["../00000"])}, "video v1: frame name", "../00000", SEP
    expressions = {"0\x00": {"exp": "a cat", "obj_id": "1"}}  # case "nul_expression"
    return {"v1": dict(GOOD_VIDEO, expressions=expressions)}, "video v1: expression id", "0\x00", NUL


@pytest.mark.parametrize("case", ["dotdot_video", "absolute_video", "dotdot_frame", "nul_expression"])
@pytest.mark.parametrize("dataset", ["ref_ytvos", "ref_davis_converted"])
def test_ytvos_layout_rejects_unsafe_names(space, case, dataset):
    data, outside, _ = space
    split = "train" if dataset == "ref_ytvos" else "valid"
    videos, key, name, reason = _hostile_videos(case, outside)
    meta = data / "meta_expressions" / split / "meta_expressions.json"
    write_json(meta, {"videos": {"v0": GOOD_VIDEO, **videos}})
    (data / split / "Annotations").mkdir(parents=True)
    load = load_ref_ytvos if dataset == "ref_ytvos" else load_ref_davis17
    expect_data_error(space, lambda: load(str(data), split), meta, key, name, reason)


@pytest.mark.parametrize("seq", ["../x", "/abs/x"])
def test_ref_davis_raw_rejects_unsafe_sequence(space, seq):
    data = space[0]
    set_file = data / "DAVIS" / "ImageSets" / "2017" / "val.txt"
    set_file.parent.mkdir(parents=True)
    set_file.write_text(f"bear\n{seq}\n")
    expect_data_error(space, lambda: load_ref_davis17(str(data)), set_file, "sequence", seq, SEP)


def test_a2d_video_list_rejects_unsafe_video(space):
    data = space[0]
    videoset = data / "Release" / "videoset.csv"
    videoset.parent.mkdir(parents=True)
    videoset.write_text("aaaaaaaaaaa,11,0,1,320,480,24,3,0\n../x,11,0,1,320,480,24,3,0\n")
    expect_data_error(
        space, lambda: load_a2d_sentences(str(data), "train"), f"{videoset}:2", "video id", "../x", SEP
    )


@pytest.mark.parametrize("vid, reason", [("/abs/x", SEP), ("v\x00", NUL)])
def test_a2d_sample_cache_rejects_unsafe_video(space, vid, reason):
    data = space[0]
    cache = data / "a2d_sentences_single_frame_train_annotations.json"
    write_json(cache, [["a cat", "aaaaaaaaaaa", 1, 0], ["a dog", vid, 1, 0]])
    expect_data_error(space, lambda: load_a2d_sentences(str(data), "train"), cache, "video id", vid, reason)


JHMDB_FRAME = "./jhmdb_sentences/Rename_Images/walk/v1/00001.png"
JHMDB_MASK = "./jhmdb_sentences/puppet_mask/walk/v1/puppet_mask.mat"


@pytest.mark.parametrize(
    "row, key, name, reason",
    [
        (["../x", JHMDB_FRAME, JHMDB_MASK], "video id", "../x", SEP),
        (["v\x01", JHMDB_FRAME, JHMDB_MASK], "video id", "v\x01", NUL),
        (
            ["v1", "./jhmdb_sentences/Rename_Images/walk/../../../outside/vid/00001.png", JHMDB_MASK],
            "video v1: frame path './jhmdb_sentences/Rename_Images/walk/../../../outside/vid/00001.png': "
            "component",
            "..",
            DOTS,
        ),
        (
            ["v1", JHMDB_FRAME, "/jhmdb_sentences/puppet_mask/walk/..\\..\\..\\puppet_mask.mat"],
            "video v1: mask path '/jhmdb_sentences/puppet_mask/walk/..\\\\..\\\\..\\\\puppet_mask.mat': "
            "component",
            "..",
            DOTS,
        ),
    ],
)
def test_jhmdb_sample_list_rejects_unsafe_names(space, row, key, name, reason):
    data = space[0]
    samples = data / "jhmdb_sentences_samples_metadata.json"
    write_json(samples, [["v0", JHMDB_FRAME, JHMDB_MASK, 3, "a man"], row + [3, "a man"]])
    expect_data_error(space, lambda: load_jhmdb_sentences(str(data)), samples, key, name, reason)


def test_jhmdb_sentences_file_rejects_unsafe_video(space):
    data = space[0]
    (data / "Rename_Images").mkdir()
    text = data / "jhmdb_annotation.txt"
    text.write_text("video_id,query\n../x,a man walks\n")
    expect_data_error(space, lambda: load_jhmdb_sentences(str(data)), f"{text}:2", "video id", "../x", SEP)


@pytest.mark.parametrize(
    "image, key, name",
    [
        ({"file_name": "../x.jpg"}, "image id 1: file_name", "../x.jpg"),
        ({"file_name": "/abs/x.jpg"}, "image id 1: file_name", "/abs/x.jpg"),
        ({"original_id": "../v"}, "original_id", "../v"),
    ],
)
def test_refcoco_rejects_unsafe_names(space, image, key, name):
    data = space[0]
    path = data / "refcoco" / "instances_refcoco_val.json"
    img = {"id": 1, "file_name": "x.jpg", "height": 4, "width": 4, "caption": "a cat", "original_id": 7}
    ann = {"id": 3, "image_id": 1, "segmentation": [[0, 0, 2, 0, 2, 2]], "iscrowd": 0, "bbox": [0, 0, 2, 2]}
    write_json(path, {"images": [dict(img, **image)], "annotations": [ann]})
    expect_data_error(space, lambda: load_refcoco(str(data), "refcoco", "val"), path, key, name, SEP)


@pytest.mark.parametrize("case", ["dotdot_video", "absolute_video", "nul_expression"])
def test_eval_jf_meta_rejects_unsafe_names(space, case):
    data, outside, _ = space
    videos, key, name, reason = _hostile_videos(case, outside)
    meta = data / "meta_expressions.json"
    write_json(meta, {"videos": videos})
    (data / "gt" / "v1").mkdir(parents=True)
    (data / "pred").mkdir()
    load = lambda: evaluate_folders(str(data / "pred"), str(data / "gt"), str(meta))  # noqa: E731
    expect_data_error(space, load, meta, key, name, reason)


# --------------------------------------------------------------------------------------------- writers
def _hostile_record(case, tmp_path):
    """An evaluator input (3 frames, 4x5) with one hostile id or frame name (none for ``"none"``)."""
    record = {"video_id": "v1", "exp_id": "0", "frame_names": ["00000", "00005", "00010"]}
    record.update(height=4, width=5, obj_ids=[], annotations=None)
    if case == "dotdot_video":
        record["video_id"] = "../evil"
    elif case == "absolute_video":
        record["video_id"] = str(tmp_path / "outside" / "abs")
    elif case == "dotdot_exp":
        record["exp_id"] = "../../evil"
    elif case == "nul_exp":
        record["exp_id"] = "0\x00"
    elif case == "dotdot_frame":
        record["frame_names"][1] = "../../../../evil"
    return record


WRITER_CASES = ["dotdot_video", "absolute_video", "dotdot_exp", "nul_exp", "dotdot_frame"]


def _masks():
    m = np.zeros((3, 4, 5), bool)
    m[:, 1:3, 1:4] = True
    return m


@pytest.mark.parametrize("case", WRITER_CASES)
def test_submission_writer_refuses_unsafe_names(tmp_path, case):
    rec = _hostile_record(case, tmp_path)
    out = tmp_path / "out"
    before = tree(tmp_path)
    with pytest.raises(ValueError, match="refusing to write"):
        write_expression_masks(str(out), rec["video_id"], rec["exp_id"], rec["frame_names"], _masks())
    assert tree(tmp_path) == before


@pytest.mark.parametrize("case", WRITER_CASES)
def test_refvos_evaluator_refuses_unsafe_names(tmp_path, case):
    out = tmp_path / "out"
    ev = RefVOSEvaluator(output_dir=str(out), distributed=False)
    good = _hostile_record("none", tmp_path)
    ev.process([good], [{"pred_masks": _masks()}])
    written = tree(tmp_path)
    assert sorted(os.path.relpath(p, out) for p in written if p.endswith(".png")) == [
        os.path.join("Annotations", "v1", "0", f"{n}.png") for n in good["frame_names"]
    ]
    with pytest.raises(ValueError, match="refusing to write"):
        ev.process([_hostile_record(case, tmp_path)], [{"pred_masks": _masks()}])
    assert tree(tmp_path) == written


@pytest.mark.parametrize("seq", ["../evil", "ABSOLUTE", "a\nb"])
def test_ref_davis_writer_refuses_unsafe_sequence(tmp_path, seq):
    seq = str(tmp_path / "outside" / "abs") if seq == "ABSOLUTE" else seq
    rec = dict(_hostile_record("none", tmp_path), video_id=seq)
    ev = RefDAVISEvaluator(
        output_dir=str(tmp_path / "out"), expected_expressions={(0, seq): {"0"}}, distributed=False
    )
    before = tree(tmp_path)
    with pytest.raises(ValueError, match="refusing to write"):
        ev.process([rec], [{"pred_masks": _masks(), "mask_probs": _masks().astype(np.float32)}])
    assert tree(tmp_path) == before


def test_zip_refuses_links_leaving_the_root(tmp_path):
    out = tmp_path / "out"
    write_expression_masks(str(out), "v1", "0", ["00000", "00005", "00010"], _masks())
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the archive")
    (out / "Annotations" / "v1" / "0" / "00015.png").symlink_to(secret)
    before = tree(tmp_path)
    with pytest.raises(ValueError, match="resolves outside"):
        zip_submission(str(out))
    assert tree(tmp_path) == before  # no archive, no temporary file
    os.remove(out / "Annotations" / "v1" / "0" / "00015.png")
    assert os.path.isfile(zip_submission(str(out)))


@pytest.mark.parametrize("fmt", sorted(WRITERS))
@pytest.mark.parametrize("vid", ["../evil", "ABSOLUTE"])
def test_synthrvos_writers_refuse_unsafe_video_ids(tmp_path, fmt, vid):
    root = tmp_path / "root"
    vid = str(tmp_path / "abs") if vid == "ABSOLUTE" else vid
    writer = WRITERS[fmt](str(root), WRITERS[fmt].default_split, seed=0)
    rng = np.random.default_rng(0)
    video = draw_video(rng, 24, 32, 6, temporal=False, style=fmt, annotated=writer.annotated_frames(6))
    item = writer.describe(rng, 0, video, extra=False)
    item["vid"] = vid
    before = tree(tmp_path)
    with pytest.raises(ValueError, match="refusing to write"):
        writer.add(item)
    assert tree(tmp_path) == before
