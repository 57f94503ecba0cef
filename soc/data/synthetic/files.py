"""Deterministic file writers: the same arrays always give the same bytes (fixed encoder settings, no
timestamps)."""

from __future__ import annotations

import io
import json
import os
from typing import Sequence

import numpy as np
from PIL import Image

from ..io import davis_palette

__all__ = [
    "write_jpeg",
    "write_png_rgb",
    "write_palette_png",
    "write_binary_png",
    "write_json",
    "write_text",
    "write_mp4",
    "write_h5",
    "write_mat",
]

JPEG_QUALITY = 95
_PALETTE = davis_palette()


def _parent(path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)


def write_jpeg(path: str, rgb: np.ndarray) -> None:
    """Baseline JPEG, quality 95, no chroma subsampling, no EXIF."""
    _parent(path)
    Image.fromarray(rgb).save(path, format="JPEG", quality=JPEG_QUALITY, subsampling=0, optimize=False)


def write_png_rgb(path: str, rgb: np.ndarray) -> None:
    _parent(path)
    Image.fromarray(rgb).save(path, format="PNG", optimize=False)


def write_palette_png(path: str, index: np.ndarray) -> None:
    """8-bit palette PNG (mode 'P', DAVIS palette) whose pixel values are the indices."""
    _parent(path)
    img = Image.fromarray(index.astype(np.uint8))
    img.putpalette(_PALETTE)  # an 'L' image with a palette becomes 'P', values unchanged
    img.save(path, format="PNG", optimize=False)


def write_binary_png(path: str, mask: np.ndarray) -> None:
    """8-bit greyscale PNG (mode 'L') of a bool ``(H, W)`` mask: 255 = foreground, 0 = background."""
    _parent(path)
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(path, format="PNG", optimize=False)


def write_json(path: str, obj) -> None:
    _parent(path)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f)


def write_text(path: str, text: str, encoding: str = "utf-8") -> None:
    _parent(path)
    with open(path, "w", encoding=encoding, newline="") as f:
        f.write(text)


def write_mp4(path: str, frames: np.ndarray, fps: int = 24) -> None:
    """MPEG-4 Part 2 in an mp4 container via PyAV: intra-heavy, high quality, no B-frames (decode order =
    presentation order), one thread and bit-exact flags so that the bytes do not depend on the machine."""
    import av

    _parent(path)
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"mp4 frames must have even sides (yuv420p), got {h}x{w}")
    with av.open(path, mode="w", format="mp4", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.thread_count = 1
        stream.options = {"qmin": "1", "qmax": "3", "bf": "0", "g": "12", "flags": "+bitexact"}
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_h5(path: str, datasets: dict) -> None:
    """HDF5 file of plain datasets, without the modification times HDF5 records by default."""
    import h5py

    _parent(path)
    with h5py.File(path, "w", libver="earliest") as f:
        for name, value in datasets.items():
            f.create_dataset(name, data=value, track_times=False)


_MAT_HEADER = b"MATLAB 5.0 MAT-file, written by SynthRVOS (soc.data.synthetic)"


def write_mat(path: str, variables: dict) -> None:
    """MATLAB v5 file via ``scipy.io.savemat`` with its dated 116-byte text header replaced by a fixed one."""
    import scipy.io

    _parent(path)
    buf = io.BytesIO()
    scipy.io.savemat(buf, variables, do_compression=False)
    data = bytearray(buf.getvalue())
    data[:116] = _MAT_HEADER.ljust(116, b" ")
    with open(path, "wb") as f:
        f.write(bytes(data))


def tree_files(root: str) -> Sequence[str]:
    """Every file under ``root``, relative, sorted (for determinism checks)."""
    out = []
    for dirpath, _, names in os.walk(root):
        for n in names:
            out.append(os.path.relpath(os.path.join(dirpath, n), root))
    return sorted(out)
