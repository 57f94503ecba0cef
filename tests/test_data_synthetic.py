"""SynthRVOS generator: content, file formats read with the references' readers, determinism, overwrite
policy."""

import csv
import json
import os
import subprocess
import sys

import av
import h5py
import numpy as np
import pytest
import scipy.io
from PIL import Image

from soc.data import davis_palette
from soc.data.synthetic import generate
from soc.data.synthetic.__main__ import main as cli_main
from soc.data.synthetic.files import tree_files
from soc.data.synthetic.writers import A2D_ACTOR_ACTIONS

SMALL = {"ytvos": (48, 80), "davis": (48, 80), "a2d": (64, 96), "jhmdb": (48, 64)}


def _gen(root, fmt, n=3, seed=0, **kw):
    kw.setdefault("frames", (5, 8))
    return generate(str(root), fmt, n, seed, size=SMALL[fmt], progress=False, **kw)


def _look(o):
    return (o["shape"], o["colour"], o["size"])


@pytest.fixture(scope="module")
def ytvos12(tmp_path_factory):
    root = tmp_path_factory.mktemp("y12")
    return root, _gen(root, "ytvos", 12, seed=4, frames=(6, 10))


def test_ytvos_content(ytvos12):
    root, truth = ytvos12
    videos = truth["videos"]
    meta = json.load(open(root / "meta_expressions" / "train" / "meta_expressions.json"))["videos"]
    objects_meta = json.load(open(root / "train" / "meta.json"))["videos"]
    assert set(meta) == set(videos) and all(len(v) == 10 for v in videos)
    starts_later = 0
    for vid, tv in videos.items():
        names = tv["frame_names"]
        assert (
            meta[vid]["frames"]
            == names
            == sorted(os.path.splitext(n)[0] for n in os.listdir(root / "train" / "JPEGImages" / vid))
        )
        steps = np.diff([int(n) for n in names])
        assert set(steps) <= {5, 10} and (steps == 5).sum() >= len(steps) - 1
        starts_later += names[0] != "00000"
        assert 2 <= len(tv["objects"]) <= 4
        per_obj = {}
        for k, e in tv["expressions"].items():
            assert meta[vid]["expressions"][k] == {"exp": e["exp"], "obj_id": str(e["obj_id"])}
            per_obj.setdefault(e["obj_id"], []).append(e["exp"])
        assert set(per_obj) == set(tv["objects"])
        assert all(1 <= len(v) <= 3 and len(set(v)) == len(v) for v in per_obj.values())
        for i, name in enumerate(names):  # PIL palette read gives the object ids
            png = Image.open(root / "train" / "Annotations" / vid / f"{name}.png")
            assert png.mode == "P" and png.getpalette()[:12] == davis_palette()[:12]
            index = np.asarray(png)
            for oid, m in tv["masks"].items():
                assert np.array_equal(index == oid, m[i])
        masks = np.stack(list(tv["masks"].values()))
        assert masks.sum(axis=0).max() <= 1  # visible parts are disjoint (occlusion by depth)
        for oid, m in tv["masks"].items():
            assert m.any(axis=(1, 2)).sum() >= 2
            assert objects_meta[vid]["objects"][str(oid)]["frames"] == [
                n for n, v in zip(names, m.any(axis=(1, 2))) if v
            ]
    assert starts_later >= 1
    assert any(not m[t].any() for tv in videos.values() for m in tv["masks"].values() for t in range(len(m)))


def test_ytvos_temporal_subset(ytvos12):
    root, truth = ytvos12
    stored = set(
        json.load(open(root / "meta_expressions" / "train" / "temporal_expressions.json"))["temporal"]
    )
    assert stored == truth["temporal"]
    temporal_videos = {k.split("/")[0] for k in stored}
    assert len(temporal_videos) == round(0.3 * 12)
    for vid, tv in truth["videos"].items():
        looks = [_look(o) for o in tv["objects"].values()]
        twins = {oid for oid, o in tv["objects"].items() if looks.count(_look(o)) == 2}
        if vid in temporal_videos:  # exactly one look-alike pair, differing only in motion
            assert len(twins) == 2 and len({tv["objects"][o]["motion"] for o in twins}) == 2
            for k, e in tv["expressions"].items():
                assert e["temporal"] == (e["obj_id"] in twins) == (f"{vid}/{k}" in stored)
                if e["temporal"]:
                    assert e["family"] in ("motion", "combination")
        else:
            assert len(set(looks)) == len(looks) and not any(
                e["temporal"] for e in tv["expressions"].values()
            )


def test_ytvos_valid_layout(tmp_path):
    truth = _gen(tmp_path, "ytvos", 3, seed=2, split="valid", test_videos=2)
    valid = json.load(open(tmp_path / "meta_expressions" / "valid" / "meta_expressions.json"))["videos"]
    test = json.load(open(tmp_path / "meta_expressions" / "test" / "meta_expressions.json"))["videos"]
    assert len(valid) == 5 and set(test) < set(valid) and len(test) == 2
    for vid in test:
        assert all("obj_id" not in e for e in valid[vid]["expressions"].values())
        assert (tmp_path / "test" / "JPEGImages" / vid).is_dir()
        assert not (tmp_path / "valid" / "JPEGImages" / vid).exists()
    for vid in set(valid) - set(test):  # the synthetic valid split ships masks
        assert truth["videos"][vid]["split"] == "valid"
        assert len(os.listdir(tmp_path / "valid" / "Annotations" / vid)) == len(valid[vid]["frames"])


def test_davis_layout(tmp_path):
    truth = _gen(tmp_path, "davis", 2, seed=1)
    meta = json.load(open(tmp_path / "meta_expressions" / "valid" / "meta_expressions.json"))["videos"]
    seqs = open(tmp_path / "DAVIS" / "ImageSets" / "2017" / "val.txt").read().split()
    assert seqs == list(truth["videos"]) == list(meta)
    for vid, tv in truth["videos"].items():
        n_obj = len(tv["objects"])
        assert len(meta[vid]["expressions"]) == 4 * n_obj
        assert meta[vid]["frames"] == [f"{i:05d}" for i in range(len(tv["frame_names"]))]
        for name in meta[vid]["frames"]:  # raw copy == converted layout
            for raw, conv in (("JPEGImages", "JPEGImages"), ("Annotations_unsupervised", "Annotations")):
                ext = ".jpg" if raw == "JPEGImages" else ".png"
                a = (tmp_path / "DAVIS" / raw / "480p" / vid / (name + ext)).read_bytes()
                assert a == (tmp_path / "valid" / conv / vid / (name + ext)).read_bytes()
    files = [
        "Davis17_annot1.txt",
        "Davis17_annot1_full_video.txt",
        "Davis17_annot2.txt",
        "Davis17_annot2_full_video.txt",
    ]
    for a, name in enumerate(files):
        lines = open(tmp_path / "davis_text_annotations" / name, encoding="latin-1").read().splitlines()
        want = [
            f'{vid} {e["obj_id"]} "{e["exp"]}"'
            for vid, tv in truth["videos"].items()
            for k, e in tv["expressions"].items()
            if int(k) % 4 == a
        ]
        assert lines == want


def test_a2d_files(tmp_path):
    truth = _gen(tmp_path, "a2d", 4, seed=6, frames=(8, 12), test_fraction=0.5)
    rows = list(csv.reader(open(tmp_path / "Release" / "videoset.csv")))
    missed = open(tmp_path / "text_annotations" / "a2d_missed_videos.txt").read().split()
    assert all(len(r) == 9 for r in rows) and len(rows) == 5 and len(missed) == 1 and rows[-1][0] == missed[0]
    text = list(csv.reader(open(tmp_path / "text_annotations" / "a2d_annotation.txt")))
    assert text[0] == ["video_id", "instance_id", "query"]
    for vid, flag in ((r[0], int(r[8])) for r in rows[:-1]):
        tv = truth["videos"][vid]
        assert tv["split"] == ("test" if flag else "train")
        with av.open(str(tmp_path / "Release" / "clips320H" / f"{vid}.mp4")) as c:  # decode back, aligned
            decoded = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]).astype(np.int16)
        assert decoded.shape == tv["frames"].shape
        for i, d in enumerate(decoded):
            dists = np.abs(tv["frames"].astype(np.int16) - d[None]).mean(axis=(1, 2, 3))
            assert dists.argmin() == i and dists[i] < 8
        h5s = sorted(os.listdir(tmp_path / "text_annotations" / "a2d_annotation_with_instances" / vid))
        assert h5s == [f"{f + 1:05d}.h5" for f in tv["annotated_frames"]] and len(h5s) == 3
        for name, f in zip(h5s, tv["annotated_frames"]):
            with h5py.File(
                tmp_path / "text_annotations" / "a2d_annotation_with_instances" / vid / name, "r"
            ) as h:
                inst = list(h["instance"][()])
                mask, box, ids = h["reMask"][()], h["reBBox"][()], h["id"][()]
            visible = [k for k, m in tv["masks"].items() if m[f].any()]
            assert inst == visible and box.shape == (4, len(inst)) and ids.shape == (1, len(inst))
            assert set(ids.ravel().astype(int)) <= set(A2D_ACTOR_ACTIONS)
            if len(inst) == 1:
                mask = mask[None]  # the real files store a single instance 2-D
            assert mask.shape == (len(inst), 96, 64) and mask.dtype == np.uint8
            for k, m in zip(inst, mask):
                assert np.array_equal(m.T.astype(bool), tv["masks"][k][f])
        for k, e in tv["expressions"].items():
            assert [vid, k, e["exp"]] in text


def test_jhmdb_files(tmp_path):
    truth = _gen(tmp_path, "jhmdb", 4, seed=9, frames=(5, 9))
    text = list(csv.reader(open(tmp_path / "jhmdb_annotation.txt")))
    samples = json.load(open(tmp_path / "jhmdb_sentences_samples_metadata.json"))
    assert text[0] == ["video_id", "query"] and len(text) == 5
    for vid, tv in truth["videos"].items():
        fdir = tmp_path / "Rename_Images" / tv["action"] / vid
        assert sorted(os.listdir(fdir)) == [f"{i:05d}.png" for i in range(1, len(tv["frame_names"]) + 1)]
        assert np.array_equal(np.asarray(Image.open(fdir / "00001.png")), tv["frames"][0])
        part = scipy.io.loadmat(tmp_path / "puppet_mask" / tv["action"] / vid / "puppet_mask.mat")[
            "part_mask"
        ]
        assert part.dtype == np.uint8 and part.shape == (48, 64, tv["mask_frames"])
        assert np.array_equal(
            part.transpose(2, 0, 1).astype(bool), tv["masks"][tv["actor"]][: tv["mask_frames"]]
        )
        rows = [s for s in samples if s[0] == vid]
        assert [int(os.path.basename(s[1])[:5]) - 1 for s in rows] == tv["annotated_frames"]
        assert all(
            s[1].startswith(f"./jhmdb_sentences/Rename_Images/{tv['action']}/{vid}/")
            and s[3] == tv["mask_frames"]
            and s[4] == tv["expressions"]["0"]["exp"]
            for s in rows
        )
    assert any(tv["mask_frames"] < len(tv["frame_names"]) for tv in truth["videos"].values())


@pytest.mark.parametrize("fmt", ["ytvos", "davis", "a2d", "jhmdb"])
def test_deterministic_bytes(tmp_path, fmt):
    _gen(tmp_path / "a", fmt, 2, seed=21)
    _gen(tmp_path / "b", fmt, 2, seed=21)
    _gen(tmp_path / "c", fmt, 2, seed=22)
    files = tree_files(str(tmp_path / "a"))
    assert files == tree_files(str(tmp_path / "b"))
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert any(
        not (tmp_path / "c" / f).exists()
        or (tmp_path / "a" / f).read_bytes() != (tmp_path / "c" / f).read_bytes()
        for f in files
    )


def test_overwrite_policy(tmp_path):
    _gen(tmp_path, "ytvos", 1, seed=0)
    with pytest.raises(FileExistsError):
        _gen(tmp_path, "ytvos", 1, seed=1)
    before = (tmp_path / "meta_expressions" / "train" / "meta_expressions.json").read_bytes()
    _gen(tmp_path, "ytvos", 1, seed=1, force=True)
    assert (tmp_path / "meta_expressions" / "train" / "meta_expressions.json").read_bytes() != before
    _gen(tmp_path, "ytvos", 1, seed=0, split="valid")  # another split next to train: allowed
    assert (tmp_path / "train").is_dir() and (tmp_path / "valid").is_dir()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "precious.txt").write_text("x")
    with pytest.raises(FileExistsError):
        _gen(tmp_path / "other", "jhmdb", 1, seed=0)
    _gen(tmp_path / "other", "jhmdb", 1, seed=0, force=True)
    assert (tmp_path / "other" / "precious.txt").read_text() == "x"  # force removes only generated paths


def test_cli_matches_api(tmp_path, capsys):
    args = ["--format", "jhmdb", "--videos", "2", "--seed", "5", "--frames", "4:6", "--size", "24x32"]
    cmd = [sys.executable, "-m", "soc.data.synthetic", "--out", str(tmp_path / "cli")] + args
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    assert "wrote 2 videos" in res.stdout and "SynthRVOS jhmdb/test" in res.stderr  # tqdm bar on stderr
    generate(str(tmp_path / "api"), "jhmdb", 2, 5, frames=(4, 6), size=(24, 32), progress=False)
    files = tree_files(str(tmp_path / "cli"))
    assert files == tree_files(str(tmp_path / "api"))
    assert all((tmp_path / "cli" / f).read_bytes() == (tmp_path / "api" / f).read_bytes() for f in files)
    assert cli_main(["--out", str(tmp_path / "cli")] + args) == 2  # refuses to overwrite
    assert "refusing" in capsys.readouterr().err
