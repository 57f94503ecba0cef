"""Evaluation with a clip's expressions grouped into one test sample (``Trainer.build_test_loader``,
``TEST.MAX_EXPRESSIONS_PER_SAMPLE``) against one sample per expression, end to end on SynthRVOS with a tiny
random model: the same results, per-expression scores and prediction files, and one backbone pass per clip.

The model runs in float64: grouped, it decodes the E expressions as one batch, which in float32 differs from
E single runs by rounding (other GEMM shapes, padded word features; see ``tests/test_soc_model.py``) and could
move a pixel across the mask threshold; float64 leaves the comparison exact.
"""

import json
import os
import uuid
import zipfile
from pathlib import Path

import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.evaluation import inference_on_dataset
from detectron2.modeling import build_model

from soc.config import setup_cfg
from soc.data import register_a2d_sentences, register_ref_davis17, register_ref_ytvos
from soc.data.synthetic import generate
from soc.engine import Trainer

from helpers import perturb_parameters, tree

CONFIG = Path(__file__).resolve().parents[1] / "projects/SOC/configs/synthetic/soc_tiny_instant_test.yaml"


def tiny_cfg():
    return setup_cfg(str(CONFIG), ["MODEL.DEVICE", "cpu"])


def tiny_model():
    """The instant-test model with seeded random weights, moved away from the initialisation (whose zeros
    make every query alike), in float64."""
    torch.manual_seed(0)
    return perturb_parameters(build_model(tiny_cfg())).double().eval()


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def _name(kind):
    return f"test_grouped_{kind}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def ytvos(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("ytvos"))
    generate(root, "ytvos", 3, seed=21, frames=(4, 6), size=(48, 80), split="valid", progress=False)
    name = _name("ytvos")
    register_ref_ytvos(name, root, "valid")
    return name


@pytest.fixture(scope="module")
def davis(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("davis"))
    generate(root, "davis", 2, seed=22, frames=(4, 6), size=(48, 80), progress=False)
    name = _name("davis")
    register_ref_davis17(name, root, "valid", None)
    return name


def evaluate(model, dataset_name, output_dir, max_per_group):
    """``Trainer.test`` for one dataset with ``TEST.MAX_EXPRESSIONS_PER_SAMPLE = max_per_group``: (results,
    number of samples, number of backbone passes)."""
    cfg = tiny_cfg()
    cfg.defrost()
    cfg.TEST.MAX_EXPRESSIONS_PER_SAMPLE = max_per_group
    loader = Trainer.build_test_loader(cfg, dataset_name)
    evaluator = Trainer.build_evaluator(cfg, dataset_name, str(output_dir))
    calls = []
    hook = model.backbone.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    try:
        results = inference_on_dataset(model, loader, evaluator)
    finally:
        hook.remove()
    assert set(calls) <= {1}  # one clip per pass
    return results, len(loader), len(calls)


def zip_entries(path):
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def test_ref_ytvos_grouped_equals_ungrouped(model, ytvos, tmp_path):
    records = DatasetCatalog.get(ytvos)
    videos = {r["video_id"] for r in records}
    assert len(records) > len(videos) == 3
    single, n_single, passes_single = evaluate(model, ytvos, tmp_path / "single", 1)
    grouped, n_grouped, passes_grouped = evaluate(model, ytvos, tmp_path / "grouped", 0)
    assert (n_single, passes_single) == (len(records), len(records))
    assert (n_grouped, passes_grouped) == (3, 3)  # the backbone once per video
    assert grouped == single
    assert 0 < single["refvos"]["J"] < 1 and "temporal/J&F" in single["refvos"]
    files = tree(tmp_path / "single")
    assert tree(tmp_path / "grouped") == files
    n_frames = sum(len(r["frame_names"]) for r in records)
    assert len([f for f in files if f.endswith(".png")]) == n_frames
    assert len({files[f] for f in files if f.endswith(".png")}) > len(videos)  # not all alike
    with open(tmp_path / "single" / "refvos_per_expression.json") as f:
        assert set(json.load(f)) == {f"{r['video_id']}/{r['exp_id']}" for r in records}
    entries = zip_entries(tmp_path / "single" / "submission.zip")
    assert zip_entries(tmp_path / "grouped" / "submission.zip") == entries


def test_ref_ytvos_groups_of_at_most_two(model, ytvos, tmp_path):
    records = DatasetCatalog.get(ytvos)
    per_video = {}
    for r in records:
        per_video[r["video_id"]] = per_video.get(r["video_id"], 0) + 1
    expected = sum((n + 1) // 2 for n in per_video.values())
    single, _, _ = evaluate(model, ytvos, tmp_path / "single", 1)
    res, n, passes = evaluate(model, ytvos, tmp_path / "pairs", 2)
    assert n == passes == expected < len(records)
    assert res == single and tree(tmp_path / "pairs") == tree(tmp_path / "single")


def test_ref_davis_windows_grouped_equals_ungrouped(model, davis, tmp_path):
    """Ref-DAVIS17 protocol (four runs merged per sequence) with 3-frame windows: the backbone runs once per
    window of each video instead of once per window of each expression."""
    records = DatasetCatalog.get(davis)
    frames = {r["video_id"]: len(r["frame_names"]) for r in records}
    windows = {v: -(-t // 3) for v, t in frames.items()}
    model.test_clip_length = 3
    try:
        single, _, passes_single = evaluate(model, davis, tmp_path / "single", 1)
        grouped, n, passes_grouped = evaluate(model, davis, tmp_path / "grouped", 0)
    finally:
        model.test_clip_length = 0
    assert passes_single == sum(windows[r["video_id"]] for r in records)
    assert (n, passes_grouped) == (len(frames), sum(windows.values()))
    assert grouped == single and 0 < single["refvos"]["identity/J"] < 1
    files = tree(tmp_path / "single")
    assert tree(tmp_path / "grouped") == files and len(files) > 4 * len(frames)


def test_a2d_grouped_by_annotated_frame_equals_ungrouped(model, tmp_path):
    """A2D-Sentences: the instances of one annotated frame share a window and are answered together; mAP
    (every query's mask) included."""
    root = str(tmp_path / "a2d")
    generate(root, "a2d", 4, seed=23, frames=(8, 10), size=(48, 64), test_fraction=0.5, progress=False)
    name = _name("a2d")
    register_a2d_sentences(name, root, "test")
    records = DatasetCatalog.get(name)
    clips = {(r["video_id"], r["annotated_frame"]) for r in records}
    assert len(records) > len(clips)
    model.all_query_masks = True
    try:
        single, _, passes_single = evaluate(model, name, tmp_path / "single", 1)
        grouped, n, passes_grouped = evaluate(model, name, tmp_path / "grouped", 0)
    finally:
        model.all_query_masks = False
    assert passes_single == len(records) and n == passes_grouped == len(clips)
    assert grouped == single and set(single["a2d_sentences"]) >= {"mAP", "oIoU", "mIoU"}
    assert tree(tmp_path / "grouped") == tree(tmp_path / "single") != {}


@pytest.mark.parametrize("max_per_group, samples", [(0, 2), (1, 6), (2, 4), (3, 2)])
def test_test_loader_samples(max_per_group, samples):
    """``TEST.MAX_EXPRESSIONS_PER_SAMPLE`` in ``Trainer.build_test_loader``: 2 videos of 3 expressions."""
    from detectron2.data import MetadataCatalog

    records = [
        {"video_id": v, "exp_id": e, "expression": "x", "file_names": [f"{v}.jpg"], "frame_names": [v]}
        for v in ("a", "b")
        for e in ("0", "1", "2")
    ]
    name = _name("loader")
    DatasetCatalog.register(name, lambda: records)
    MetadataCatalog.get(name).set(evaluator_type="ref_ytvos")
    cfg = tiny_cfg()
    cfg.defrost()
    cfg.TEST.MAX_EXPRESSIONS_PER_SAMPLE = max_per_group
    assert len(Trainer.build_test_loader(cfg, name)) == samples


# ------------------------------------------------------------------------------------------ 2 processes
def _distributed_worker(ytvos_root, davis_root, names, out_file):
    import torch.distributed as dist
    from detectron2.utils import comm

    torch.set_num_threads(1)
    register_ref_ytvos(names[0], ytvos_root, "valid")
    register_ref_davis17(names[1], davis_root, "valid", None)
    model = tiny_model()
    results = {}
    for key, name in zip(("ytvos", "davis"), names):
        results[key], _, _ = evaluate(model, name, os.path.join(os.path.dirname(out_file), key), 0)
    if comm.is_main_process():
        with open(out_file, "w") as f:
            json.dump(results, f)
    else:
        assert results == {"ytvos": {}, "davis": {}}
    comm.synchronize()
    dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_grouped_equal_one_process_ungrouped(model, tmp_path):
    from detectron2.engine import launch

    ytvos_root, davis_root = str(tmp_path / "ytvos_data"), str(tmp_path / "davis_data")
    generate(ytvos_root, "ytvos", 3, seed=31, frames=(4, 6), size=(48, 80), split="valid", progress=False)
    generate(davis_root, "davis", 2, seed=32, frames=(4, 6), size=(48, 80), progress=False)
    names = [_name("ytvos"), _name("davis")]
    out = tmp_path / "dist"
    out.mkdir()
    launch(_distributed_worker, 2, dist_url="auto", args=(ytvos_root, davis_root, names, str(out / "r.json")))
    with open(out / "r.json") as f:
        dist = json.load(f)
    register_ref_ytvos(names[0], ytvos_root, "valid")
    register_ref_davis17(names[1], davis_root, "valid", None)
    for key, name in zip(("ytvos", "davis"), names):
        single, _, _ = evaluate(model, name, tmp_path / "single" / key, 1)
        assert dist[key] == json.loads(json.dumps(single)), key
        assert tree(out / key) == tree(tmp_path / "single" / key), key
