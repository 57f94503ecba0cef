"""A weights file cannot run code: every way a user names one (MODEL.WEIGHTS through the checkpointer and the
predictor, the converter, MODEL.VIDEO_SWIN.PRETRAINED) reads it without calling what it asks for."""

import importlib.util
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from detectron2.modeling import build_model

import soc.modeling  # noqa: F401
from soc.checkpoint import SOCCheckpointer, WeightsFileError, convert_checkpoint_file, load_weights_file
from soc.engine import SOCPredictor

from test_soc_model import tiny_cfg

REPO = Path(__file__).resolve().parents[1]
SUFFIXES = [".pkl", ".pth", ".pth.tar", ".pyth"]


class _Touch:
    """Unpickled by a plain unpickler, this calls ``Path.touch(marker)``: the harmless stand-in for
    ``os.system``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def _write_malicious(path: Path, marker: Path, writer: str) -> None:
    payload = {"model": {"weight": _Touch(marker)}, "__author__": "x"}
    if writer == "pickle":  # a detectron2-style .pkl, or a legacy (non-zip) torch file
        path.write_bytes(pickle.dumps(payload, protocol=4))
    else:
        torch.save(payload, path)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(tiny_cfg())


@pytest.mark.parametrize("writer", ["pickle", "torch"])
def test_the_malicious_files_do_run_code_when_unpickled_plainly(tmp_path, writer):
    """The files below are real attacks: loading them the old way creates the marker."""
    marker, path = tmp_path / "marker", tmp_path / "evil.pth"
    _write_malicious(path, marker, writer)
    if writer == "pickle":
        pickle.loads(path.read_bytes())
    else:
        torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("writer", ["pickle", "torch"])
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_model_weights_never_runs_the_file(tmp_path, model, suffix, writer):
    marker, path = tmp_path / "marker", tmp_path / f"evil{suffix}"
    _write_malicious(path, marker, writer)
    with pytest.raises(WeightsFileError) as info:  # as train_net.py --eval-only loads MODEL.WEIGHTS
        SOCCheckpointer(model).resume_or_load(str(path), resume=False)
    assert not marker.exists()
    assert str(path) in str(info.value)
    if suffix == ".pkl" and writer == "pickle":
        assert str(info.value) == (
            f"refusing to load {path}: it asks for pathlib.Path.touch, which a weights file never needs"
        )


def test_the_predictor_never_runs_the_file(tmp_path):
    marker, path = tmp_path / "marker", tmp_path / "evil.pkl"
    _write_malicious(path, marker, "pickle")
    cfg = tiny_cfg(**{"MODEL.WEIGHTS": str(path)})
    with pytest.raises(WeightsFileError, match="pathlib.Path.touch"):  # as tools/demo.py loads it
        SOCPredictor(cfg)
    assert not marker.exists()


def test_a_pkl_cannot_even_import_a_module(tmp_path):
    """A plain unpickler imports the module a global names (``this`` prints the Zen of Python on import)."""
    assert "this" not in sys.modules
    path = tmp_path / "imports.pkl"
    path.write_bytes(b"cthis\ns\n.")  # protocol 0: GLOBAL this.s, STOP
    with pytest.raises(WeightsFileError, match="asks for this.s,"):
        load_weights_file(str(path))
    assert "this" not in sys.modules


@pytest.mark.parametrize("writer", ["pickle", "torch"])
@pytest.mark.parametrize("suffix", [".pkl", ".pth.tar"])
def test_the_converter_never_runs_the_file(tmp_path, suffix, writer, capsys):
    marker, path, out = tmp_path / "marker", tmp_path / f"evil{suffix}", tmp_path / "converted.pth"
    _write_malicious(path, marker, writer)
    with pytest.raises(WeightsFileError, match=str(path)):
        convert_checkpoint_file(str(path), str(out))

    spec = importlib.util.spec_from_file_location(
        "convert_soc_checkpoint", REPO / "tools" / "convert_soc_checkpoint.py"
    )
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.main([str(path), str(out)]) == 1
    assert str(path) in capsys.readouterr().err
    assert not marker.exists() and not out.exists()


@pytest.mark.parametrize("suffix", [".pkl", ".pth"])
def test_the_kinetics_backbone_file_never_runs(tmp_path, model, suffix):
    marker, path = tmp_path / "marker", tmp_path / f"swin_kinetics{suffix}"
    _write_malicious(path, marker, "pickle")
    with pytest.raises(WeightsFileError, match=str(path)):
        SOCCheckpointer(model).load_backbone_pretrained(str(path))
    assert not marker.exists()


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_a_detectron2_pkl_still_loads(tmp_path, model, protocol):
    """A model-zoo file ({"model": {name: ndarray}, "__author__": ...}) of any pickle protocol, 0-2 as written
    by Python 2 (``__builtin__``, ``_codecs.encode`` for bytes) included."""
    reference = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    path = tmp_path / "model_zoo.pkl"
    path.write_bytes(pickle.dumps({"model": reference, "__author__": "x"}, protocol=protocol))
    fresh = build_model(tiny_cfg())
    with torch.no_grad():
        for v in fresh.state_dict().values():
            v.zero_()
    SOCCheckpointer(fresh).load(str(path))
    loaded = fresh.state_dict()
    assert set(loaded) == set(reference)
    for k, v in reference.items():
        assert np.array_equal(loaded[k].numpy(), v), k


def test_what_numpy_pickles_need_is_admitted(tmp_path):
    """Caffe2-style content (arrays of several dtypes and layouts, numpy scalars, builtin containers) reads as
    plain unpickling reads it, in every pickle protocol."""
    blobs = {
        "conv1_w": np.arange(24, dtype=np.float32).reshape(2, 3, 4),
        "conv1_w_momentum": np.zeros(3),
        "fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "strided": np.arange(10, dtype=np.int64)[::3],
        "big_endian": np.arange(3, dtype=">f4"),
        "half": np.ones(2, dtype=np.float16),
    }
    others = {
        "scale": np.float32(0.5),
        "tags": {"a", "b"},
        "frozen": frozenset([1]),
        "raw": b"\0\xff",
        "z": 2.5j,
    }
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        path = tmp_path / f"caffe2_{protocol}.pkl"
        path.write_bytes(pickle.dumps({"blobs": blobs, **others}, protocol=protocol))
        expected = pickle.loads(path.read_bytes(), encoding="latin1")
        loaded = load_weights_file(str(path))
        assert set(loaded) == set(expected) and set(loaded["blobs"]) == set(blobs)
        for k, v in expected["blobs"].items():
            assert loaded["blobs"][k].dtype == v.dtype and np.array_equal(loaded["blobs"][k], blobs[k]), k
            assert loaded["blobs"][k].flags.f_contiguous == v.flags.f_contiguous, k
        assert {k: loaded[k] for k in others} == others
