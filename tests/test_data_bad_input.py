"""Bad input gives an error that names the file (cheap metadata checks at load time, decoding errors at map
time), or is skipped with a warning where the reference implementations skip it; never a wrong sample."""

import json
import logging
import os
import re
import shutil

import numpy as np
import pytest
from detectron2.config import get_cfg
from PIL import Image

from soc.config import add_soc_config
from soc.data import (
    A2DMapper,
    DataError,
    RefVOSMapper,
    davis_palette,
    load_a2d_sentences,
    load_jhmdb_sentences,
    load_ref_ytvos,
    read_image,
    read_masks,
)
from soc.data.synthetic import generate
from soc.evaluation.ref_davis_evaluator import read_index_maps
from soc.evaluation.refvos_evaluator import read_referred_masks


def _cfg():
    cfg = get_cfg()
    add_soc_config(cfg)
    cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN = (24,), 1000
    cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST = 24, 1000
    cfg.INPUT.SAMPLING_FRAME_NUM = 3
    return cfg


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    base = tmp_path_factory.mktemp("bad")
    kw = dict(frames=(4, 5), progress=False)
    generate(str(base / "ytvos"), "ytvos", 2, 0, size=(24, 32), **kw)
    generate(str(base / "a2d"), "a2d", 2, 0, size=(24, 32), split="train", frames=(6, 8), progress=False)
    generate(str(base / "jhmdb"), "jhmdb", 2, 0, size=(24, 32), **kw)
    return base


@pytest.fixture
def data(sources, tmp_path):
    shutil.copytree(sources, tmp_path / "d")
    return tmp_path / "d"


def _edit_json(path, fn):
    obj = json.load(open(path))
    fn(obj)
    json.dump(obj, open(path, "w"))


# ------------------------------------------------------------------------------------------ Ref-YouTube-VOS
def test_missing_frame(data):
    r = load_ref_ytvos(str(data / "ytvos"), "train")[0]  # loading checks no frame file: still fine
    missing = r["file_names"][1]
    os.remove(missing)
    with pytest.raises(FileNotFoundError, match=missing):
        RefVOSMapper(_cfg(), is_train=False)(r)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_jpeg(data, damage):
    r = load_ref_ytvos(str(data / "ytvos"), "train")[0]
    path = r["file_names"][0]
    raw = open(path, "rb").read()
    open(path, "wb").write(b"not a jpeg at all" if damage == "garbage" else raw[: len(raw) // 2])
    with pytest.raises(DataError, match=path):
        RefVOSMapper(_cfg(), is_train=False)(r)


def test_mask_of_another_size(data):
    r = load_ref_ytvos(str(data / "ytvos"), "train")[0]
    for png_path in r["annotations"]["files"]:
        index = np.array(Image.open(png_path))
        png = Image.fromarray(np.pad(index, ((0, 2), (0, 0))))
        png.putpalette(davis_palette())
        png.save(png_path)
    with pytest.raises(DataError, match=r"mask .*\.png is \(26, 32\) but frame .*\.jpg is \(24, 32\)"):
        RefVOSMapper(_cfg(), is_train=True)(r)


def _pad_png(path):
    """Two rows more at the bottom: (24, 32) -> (26, 32)."""
    png = Image.fromarray(np.pad(np.array(Image.open(path)), ((0, 2), (0, 0))))
    png.putpalette(davis_palette())
    png.save(path)


def test_one_mask_of_another_size_is_named(data):
    r = load_ref_ytvos(str(data / "ytvos"), "train")[0]
    files = r["annotations"]["files"]
    _pad_png(files[2])
    first, odd = re.escape(files[0]), re.escape(files[2])
    with pytest.raises(
        DataError, match=rf"annotation {odd} is \(26, 32\) \(H, W\), expected \(24, 32\) as {first}"
    ):
        read_masks(r)  # no size in the record: the first PNG sets it
    with pytest.raises(
        DataError, match=rf"annotation {odd} is \(26, 32\) \(H, W\), expected \(24, 32\) as {first}"
    ):
        read_index_maps(r)  # the Ref-DAVIS evaluator's GT maps
    _pad_png(files[2])
    _pad_png(files[0])  # now the first PNG is the odd one: the frame size read by the mapper decides
    inp = RefVOSMapper(_cfg(), is_train=False)(r)
    with pytest.raises(
        DataError, match=rf"annotation {first} is \(26, 32\) \(H, W\), expected \(24, 32\) \(the frame size\)"
    ):
        read_referred_masks(inp)  # the evaluators' GT reader


def test_16bit_grey_frames_are_scaled_not_clipped(data):
    r = load_jhmdb_sentences(str(data / "jhmdb"))[0]
    levels = np.array([0, 128, 129, 1000, 32896, 65535], np.uint16)
    scaled = np.array([0, 0, 1, 4, 128, 255], np.uint8)  # round(v / 257); clipping gives 255 from 1000 on
    grey = np.resize(levels, (24, 32))
    for path in r["file_names"]:
        Image.fromarray(grey).save(path)  # 16-bit greyscale PNG
    assert Image.open(r["file_names"][0]).mode.startswith("I")
    np.testing.assert_array_equal(
        read_image(r["file_names"][0]), np.resize(scaled, (24, 32))[..., None].repeat(3, 2)
    )
    out = A2DMapper(_cfg(), is_train=False)(r)  # the test resize keeps 24 x 32
    assert out["frames"].shape == (8, 3, 24, 32)
    for frame in out["frames"].numpy():
        np.testing.assert_array_equal(frame, np.broadcast_to(np.resize(scaled, (24, 32)), (3, 24, 32)))


def test_frames_of_different_sizes(data):
    r = load_ref_ytvos(str(data / "ytvos"), "train")[0]
    Image.new("RGB", (30, 24)).save(r["file_names"][1], format="JPEG")
    odd, first = re.escape(r["file_names"][1]), re.escape(r["file_names"][0])
    with pytest.raises(
        DataError, match=rf"frame {odd} is \(24, 30\) \(H, W\), expected \(24, 32\) as {first}"
    ):
        RefVOSMapper(_cfg(), is_train=False)(r)


def test_expression_names_unknown_object(data):
    root = data / "ytvos"
    meta = root / "meta_expressions/train/meta_expressions.json"
    vid = next(iter(json.load(open(meta))["videos"]))
    _edit_json(
        meta, lambda m: m["videos"][vid]["expressions"].__setitem__("0", {"exp": "a ghost", "obj_id": "9"})
    )
    with pytest.raises(
        DataError, match=r"meta_expressions.json: video \w+, exp_id 0 refers to object 9.*meta.json"
    ):
        load_ref_ytvos(str(root), "train")
    # listed in meta.json, but in no mask: found when the mapper decodes the masks
    _edit_json(
        root / "train/meta.json",
        lambda m: m["videos"][vid]["objects"].__setitem__("9", {"category": "ghost", "frames": []}),
    )
    r = [x for x in load_ref_ytvos(str(root), "train") if x["video_id"] == vid and x["exp_id"] == "0"][0]
    with pytest.raises(
        DataError, match=rf"refers to object\(s\) \[9\], which appear in no mask under .*Annotations/{vid}"
    ):
        RefVOSMapper(_cfg(), is_train=True)(r)


def test_empty_expression(data):
    meta = data / "ytvos/meta_expressions/train/meta_expressions.json"
    vid = next(iter(json.load(open(meta))["videos"]))
    _edit_json(meta, lambda m: m["videos"][vid]["expressions"]["0"].__setitem__("exp", "   "))
    with pytest.raises(
        DataError, match=rf"meta_expressions.json: empty expression for video {vid}, exp_id 0"
    ):
        load_ref_ytvos(str(data / "ytvos"), "train")


def test_malformed_json_and_missing_meta(data):
    meta = data / "ytvos/meta_expressions/train/meta_expressions.json"
    meta.write_text("{not json")
    with pytest.raises(DataError, match="meta_expressions.json"):
        load_ref_ytvos(str(data / "ytvos"), "train")
    meta.unlink()
    with pytest.raises(FileNotFoundError, match="meta_expressions.json"):
        load_ref_ytvos(str(data / "ytvos"), "train")


# ------------------------------------------------------------------------------------------------ A2D
def _a2d_record(data):
    return load_a2d_sentences(str(data / "a2d"), "train")[0]


def test_unreadable_h5(data):
    r = _a2d_record(data)
    h5 = r["annotations"]["file"]
    open(h5, "wb").write(b"\x00" * 64)
    with pytest.raises(DataError, match=h5):  # at load: the scan reads the h5 instance lists
        load_a2d_sentences(str(data / "a2d"), "train")
    cache = data / "a2d/a2d_sentences_single_frame_train_annotations.json"
    cache.write_text(json.dumps([[r["expression"], r["video_id"], r["frame_idx"], r["instance_id"]]]))
    (r2,) = load_a2d_sentences(str(data / "a2d"), "train")  # with a cache, no h5 is opened at load
    with pytest.raises(DataError, match=h5):
        A2DMapper(_cfg(), is_train=True)(r2)


def test_a2d_instance_not_in_frame(data):
    r = _a2d_record(data)
    cache = data / "a2d/a2d_sentences_single_frame_train_annotations.json"
    cache.write_text(json.dumps([["x", r["video_id"], r["frame_idx"], 7]]))
    (bad,) = load_a2d_sentences(str(data / "a2d"), "train")
    with pytest.raises(DataError, match=r"\.h5: instance 7 is not annotated in this frame"):
        A2DMapper(_cfg(), is_train=True)(bad)


def test_a2d_instance_in_no_h5_is_skipped_with_warning(data, caplog):
    base = load_a2d_sentences(str(data / "a2d"), "train")
    vid = base[0]["video_id"]
    with open(data / "a2d/text_annotations/a2d_annotation.txt", "a") as f:
        f.write(f"{vid},7,the ghost\n")
    with caplog.at_level(logging.WARNING):
        assert load_a2d_sentences(str(data / "a2d"), "train") == base  # as MTTR: no sample
    assert f"instance 7 of video {vid}" in caplog.text and "a2d_annotation_with_instances" in caplog.text


def test_a2d_empty_sentence(data):
    with open(data / "a2d/text_annotations/a2d_annotation.txt", "a") as f:
        f.write(f"{_a2d_record(data)['video_id']},0, \n")
    with pytest.raises(DataError, match=r"a2d_annotation.txt:\d+: empty sentence"):
        load_a2d_sentences(str(data / "a2d"), "train")


def test_a2d_video_problems(data):
    r = _a2d_record(data)
    short = dict(r, annotated_frame=40, frame_idx=41)
    with pytest.raises(DataError, match=r"annotated frame 41 .* beyond the \d+ frames of .*\.mp4"):
        A2DMapper(_cfg(), is_train=False)(short)
    open(r["video_file"], "wb").write(b"garbage")
    with pytest.raises(DataError, match=r["video_file"]):
        A2DMapper(_cfg(), is_train=False)(r)
    os.remove(r["video_file"])
    with pytest.raises(FileNotFoundError, match=r["video_file"]):
        A2DMapper(_cfg(), is_train=False)(r)


# ---------------------------------------------------------------------------------------------- JHMDB
@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_unreadable_mat(data, damage):
    r = load_jhmdb_sentences(str(data / "jhmdb"))[0]
    mat = r["annotations"]["file"]
    raw = open(mat, "rb").read()
    open(mat, "wb").write(b"MATLAB but not really" if damage == "garbage" else raw[:200])
    with pytest.raises(DataError, match=mat):
        A2DMapper(_cfg(), is_train=True)(r)
    (data / "jhmdb/jhmdb_sentences_samples_metadata.json").unlink()
    if damage == "garbage":
        with pytest.raises(DataError, match=mat):  # drawing samples reads the .mat header at load
            load_jhmdb_sentences(str(data / "jhmdb"))
    else:  # the header survived: load works, decoding the masks fails
        r = [x for x in load_jhmdb_sentences(str(data / "jhmdb")) if x["annotations"]["file"] == mat][0]
        with pytest.raises(DataError, match=mat):
            A2DMapper(_cfg(), is_train=True)(r)


def test_jhmdb_empty_sentence_and_bad_frame(data):
    path = data / "jhmdb/jhmdb_sentences_samples_metadata.json"
    rows = json.load(open(path))
    json.dump([rows[0][:4] + [""]], open(path, "w"))
    with pytest.raises(DataError, match="jhmdb_sentences_samples_metadata.json: empty sentence"):
        load_jhmdb_sentences(str(data / "jhmdb"))
    json.dump(
        [rows[0][:1] + [rows[0][1].replace(rows[0][1][-9:], "00099.png")] + rows[0][2:]], open(path, "w")
    )
    with pytest.raises(DataError, match="frame 99 outside"):
        load_jhmdb_sentences(str(data / "jhmdb"))
