"""Dataset loaders and registration: lazy builtin registration, Ref-YouTube-VOS valid-minus-test, Ref-DAVIS17
raw vs converted layout (and the prepare script), A2D caches and quirks, JHMDB sample lists, RefCOCO files,
palette reading."""

import json
import logging
import os
import runpy
import shutil

import cv2
import numpy as np
import pytest
from detectron2.config import get_cfg
from PIL import Image

import soc.data.datasets.builtin as builtin
from soc.config import add_soc_config
from soc.data import (
    DataError,
    RefVOSMapper,
    davis_palette,
    load_a2d_sentences,
    load_jhmdb_sentences,
    load_ref_davis17,
    load_ref_ytvos,
    load_refcoco,
    read_masks,
    read_palette_png,
)
from soc.data.datasets.ref_davis import read_khoreva_file
from soc.data.synthetic import generate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _script(name):
    return runpy.run_path(os.path.join(REPO, "datasets", name), run_name="prepare")["main"]


def test_builtin_names_and_metadata():
    from detectron2.data import DatasetCatalog, MetadataCatalog

    names = {
        "ref_ytvos_train": "ref_ytvos",
        "ref_ytvos_valid": "ref_ytvos",
        "ref_davis17_val": "ref_davis",
        "a2d_sentences_train": "a2d_sentences",
        "a2d_sentences_test": "a2d_sentences",
        "jhmdb_sentences_test": "jhmdb_sentences",
        "refcoco_train": "refcoco",
        "refcocop_val": "refcoco",
        "refcocog_train": "refcoco",
        "synthrvos_ytvos_train": "ref_ytvos",
        "synthrvos_ytvos_valid": "ref_ytvos",
        "synthrvos_davis_val": "ref_davis",
        "synthrvos_a2d_train": "a2d_sentences",
        "synthrvos_a2d_test": "a2d_sentences",
        "synthrvos_jhmdb_test": "jhmdb_sentences",
        **{f"ref_davis17_val_anno{a}": "ref_davis" for a in range(4)},
    }
    root = os.path.expanduser(os.getenv("SOC_DATASETS", "datasets"))
    for name, etype in names.items():
        assert name in DatasetCatalog.list()
        assert MetadataCatalog.get(name).evaluator_type == etype
    assert MetadataCatalog.get("ref_ytvos_valid").split == "valid"
    assert MetadataCatalog.get("synthrvos_ytvos_valid").root == os.path.join(root, "synthrvos/ytvos")
    assert MetadataCatalog.get("ref_davis17_val_anno2").annotator == 2
    assert MetadataCatalog.get("refcocop_train").dataset == "refcoco+"


def test_builtin_registration_reads_no_file(monkeypatch):
    from detectron2.data import DatasetCatalog, MetadataCatalog

    monkeypatch.setattr(DatasetCatalog, "data", {})  # fresh catalogs for this test
    monkeypatch.setattr(MetadataCatalog, "data", {})

    def forbidden(*args, **kwargs):
        raise AssertionError("a file was touched at registration")

    with monkeypatch.context() as m:
        for target in ("builtins.open", "os.listdir", "os.path.isfile", "os.path.isdir", "os.path.exists"):
            m.setattr(target, forbidden)
        builtin.register_all("/nonexistent-root")
    # incl. Long-RVOS (3 + 1 synthetic), MeViS v1, v2 and synthetic (3 + 3 + 3) and ReVOS (2)
    assert len(DatasetCatalog.list()) == 4 + 10 + 4 + 2 + 4 + 6 + 9 + 2
    assert MetadataCatalog.get("synthrvos_a2d_test").root == "/nonexistent-root/synthrvos/a2d"
    with pytest.raises(FileNotFoundError, match="nonexistent-root/ref-davis"):
        DatasetCatalog.get("ref_davis17_val")  # files are read on .get only


def _meta(path, videos):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    json.dump({"videos": videos}, open(path, "w"))


def test_ref_ytvos_valid_minus_test(tmp_path, caplog):
    exps = {"0": {"exp": "a dog"}, "1": {"exp": "a cat"}}
    _meta(
        tmp_path / "meta_expressions/valid/meta_expressions.json",
        {v: {"expressions": exps, "frames": ["00000", "00005"]} for v in ("aaa", "bbb", "ccc", "ddd")},
    )
    _meta(
        tmp_path / "meta_expressions/test/meta_expressions.json",
        {v: {"expressions": exps, "frames": ["00000"]} for v in ("bbb", "ddd")},
    )
    records = load_ref_ytvos(str(tmp_path), "valid")
    assert [(r["video_id"], r["exp_id"]) for r in records] == [
        ("aaa", "0"),
        ("aaa", "1"),
        ("ccc", "0"),
        ("ccc", "1"),
    ]
    r = records[0]
    assert r["obj_ids"] == [] and r["annotations"] is None and r["frame_names"] == ["00000", "00005"]
    assert r["file_names"][1] == str(tmp_path / "valid/JPEGImages/aaa/00005.jpg")
    assert "temporal" not in r  # real data has no temporal subset
    os.remove(tmp_path / "meta_expressions/test/meta_expressions.json")
    with caplog.at_level(logging.WARNING):
        assert len(load_ref_ytvos(str(tmp_path), "valid")) == 8
    assert "meta_expressions/test" in caplog.text


def test_read_palette_png_gives_indices(tmp_path):
    index = np.array([[0, 1, 2], [3, 255, 1]], dtype=np.uint8)
    png = Image.fromarray(index)
    png.putpalette(davis_palette())
    png.save(tmp_path / "a.png")
    assert np.array_equal(read_palette_png(str(tmp_path / "a.png")), index)
    # the trap the readers avoid: OpenCV grey conversion turns palette colours into luminance
    grey = cv2.imread(str(tmp_path / "a.png"), cv2.IMREAD_GRAYSCALE)
    assert grey[0, 1] == 38 and grey[1, 1] == 220
    Image.fromarray(np.zeros((2, 3, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(DataError, match="rgb.png"):
        read_palette_png(str(tmp_path / "rgb.png"))


@pytest.fixture(scope="module")
def davis(tmp_path_factory):
    root = tmp_path_factory.mktemp("davis")
    return root, generate(str(root), "davis", 2, 4, frames=(3, 5), size=(32, 48), progress=False)


def _key(r):
    return (
        r["video_id"],
        r["exp_id"],
        r["expression"],
        tuple(r["obj_ids"]),
        tuple(r["frame_names"]),
        r["annotator"],
    )


def test_ref_davis_raw_layout_and_prepare(davis, tmp_path):
    root, truth = davis
    converted = load_ref_davis17(str(root))
    raw = tmp_path / "raw"
    for sub in ("DAVIS", "davis_text_annotations"):
        shutil.copytree(root / sub, raw / sub)
    from_raw = load_ref_davis17(str(raw))  # no converted layout: reads the downloads directly
    assert [_key(r) for r in from_raw] == [_key(r) for r in converted]
    assert from_raw[0]["file_names"][0] == str(
        raw / "DAVIS/JPEGImages/480p" / from_raw[0]["video_id"] / "00000.jpg"
    )
    assert np.array_equal(read_masks(from_raw[0]), read_masks(converted[0]))
    assert _script("prepare_ref_davis.py")(["--root", str(raw)]) == 0
    assert json.load(open(raw / "meta_expressions/valid/meta_expressions.json")) == json.load(
        open(root / "meta_expressions/valid/meta_expressions.json")
    )
    assert os.path.islink(raw / "valid/JPEGImages" / from_raw[0]["video_id"])
    prepared = load_ref_davis17(str(raw))
    assert [_key(r) for r in prepared] == [_key(r) for r in converted]
    assert prepared[0]["file_names"][0].startswith(str(raw / "valid/JPEGImages"))


def test_khoreva_parsing(tmp_path, caplog):
    p = tmp_path / "annot2.txt"
    p.write_bytes(
        'clasic-car 2 "the caf\u00e9 car"\ndog-scale 1 "a  dog"\n\nclasic-car 1 "first"\n'.encode("latin-1")
    )
    parsed = read_khoreva_file(str(p), "latin-1")
    assert parsed == {
        "classic-car": [("1", "first"), ("2", "the caf\u00e9 car")],
        "dogs-scale": [("1", "a dog")],
    }
    p.write_text("seq 1\n")
    with pytest.raises(DataError, match="annot2.txt:1"):
        read_khoreva_file(str(p), "latin-1")


def test_ref_davis_annotator_mismatch_warns(davis, tmp_path, caplog):
    root, _ = davis
    raw = tmp_path / "raw"
    for sub in ("DAVIS", "davis_text_annotations"):
        shutil.copytree(root / sub, raw / sub)
    f = raw / "davis_text_annotations/Davis17_annot2.txt"
    lines = f.read_text(encoding="latin-1").splitlines(keepends=True)
    f.write_text("".join(lines[1:]), encoding="latin-1")  # annotator 2 misses the first object
    with caplog.at_level(logging.WARNING):
        records = load_ref_davis17(str(raw))
    assert "four annotator files" in caplog.text
    assert len(records) == len(load_ref_davis17(str(root))) - 4


@pytest.fixture(scope="module")
def a2d(tmp_path_factory):
    root = tmp_path_factory.mktemp("a2d")
    return root, generate(
        str(root), "a2d", 4, 2, frames=(6, 9), size=(32, 48), test_fraction=0.5, progress=False
    )


def test_a2d_cache_equals_scan(a2d, tmp_path):
    root, _ = a2d
    work = tmp_path / "a2d"
    shutil.copytree(root, work)
    scanned = {s: load_a2d_sentences(str(work), s) for s in ("train", "test")}
    assert _script("prepare_a2d_sentences.py")(["--root", str(work)]) == 0
    cache = json.load(open(work / "a2d_sentences_single_frame_test_annotations.json"))
    assert all(len(row) == 4 and isinstance(row[2], int) for row in cache)
    for s in ("train", "test"):
        assert load_a2d_sentences(str(work), s) == scanned[s]
    (work / "a2d_sentences_single_frame_test_annotations.json").write_text(json.dumps(cache[:1]))
    assert len(load_a2d_sentences(str(work), "test")) == 1  # the cache, not a scan, was read


def test_a2d_quirks(a2d, tmp_path, caplog):
    root, truth = a2d
    work = tmp_path / "a2d"
    shutil.copytree(root, work)
    base = load_a2d_sentences(str(work), "train")
    vid = base[0]["video_id"]
    with open(work / "text_annotations/a2d_annotation.txt", "a") as f:
        f.write(f"{vid},1 (copy),the copied row\n")
    with caplog.at_level(logging.WARNING):
        assert load_a2d_sentences(str(work), "train") == base
    assert "1 (copy)" in caplog.text
    with open(work / "text_annotations/a2d_missed_videos.txt", "a") as f:
        f.write(vid + "\n")
    assert [r for r in base if r["video_id"] != vid] == load_a2d_sentences(str(work), "train")
    with pytest.raises(ValueError):
        load_a2d_sentences(str(work), "valid")


def test_a2d_duplicate_instance_takes_first(tmp_path, caplog):
    """EadxBPmQvtg frame 25 lists an instance id twice; like list.index, the first mask is used."""
    import h5py

    masks = np.zeros((2, 4, 3), dtype=np.uint8)  # (N, W, H)
    masks[0, 0, 0] = 1
    masks[1, 3, 2] = 1
    with h5py.File(tmp_path / "00025.h5", "w") as f:
        f["instance"] = np.array([1.0, 1.0])
        f["reMask"] = masks
    record = {"obj_ids": [1], "annotations": {"type": "a2d_h5", "file": str(tmp_path / "00025.h5")}}
    with caplog.at_level(logging.WARNING):
        m = read_masks(record)
    assert m.shape == (1, 3, 4) and m[0, 0, 0] and m.sum() == 1
    assert "occurs 2 times" in caplog.text


def test_jhmdb_sample_list_vs_draw(tmp_path, caplog):
    root = tmp_path / "jhmdb"
    truth = generate(str(root), "jhmdb", 3, 1, frames=(5, 8), size=(24, 32), progress=False)
    shipped = load_jhmdb_sentences(str(root))
    assert len(shipped) == sum(len(tv["annotated_frames"]) for tv in truth["videos"].values())
    os.remove(root / "jhmdb_sentences_samples_metadata.json")
    with caplog.at_level(logging.WARNING):
        drawn = load_jhmdb_sentences(str(root), seed=3)
    assert "drawing 3 frames" in caplog.text
    assert drawn == load_jhmdb_sentences(str(root), seed=3)  # a fixed seed gives a fixed draw
    for r in drawn:
        tv = truth["videos"][r["video_id"]]
        assert len(r["file_names"]) == tv["mask_frames"] and 0 <= r["annotated_frame"] < tv["mask_frames"]
    assert [sum(r["video_id"] == v for r in drawn) for v in truth["videos"]] == [3, 3, 3]
    assert _script("prepare_jhmdb_sentences.py")(["--root", str(root), "--seed", "3"]) == 0
    assert load_jhmdb_sentences(str(root)) == drawn
    assert _script("prepare_jhmdb_sentences.py")(["--root", str(root)]) == 1  # will not replace a list


def _refcoco_fixture(root, name):
    os.makedirs(root / "train2014", exist_ok=True)
    img = np.zeros((20, 30, 3), np.uint8)
    img[5:10, 10:20] = 200
    Image.fromarray(img).save(root / "train2014" / "COCO_train2014_000000000009.jpg", quality=95)
    data = {
        "images": [
            {
                "id": 1,
                "file_name": "COCO_train2014_000000000009.jpg",
                "height": 20,
                "width": 30,
                "caption": "the grey box on the left",
                "original_id": 9,
                "dataset_name": "refcoco",
            },
            {
                "id": 2,
                "file_name": "COCO_train2014_000000000009.jpg",
                "height": 20,
                "width": 30,
                "caption": "crowd only",
                "original_id": 9,
                "dataset_name": "refcoco",
            },
        ],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "bbox": [10, 5, 10, 5],
                "area": 50,
                "iscrowd": 0,
                "category_id": 1,
                "segmentation": [[10, 5, 20, 5, 20, 10, 10, 10]],
            },
            {
                "id": 2,
                "image_id": 2,
                "bbox": [0, 0, 1, 1],
                "area": 1,
                "iscrowd": 1,
                "category_id": 1,
                "segmentation": [[0, 0, 1, 0, 1, 1]],
            },
        ],
        "categories": [{"id": 1, "name": "thing"}],
    }
    os.makedirs(os.path.dirname(root / name), exist_ok=True)
    json.dump(data, open(root / name, "w"))


@pytest.mark.parametrize(
    "name", ["refcoco/instances_refcoco_train.json", "mdetr_annotations/final_refcoco_train.json"]
)
def test_refcoco_one_frame_clips(tmp_path, name, caplog):
    _refcoco_fixture(tmp_path, name)
    with caplog.at_level(logging.WARNING):
        (r,) = load_refcoco(str(tmp_path), "refcoco", "train")
    assert "skipped 1" in caplog.text
    assert r["video_id"] == "9" and r["exp_id"] == "1" and (r["height"], r["width"]) == (20, 30)
    mask = read_masks(r)
    assert mask.shape == (1, 20, 30) and mask[0, 5:10, 10:20].all() and mask[0].sum() <= 11 * 6
    cfg = get_cfg()
    add_soc_config(cfg)
    cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN, cfg.INPUT.FLIP_PROB = (20,), 1000, 1.0
    out = RefVOSMapper(cfg, is_train=True)(r)
    assert out["frames"].shape == (1, 3, 20, 30) and out["expression"] == "the grey box on the right"
    assert np.array_equal(out["targets"]["masks"][0].numpy(), mask[0][:, ::-1])
    assert RefVOSMapper(cfg, is_train=False)(r)["frames"].shape[0] == 1
