#!/usr/bin/env python
"""Installs SOC (distribution ``soc-detectron2``, import name ``soc``) and builds ``soc._C`` (multi-scale
deformable attention) from ``csrc/``.

The CPU kernel is always built. The CUDA kernel is built too when a CUDA toolkit is found (``CUDA_HOME``)
or when ``FORCE_CUDA=1``, unless ``SOC_SKIP_CUDA=1`` (CPU-only builds for quick iteration); without a
visible GPU the target architectures default to sm_80 and sm_90 (override with ``TORCH_CUDA_ARCH_LIST``).

``projects/SOC/configs`` is linked into the package as ``soc/model_zoo/configs`` and shipped as package data
(``soc.model_zoo.get_config``). Extras: ``a2d`` (h5py, for A2D-Sentences' HDF5 annotations), ``app`` (gradio).
"""

import glob
import os
import re
import shutil
from typing import List

from setuptools import find_packages, setup

ROOT = os.path.dirname(os.path.abspath(__file__))


def _resolve_cuda_home() -> None:
    """Sets ``CUDA_HOME`` when the ``nvcc`` on PATH is a wrapper script around a toolkit elsewhere.

    torch guesses the toolkit as the parent of nvcc's folder, which is wrong for a wrapper (e.g. a script in
    /usr/local/bin that runs /usr/local/cuda-13.0/bin/nvcc) and then fails at link time (no libcudart).
    """
    nvcc = shutil.which("nvcc")
    if os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or nvcc is None:
        return
    with open(nvcc, "rb") as f:
        head = f.read(4096)
    if not head.startswith(b"#!"):
        return  # a real nvcc binary: torch's guess is right
    match = re.search(rb"(/[^\s\"']*)/bin/nvcc", head)
    if match is not None:
        os.environ["CUDA_HOME"] = match.group(1).decode()


_resolve_cuda_home()

import torch  # noqa: E402  (after CUDA_HOME is settled: cpp_extension reads it on import)
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension  # noqa: E402


def _readme() -> str:
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return f.read()


def _version() -> str:
    with open(os.path.join(ROOT, "soc", "__init__.py")) as f:
        for line in f:
            if line.startswith("__version__"):
                return line.split("=")[1].strip().strip("\"'")
    raise RuntimeError("soc/__init__.py has no __version__")


def link_model_zoo_configs() -> List[str]:
    """Links ``projects/SOC/configs`` into the package as ``soc/model_zoo/configs`` (a copy where symlinks are
    unavailable) and returns its YAML files relative to ``soc/model_zoo``, the package data.

    The link is remade on every build so that a stale copy never ships; an sdist, which has no ``projects/``,
    carries the files themselves.
    """
    source = os.path.join(ROOT, "projects", "SOC", "configs")
    package = os.path.join(ROOT, "soc", "model_zoo")
    target = os.path.join(package, "configs")
    if os.path.isdir(source):
        if os.path.islink(target):
            os.unlink(target)
        elif os.path.isdir(target):
            shutil.rmtree(target)
        try:
            os.symlink(os.path.relpath(source, package), target, target_is_directory=True)
        except OSError:  # e.g. Windows without the symlink privilege
            shutil.copytree(source, target)
    files = glob.glob(os.path.join(target, "**", "*.yaml"), recursive=True)
    return sorted(os.path.relpath(f, package) for f in files)


def get_extensions():
    csrc = os.path.join("csrc")
    sources = sorted(glob.glob(os.path.join(csrc, "*.cpp")) + glob.glob(os.path.join(csrc, "*", "*.cpp")))
    cuda_sources = sorted(glob.glob(os.path.join(csrc, "*", "*.cu")))
    if not sources:
        return []
    extra_compile_args = {"cxx": ["-O3", "-fopenmp"]}
    define_macros = []
    extension = CppExtension
    force_cuda = os.environ.get("FORCE_CUDA", "0") == "1"
    skip_cuda = os.environ.get("SOC_SKIP_CUDA", "0") == "1"
    if not skip_cuda and ((CUDA_HOME is not None and torch.version.cuda is not None) or force_cuda):
        extension = CUDAExtension
        sources += cuda_sources
        define_macros += [("WITH_CUDA", None)]
        extra_compile_args["nvcc"] = [
            "-O3",
            "-DCUDA_HAS_FP16=1",
            "-D__CUDA_NO_HALF_OPERATORS__",
            "-D__CUDA_NO_HALF_CONVERSIONS__",
            "-D__CUDA_NO_HALF2_OPERATORS__",
        ]
        if not torch.cuda.is_available():
            os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0")
    return [
        extension(
            "soc._C",
            sources,
            include_dirs=[os.path.abspath(csrc)],
            define_macros=define_macros,
            extra_compile_args=extra_compile_args,
            extra_link_args=["-fopenmp"],
        )
    ]


setup(
    name="soc-detectron2",
    version=_version(),
    description=(
        "SOC: Semantic-assisted Object Cluster for referring video object segmentation (Detectron2 project)"
    ),
    long_description=_readme(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    license_files=["LICENSE"],
    packages=find_packages(exclude=("tests", "tests.*", "benchmarks", "tools", "projects")),
    package_data={"soc.model_zoo": link_model_zoo_configs()},
    python_requires=">=3.9",
    # detectron2 is a prerequisite installed separately (see README: official git route or sal-detectron2).
    install_requires=[
        "torch>=2.1",
        "torchvision>=0.16",
        "transformers>=4.31,<5",
        "huggingface_hub>=0.14",  # hf:// weights (also a dependency of transformers)
        "scipy",
        "pycocotools",
        "opencv-python-headless",
        "Pillow",
        "av",
        "tqdm",
        "matplotlib",
    ],
    extras_require={
        "a2d": ["h5py"],  # A2D-Sentences annotations are HDF5 files
        "app": ["gradio"],
    },
    entry_points={
        "console_scripts": [
            "soc-eval-jf = soc.cli.eval_jf:main",
            "soc-convert-checkpoint = soc.cli.convert_checkpoint:main",
            "soc-demo = soc.cli.demo:main",
        ]
    },
    ext_modules=get_extensions(),
    cmdclass={"build_ext": BuildExtension},
)
