"""MeViS / ReVOS loader (soc/data/datasets/mevis.py) and the SynthRVOS MeViS writer: round trip through the
real registration and mappers, determinism, text normalisation, the unsorted-frames decision and the bad files
that must stop with an error naming the file and the key."""

import json
import os
import uuid

import numpy as np
import pytest
from detectron2.data import DatasetCatalog

from soc.data.datasets.mevis import load_mevis, mevis_files, register_mevis, register_revos, revos_files
from soc.data.io import DataError, normalize_expression, read_masks
from soc.data.mappers import RefVOSMapper
from soc.data.synthetic import generate
from soc.data.synthetic.__main__ import main as cli_main
from soc.data.synthetic.files import tree_files, write_jpeg
from soc.data.synthetic.mevis_writer import encode_rle


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("mevis"))
    truth = {
        split: generate(root, "mevis", 3, seed, frames=(4, 6), size=(48, 80), split=split, progress=False)
        for seed, split in ((0, "train"), (1, "valid_u"), (2, "valid"))
    }
    return root, truth


def _register(root, split):
    name = f"test_mevis_{split}_{uuid.uuid4().hex[:8]}"
    register_mevis(name, root, split)
    return name


def _union(video, obj_ids):
    shape = next(iter(video["masks"].values())).shape
    out = np.zeros(shape, bool)
    for o in obj_ids:
        out |= video["masks"][o]
    return out


@pytest.mark.parametrize("split", ["train", "valid_u"])
def test_round_trip_through_the_real_mapper(synth, split):
    root, truth = synth
    records = DatasetCatalog.get(_register(root, split))
    videos = truth[split]["videos"]
    assert len(records) == sum(len(v["expressions"]) for v in videos.values())
    mapper = RefVOSMapper(is_train=False, augmentations=[], sampling_frame_num=3)
    families = set()
    for record in records:
        video = videos[record["video_id"]]
        exp = video["expressions"][record["exp_id"]]
        families.add(exp["family"])
        mapped = mapper(record)
        assert mapped["expression"] == normalize_expression(exp["exp"])
        assert mapped["frame_names"] == video["frame_names"]
        assert record["obj_ids"] == exp["obj_id"]
        np.testing.assert_array_equal(read_masks(mapped), _union(video, exp["obj_id"]))
        assert mapped["frames"].shape[0] == len(video["frame_names"])
    assert {"multi_object", "no_target"} <= families  # both MeViS kinds are exercised


def test_training_mapper_gives_union_and_empty_targets(synth):
    root, truth = synth
    records = DatasetCatalog.get(_register(root, "train"))
    mapper = RefVOSMapper(is_train=True, augmentations=[], sampling_frame_num=3)
    videos = truth["train"]["videos"]
    kinds = set()
    for record in records:
        exp = videos[record["video_id"]]["expressions"][record["exp_id"]]
        if exp["family"] not in ("multi_object", "no_target"):
            continue
        kinds.add(exp["family"])
        out = mapper(record)
        gt = _union(videos[record["video_id"]], exp["obj_id"])[out["frame_indices"]]
        np.testing.assert_array_equal(out["targets"]["masks"].numpy(), gt)
        if exp["family"] == "no_target":
            assert not out["targets"]["is_visible"].any() and not out["targets"]["boxes"].any()
        else:
            assert out["targets"]["is_visible"].any()
    assert kinds == {"multi_object", "no_target"}


def test_valid_split_has_no_ground_truth(synth):
    root, _ = synth
    assert not os.path.exists(mevis_files(root, "valid")[2])
    records = DatasetCatalog.get(_register(root, "valid"))
    assert records and all(r["annotations"] is None and r["obj_ids"] == [] for r in records)


def test_generation_is_byte_identical_per_seed(tmp_path):
    def files(out):
        generate(str(out), "mevis", 2, 5, frames=(3, 4), size=(32, 48), split="valid_u", progress=False)
        return {f: open(os.path.join(out, f), "rb").read() for f in tree_files(str(out))}

    assert files(tmp_path / "a") == files(tmp_path / "b")


def test_command_line_writes_the_mevis_layout(tmp_path):
    out = tmp_path / "m"
    argv = ["--out", str(out), "--format", "mevis", "--videos", "1", "--seed", "3", "--frames", "3:3"]
    assert cli_main(argv + ["--size", "32x48", "--split", "valid_u"]) == 0
    assert sorted(os.listdir(out / "valid_u")) == [
        "JPEGImages",
        "mask_dict.json",
        "meta_expressions.json",
        "temporal_expressions.json",
    ]


# ------------------------------------------------------------------------------------- hand-made trees
def _tree(root, frames=("00000", "00001"), exps=None, masks=None, jpegs=None, size=(6, 8)):
    """A one-video MeViS split ``root/train`` whose expressions and mask_dict are given (defaults: one
    expression on anno 7, present in the first frame only)."""
    split = os.path.join(root, "train")
    for f in jpegs if jpegs is not None else frames:
        write_jpeg(os.path.join(split, "JPEGImages", "vid", f + ".jpg"), np.zeros(size + (3,), np.uint8))
    m = np.zeros(size, bool)
    m[1:3, 2:5] = True
    exps = exps or {"0": {"exp": "  The  Dog\tMOVING ", "obj_id": [0], "anno_id": [7]}}
    masks = masks if masks is not None else {"7": [encode_rle(m), None]}
    with open(os.path.join(split, "meta_expressions.json"), "w") as f:
        json.dump({"videos": {"vid": {"frames": list(frames), "expressions": exps}}}, f)
    with open(os.path.join(split, "mask_dict.json"), "w") as f:
        json.dump(masks, f)
    return mevis_files(str(root), "train")


def test_text_is_normalised_and_masks_decoded(tmp_path):
    (record,) = load_mevis(*_tree(tmp_path))
    assert record["expression"] == "the dog moving"
    assert (record["height"], record["width"]) == (6, 8) and record["anno_ids"] == ["7"]
    masks = read_masks(record)
    assert masks.shape == (2, 6, 8) and masks[0].sum() == 6 and not masks[1].any()


def test_unsorted_frames_are_an_error(tmp_path):
    files = _tree(tmp_path, frames=("00001", "00000"), masks={"7": [None, None]})
    with pytest.raises(DataError, match=r"meta_expressions.json: video vid: 'frames' is not sorted"):
        load_mevis(*files)


@pytest.mark.parametrize(
    "kind, pattern",
    [
        ("anno_missing", r"mask_dict.json: anno_id 9 \(of .*meta_expressions.json: video vid, exp_id 0\)"),
        ("entry_missing", r"mask_dict.json: anno_id 7 has 1 masks for the 2 frames"),
        ("wrong_size", r"mask_dict.json: anno_id 7, frame 00000: RLE size \[5, 8\]"),
        ("not_rle", r"mask_dict.json: anno_id 7, frame 00001: not a COCO RLE"),
        ("jpeg_missing", r"meta_expressions.json: video vid lists frame .*00001.jpg, which does not exist"),
        ("bad_obj_id", r"meta_expressions.json: video vid, exp_id 0: obj_id 'x'"),
    ],
)
def test_bad_files_name_the_file_and_the_key(tmp_path, kind, pattern):
    m = np.zeros((6, 8), bool)
    m[0, 0] = True
    args = {
        "anno_missing": {"exps": {"0": {"exp": "a", "obj_id": [0], "anno_id": [9]}}},
        "entry_missing": {"masks": {"7": [None]}},
        "wrong_size": {"masks": {"7": [encode_rle(np.ones((5, 8), bool)), None]}},
        "not_rle": {"masks": {"7": [None, [1, 2]]}},
        "jpeg_missing": {"jpegs": ["00000"]},
        "bad_obj_id": {"exps": {"0": {"exp": "a", "obj_id": ["x"], "anno_id": [7]}}},
    }[kind]
    with pytest.raises(DataError, match=pattern):
        load_mevis(*_tree(tmp_path, **args))


def test_malformed_json_names_the_file(tmp_path):
    meta, images, masks = _tree(tmp_path)
    with open(masks, "w") as f:
        f.write('{"7": [null,')
    with pytest.raises(DataError, match=r"cannot parse .*mask_dict.json"):
        load_mevis(meta, images, masks)
    with open(meta, "w") as f:
        f.write("{")
    with pytest.raises(DataError, match=r"cannot parse .*meta_expressions.json"):
        load_mevis(meta, images, masks)


def test_revos_layout_and_type_id(tmp_path):
    m = np.zeros((6, 8), bool)
    m[2:4, 2:4] = True
    write_jpeg(str(tmp_path / "JPEGImages" / "v1" / "00000.jpg"), np.zeros((6, 8, 3), np.uint8))
    exps = {
        "0": {"exp": "The cat", "obj_id": [1], "anno_id": ["3"], "type_id": 0},
        "1": {"exp": "what the dog could chase", "obj_id": [1], "anno_id": ["3"], "type_id": 1},
    }
    json.dump(
        {"videos": {"v1": {"frames": ["00000"], "expressions": exps}}},
        open(revos_files(str(tmp_path), "valid")[0], "w"),
    )
    json.dump({"3": [encode_rle(m)]}, open(tmp_path / "mask_dict.json", "w"))
    name = f"test_revos_{uuid.uuid4().hex[:8]}"
    register_revos(name, str(tmp_path), "valid")
    records = DatasetCatalog.get(name)
    assert [r["type_id"] for r in records] == [0, 1]
    np.testing.assert_array_equal(read_masks(records[1])[0], m)
