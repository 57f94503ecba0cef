"""The installable package soc-detectron2: optional dependencies stay optional, and (slow) an sdist and the
wheel built from it carry the configs, the compiled op, the LICENSE, the metadata and the console scripts,
and work from where they are installed."""

import configparser
import json
import os
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from soc.data import read_masks
from soc.data.datasets.a2d_sentences import a2d_samples

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "projects" / "SOC" / "configs"
# what setup.py reads; soc/ without build products and without the link setup.py makes
BUILD_INPUTS = ["setup.py", "pyproject.toml", "MANIFEST.in", "LICENSE", "README.md", "csrc", "soc"]
CONSOLE_SCRIPTS = {
    "soc-eval-jf": "soc.cli.eval_jf:main",
    "soc-convert-checkpoint": "soc.cli.convert_checkpoint:main",
    "soc-demo": "soc.cli.demo:main",
}


def _run(cmd, **kwargs):
    env = dict(os.environ, OMP_NUM_THREADS="1", SOC_SKIP_CUDA="1", MAX_JOBS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, **kwargs)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_soc_imports_without_h5py_and_the_dropped_dependencies():
    """Every module of soc imports with h5py (the a2d extra), gradio (the app extra), scikit-image and
    imageio (no longer dependencies) unavailable."""
    script = """
import pkgutil, sys, importlib
for name in ("h5py", "gradio", "skimage", "imageio"):
    sys.modules[name] = None  # makes `import name` raise ImportError
import soc
names = [m.name for m in pkgutil.walk_packages(soc.__path__, "soc.") if not m.name.endswith("__main__")]
for name in names:
    importlib.import_module(name)
print(len(names))
"""
    proc = _run([sys.executable, "-c", script], cwd=REPO, timeout=600)
    assert int(proc.stdout.split()[-1]) > 40


def test_reading_a2d_without_h5py_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)
    record = {"annotations": {"type": "a2d_h5", "file": str(tmp_path / "00025.h5")}, "obj_ids": [1]}
    with pytest.raises(ImportError, match=r"need h5py: pip install 'soc-detectron2\[a2d\]'"):
        read_masks(record)
    with pytest.raises(ImportError, match=r"soc-detectron2\[a2d\]"):
        a2d_samples(str(tmp_path), "train")


def _copy_build_inputs(src: Path) -> None:
    def ignore(folder, names):
        in_zoo = os.path.basename(folder) == "model_zoo"
        return [n for n in names if n == "__pycache__" or n.endswith(".so") or (in_zoo and n == "configs")]

    src.mkdir()
    for name in BUILD_INPUTS:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=ignore)
        else:
            shutil.copy(REPO / name, src / name)
    shutil.copytree(CONFIGS, src / "projects" / "SOC" / "configs")


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_sdist_and_wheel(tmp_path):
    """sdist from a copy of the tree (configs gathered through the link setup.py makes), then
    ``pip wheel --no-deps --no-build-isolation`` on it (builds the CPU kernel; the sdist has no projects/)."""
    src = tmp_path / "src"
    _copy_build_inputs(src)
    _run([sys.executable, "setup.py", "-q", "sdist", "-d", str(tmp_path / "dist")], cwd=src, timeout=600)
    (sdist,) = (tmp_path / "dist").iterdir()
    assert sdist.name == "soc_detectron2-0.1.0.tar.gz"
    wheels = tmp_path / "wheels"
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels)]
    _run(cmd + [str(sdist)], cwd=tmp_path, timeout=3000)
    (wheel,) = wheels.iterdir()
    assert wheel.name.startswith("soc_detectron2-0.1.0-")
    dist_info = "soc_detectron2-0.1.0.dist-info"

    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        metadata = Parser().parsestr(z.read(f"{dist_info}/METADATA").decode())
        entry_points = configparser.ConfigParser()
        entry_points.read_string(z.read(f"{dist_info}/entry_points.txt").decode())
        license_text = z.read(f"{dist_info}/licenses/LICENSE").decode()
        z.extractall(tmp_path / "site")

    copied = src / "projects" / "SOC" / "configs"  # the repository's may change meanwhile
    configs = {f"soc/model_zoo/configs/{p.relative_to(copied).as_posix()}" for p in copied.rglob("*.yaml")}
    assert "soc/model_zoo/configs/ref_ytvos/soc_swin_t_joint.yaml" in configs and configs <= names
    assert any(n.startswith("soc/_C.") and n.endswith(".so") for n in names)
    assert {"soc/cli/eval_jf.py", "soc/cli/convert_checkpoint.py", "soc/model_zoo/model_zoo.py"} <= names
    assert not any(n.startswith(("tests/", "tools/", "benchmarks/", "projects/")) for n in names)

    assert license_text == (src / "LICENSE").read_text()
    assert license_text.startswith("Copyright 2026 SOC for Detectron2 authors\n")
    assert "Apache License\n                           Version 2.0, January 2004" in license_text
    assert "END OF TERMS AND CONDITIONS" in license_text

    assert metadata["Name"] == "soc-detectron2" and metadata["Version"] == "0.1.0"
    assert "Apache-2.0" in (metadata.get("License-Expression"), metadata.get("License"))
    requires = metadata.get_all("Requires-Dist")
    assert not any(r.startswith(("scikit-image", "imageio")) for r in requires), requires
    assert [r for r in requires if "h5py" in r] == ['h5py; extra == "a2d"']
    assert [r for r in requires if "gradio" in r] == ['gradio; extra == "app"']
    assert set(metadata.get_all("Provides-Extra")) == {"a2d", "app"}
    assert dict(entry_points["console_scripts"]) == CONSOLE_SCRIPTS

    # the unpacked wheel as site-packages: configs by name with their _BASE_ chains, the compiled op, and
    # the console scripts' functions
    script = """
import contextlib, io, json, sys
from importlib.metadata import distribution
import soc
from soc import model_zoo
from soc.layers import ms_deform_attn_backend
cfg = model_zoo.get_config("ref_davis/soc_swin_b_joint_eval")
helps = {}
for ep in distribution("soc-detectron2").entry_points:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        ep.load()(["--help"])
    helps[ep.name] = out.getvalue()
print(json.dumps({
    "soc": soc.__file__,
    "config": model_zoo.get_config_file("ref_ytvos/soc_swin_t_joint"),
    "embed_dim": cfg.MODEL.VIDEO_SWIN.EMBED_DIM,
    "clip_length": cfg.MODEL.SOC.TEST.CLIP_LENGTH,
    "clip_value": cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE,
    "backend": ms_deform_attn_backend("cpu"),
    "helps": helps,
}))
"""
    site = tmp_path / "site"
    env_path = os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=env_path, OMP_NUM_THREADS="1"),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["soc"] == str(site / "soc" / "__init__.py")
    assert out["config"] == str(
        site / "soc" / "model_zoo" / "configs" / "ref_ytvos" / "soc_swin_t_joint.yaml"
    )
    assert (out["embed_dim"], out["clip_length"], out["clip_value"]) == (128, 36, 0.1)
    assert out["backend"] == "cpu_kernel"
    assert "--meta-expressions" in out["helps"]["soc-eval-jf"]
    assert "--allow-partial" in out["helps"]["soc-convert-checkpoint"]
    assert "--expressions" in out["helps"]["soc-demo"]
