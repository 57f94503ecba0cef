"""Readers for the on-disk formats of the four RVOS benchmarks (and RefCOCO), shared by the mappers, the
evaluators and the folder evaluation of ``tools/eval_jf.py``; the formats are described in
``docs/formats_and_metrics.md``.

Every reader raises :class:`DataError` (or ``FileNotFoundError``) with the offending file in the message:
a bad file never turns into a silently wrong sample.

Mask sources (a record's ``annotations`` dict, see ``datasets/README.md``):

- ``{"type": "png", "files": [path per frame]}``: palette PNGs, value = object id
  (Ref-YouTube-VOS, Ref-DAVIS17);
- ``{"type": "a2d_h5", "file": path}``: one A2D-Sentences ``.h5`` of the annotated frame;
- ``{"type": "jhmdb_mat", "file": path, "frame": int}``: ``puppet_mask.mat`` and the 0-based annotated frame;
- ``{"type": "coco", "segmentation": polygons | RLE, "height": int, "width": int}``: RefCOCO;
- ``{"type": "mevis_rle", "file": mask_dict.json, "anno_ids": [str]}``: MeViS / ReVOS, the union of the
  ``anno_ids``' COCO RLEs; an empty list is an expression that refers to nothing.
"""

from __future__ import annotations

import logging
import os
from types import ModuleType
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from soc.utils.video_io import WIDE_GREY_MODES, image_to_rgb

__all__ = [
    "DataError",
    "davis_palette",
    "read_image",
    "read_palette_png",
    "read_binary_png",
    "read_single_channel_png",
    "check_same_size",
    "read_masks",
    "read_other_object_masks",
    "has_ground_truth",
    "may_refer_to_nothing",
    "read_video_window",
    "centered_window",
    "normalize_expression",
    "import_h5py",
]

logger = logging.getLogger(__name__)


class DataError(RuntimeError):
    """A dataset file is missing, unreadable or inconsistent; the message names the file."""


def davis_palette() -> List[int]:
    """The PASCAL-VOC / DAVIS colour map as a flat list of 768 ints (index k -> RGB of k).

    Built from the bits of the index: bit j of k goes to bit (7 - j//3) of channel j % 3.
    """
    palette = []
    for k in range(256):
        rgb = [0, 0, 0]
        c = k
        for shift in range(7, -1, -1):
            for ch in range(3):
                rgb[ch] |= ((c >> ch) & 1) << shift
            c >>= 3
        palette.extend(rgb)
    return palette


def normalize_expression(text: str) -> str:
    """Lower-case and collapse whitespace, as MTTR and ReferFormer do before tokenisation."""
    return " ".join(text.lower().split())


def _decode(path: str, kind: str, convert: Callable[[Image.Image], np.ndarray]) -> np.ndarray:
    """Open ``path`` with PIL, decode it fully and ``convert`` it to an array.

    Raises ``FileNotFoundError`` for a missing file and :class:`DataError` for an undecodable one, both naming
    the file (``kind`` says what it is: "frame", "annotation", "mask").
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{kind} file missing: {path}")
    try:
        with Image.open(path) as img:
            img.load()  # decode now: a truncated or corrupt file fails here, not later
            return convert(img)
    except (OSError, ValueError, SyntaxError) as e:
        raise DataError(f"cannot decode {kind} {path}: {e}") from e


def read_image(path: str) -> np.ndarray:
    """Read a frame file (JPEG/PNG) as uint8 RGB ``(H, W, 3)``; 16-bit grey frames are scaled to 8 bits
    (``round(v / 257)``), not clipped.

    Raises ``FileNotFoundError`` for a missing file and :class:`DataError` for an undecodable one.
    """
    return _decode(path, "frame", image_to_rgb)


def read_palette_png(path: str) -> np.ndarray:
    """Read an annotation PNG as its uint8 index map ``(H, W)``.

    Palette ('P') and 8-bit greyscale ('L') images are read as stored values. Colour images are rejected:
    converting them to grey would turn palette colours into luminance (DAVIS index 1 -> 38).
    """

    def index_map(img: Image.Image) -> np.ndarray:
        if img.mode not in ("P", "L"):
            raise DataError(f"annotation {path} has mode {img.mode!r}; expected a palette ('P') or 'L' PNG")
        return np.array(img, dtype=np.uint8)

    return _decode(path, "annotation", index_map)


def read_binary_png(path: str) -> np.ndarray:
    """Read a mask PNG as bool ``(H, W)``: any non-zero value, in any channel, is foreground.

    This reads the 0/255 ``L`` PNGs of a Ref-YouTube-VOS submission and binary ground truth alike.
    """

    def foreground(img: Image.Image) -> np.ndarray:
        arr = np.array(img)
        return arr.any(axis=-1) if arr.ndim == 3 else arr > 0

    return _decode(path, "mask", foreground)


def read_single_channel_png(path: str) -> np.ndarray:
    """Read a single-channel PNG (0 / non-zero, palette indices, or 16-bit grey) as bool ``(H, W)``,
    non-zero = foreground.

    Another image format, a colour PNG or an undecodable file raises :class:`DataError` naming the file.
    """

    def foreground(img: Image.Image) -> np.ndarray:
        if img.format != "PNG":
            raise DataError(f"{path} is a {img.format} file, not a PNG")
        if img.mode not in ("1", "L", "P") + WIDE_GREY_MODES:
            raise DataError(f"{path} has mode {img.mode!r}, not a single channel")
        return np.array(img) > 0

    return _decode(path, "mask", foreground)


def check_same_size(
    arrays: Sequence[np.ndarray], files: Sequence[str], kind: str, size: Optional[Tuple[int, int]] = None
) -> None:
    """Raise :class:`DataError` naming the first of ``files`` whose array is not ``size`` ``(H, W)``.

    Args:
        arrays: per-frame arrays ``(H, W, ...)`` read from ``files`` (same order).
        kind: what they are, for the message ("frame", "annotation").
        size: the expected ``(H, W)`` (the video's frame size); default that of the first array.
    """
    expected = tuple(arrays[0].shape[:2]) if size is None else tuple(int(v) for v in size)
    source = f"as {files[0]}" if size is None else "(the frame size)"
    for array, path in zip(arrays, files):
        if tuple(array.shape[:2]) != expected:
            raise DataError(
                f"{kind} {path} is {tuple(array.shape[:2])} (H, W), expected {expected} {source}: all "
                f"{kind}s of a video must have one size"
            )


def centered_window(center: int, num_frames: int, window: int) -> List[int]:
    """0-based indices of ``window`` consecutive frames around ``center``, clamped to ``[0, num_frames-1]``.

    Indices ``center - window//2 ... center + (window+1)//2 - 1``, so the centre sits at position
    ``window//2``; indices outside the video repeat its first or last frame (the A2D/JHMDB window rule of
    MTTR, ``docs/formats_and_metrics.md`` §3.3). A2D frame 28 (1-based, so centre 27) with window 8 gives
    23..30.
    """
    if not 0 <= center < num_frames:
        raise ValueError(f"centre frame {center} outside a video of {num_frames} frames")
    start = center - window // 2
    return [min(max(i, 0), num_frames - 1) for i in range(start, start + window)]


def read_video_window(path: str, center: int, window: int) -> tuple:
    """Decode the centred window (:func:`centered_window`) around the 0-based frame ``center`` of a video
    file with PyAV.

    Frames are counted in presentation order from 0, as ``torchvision.io.read_video`` counted them. Only
    frames up to the last index needed are decoded when the container states its frame count.

    Returns:
        (frames uint8 ``(window, H, W, 3)`` RGB, list of the window's 0-based indices, number of frames).
    """
    import av

    if not os.path.isfile(path):
        raise FileNotFoundError(f"video file missing: {path}")
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            total = int(stream.frames or 0)
            last_needed = None
            if total > 0 and center < total:
                last_needed = max(centered_window(center, total, window))
            decoded = []
            for frame in container.decode(stream):
                decoded.append(frame.to_ndarray(format="rgb24"))
                if last_needed is not None and len(decoded) > last_needed:
                    break
            else:
                total = len(decoded)  # decoded everything: the true count
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise DataError(f"cannot decode video {path}: {e}") from e
    if center >= total:
        raise DataError(f"annotated frame {center + 1} (1-based) is beyond the {total} frames of {path}")
    indices = centered_window(center, total, window)
    if max(indices) >= len(decoded):  # the container over-stated its length
        total = len(decoded)
        if center >= total:
            raise DataError(f"annotated frame {center + 1} (1-based) is beyond the {total} frames of {path}")
        indices = centered_window(center, total, window)
    return np.stack([decoded[i] for i in indices]), indices, total


# ------------------------------------------------------------------------------------------------ masks
def import_h5py() -> ModuleType:
    """The ``h5py`` module, which only A2D-Sentences' HDF5 annotations need: an optional dependency (the
    ``a2d`` extra); without it, an ``ImportError`` that says what to install."""
    try:
        import h5py
    except ImportError as e:
        raise ImportError(
            "A2D-Sentences annotations are HDF5 files and need h5py: pip install 'soc-detectron2[a2d]' "
            "(or pip install h5py)"
        ) from e
    return h5py


def _read_a2d_instance_mask(path: str, instance_id: int) -> np.ndarray:
    h5py = import_h5py()

    if not os.path.isfile(path):
        raise FileNotFoundError(f"A2D annotation missing: {path}")
    try:
        with h5py.File(path, "r") as f:
            instances = [int(v) for v in np.asarray(f["instance"]).reshape(-1)]
            masks = np.asarray(f["reMask"])
    except (OSError, KeyError, ValueError) as e:
        raise DataError(f"cannot read A2D annotation {path}: {e}") from e
    if masks.ndim == 2:  # a single instance is stored 2-D
        masks = masks[None]
    if masks.shape[0] != len(instances):
        raise DataError(f"{path}: reMask holds {masks.shape[0]} masks for {len(instances)} instances")
    if instance_id not in instances:
        raise DataError(
            f"{path}: instance {instance_id} is not annotated in this frame (instances {instances})"
        )
    if instances.count(instance_id) > 1:  # EadxBPmQvtg frame 25: the references take the first occurrence
        logger.warning(
            "%s: instance %d occurs %d times; using the first",
            path,
            instance_id,
            instances.count(instance_id),
        )
    return masks[instances.index(instance_id)].T > 0  # stored transposed (W, H)


def mat_read_errors() -> tuple:
    """What ``scipy.io`` raises on a damaged .mat file (MatReadError, or IndexError on a very short one)."""
    from scipy.io.matlab import MatReadError

    return (MatReadError, OSError, KeyError, ValueError, TypeError, IndexError, EOFError)


def _read_jhmdb_mask(path: str, frame: int) -> np.ndarray:
    import scipy.io

    if not os.path.isfile(path):
        raise FileNotFoundError(f"JHMDB puppet mask missing: {path}")
    try:
        part_mask = scipy.io.loadmat(path)["part_mask"]
    except mat_read_errors() as e:
        raise DataError(f"cannot read JHMDB puppet mask {path}: {e}") from e
    if part_mask.ndim != 3:
        raise DataError(f"{path}: part_mask has shape {part_mask.shape}; expected (H, W, T)")
    if not 0 <= frame < part_mask.shape[2]:
        raise DataError(f"{path}: frame {frame + 1} (1-based) has no mask ({part_mask.shape[2]} masks)")
    return part_mask[:, :, frame] > 0


def _decode_coco_segmentation(seg, height: int, width: int) -> np.ndarray:
    from pycocotools import mask as mask_util

    if isinstance(seg, list):  # polygons
        rles = mask_util.frPyObjects(seg, height, width)
        rle = mask_util.merge(rles)
    elif isinstance(seg, dict) and isinstance(seg.get("counts"), list):  # uncompressed RLE
        rle = mask_util.frPyObjects(seg, height, width)
    else:
        rle = seg
    return mask_util.decode(rle).astype(bool)


def read_masks(record: dict, frames: Optional[Sequence[int]] = None) -> np.ndarray:
    """Ground-truth masks of the referred object(s) of a record (or of a mapper output carrying the same
    keys).

    Args:
        record: a dataset record with ``obj_ids`` and ``annotations`` (see the module docstring).
        frames: for per-frame sources (PNG, MeViS RLE, Long-RVOS), 0-based indices into
            ``record["file_names"]`` (default: every frame).
            A2D/JHMDB/RefCOCO sources have the annotated frame only and ignore it.

    Returns:
        bool ``(T, H, W)``: per frame, the union of the masks of ``obj_ids`` (all-False where absent).
        For A2D, JHMDB and RefCOCO, ``T = 1`` (the annotated frame / the image). PNGs of another size than
        the record's ``height``, ``width`` (or, without them, than the first PNG read) raise
        :class:`DataError`.
    """
    ann = record.get("annotations")
    if not has_ground_truth(record):
        raise DataError(f"record {record.get('video_id')}/{record.get('exp_id')} has no ground truth")
    kind = ann["type"]
    if kind == "mevis_rle":
        from .datasets.mevis import read_mevis_masks

        return read_mevis_masks(record, frames)
    if kind == "long_rvos":
        from .datasets.long_rvos import read_long_rvos_masks

        return read_long_rvos_masks(record, frames=frames)
    obj_ids = [int(o) for o in record["obj_ids"]]
    if kind == "png":
        files = ann["files"]
        idx: Iterable[int] = range(len(files)) if frames is None else frames
        paths = [files[i] for i in idx]
        masks = [np.isin(read_palette_png(p), obj_ids) for p in paths]
        size = (record["height"], record["width"]) if record.get("height") is not None else None
        check_same_size(masks, paths, "annotation", size)
        return np.stack(masks)
    if kind == "a2d_h5":
        masks = [_read_a2d_instance_mask(ann["file"], o) for o in obj_ids]
        return np.logical_or.reduce(masks)[None]
    if kind == "jhmdb_mat":
        return _read_jhmdb_mask(ann["file"], int(ann["frame"]))[None]
    if kind == "coco":
        return _decode_coco_segmentation(ann["segmentation"], int(ann["height"]), int(ann["width"]))[None]
    raise DataError(f"unknown annotation type {kind!r} in record {record.get('video_id')}")


def read_other_object_masks(record: dict, frames: Sequence[int]) -> np.ndarray:
    """Masks of the objects of a record's video that it does not refer to, in the given frames.

    Only palette-PNG sources (Ref-YouTube-VOS, Ref-DAVIS17, SynthRVOS) annotate every object of a video in one
    file per frame; the other sources raise :class:`DataError`.

    Args:
        record: a dataset record with ``obj_ids`` and ``annotations`` of type ``png``.
        frames: 0-based indices into ``record["file_names"]``.

    Returns:
        bool ``(I, T, H, W)``: one mask sequence per object id found in those frames' PNGs, other than 0
        (background), 255 (DAVIS's void label) and the record's ``obj_ids``, in increasing id order.
    """
    ann = record.get("annotations") or {}
    if ann.get("type") != "png":
        raise DataError(
            f"record {record.get('video_id')}/{record.get('exp_id')}: the other objects of a video are read "
            f"from palette PNGs only, not from {ann.get('type')!r} annotations (INPUT.ALL_OBJECT_TARGETS)"
        )
    paths = [ann["files"][i] for i in frames]
    maps = [read_palette_png(p) for p in paths]
    size = (record["height"], record["width"]) if record.get("height") is not None else None
    check_same_size(maps, paths, "annotation", size)
    labels = np.stack(maps)  # T, H, W
    ids = np.setdiff1d(np.unique(labels), [0, 255, *(int(o) for o in record["obj_ids"])])
    return labels[None] == ids[:, None, None, None]


def may_refer_to_nothing(record: dict) -> bool:
    """Whether the record's format has expressions whose target is absent from every frame (MeViS v2 and
    ReVOS no-target expressions, or an object that is never visible): their ground truth is then all-empty
    rather than an error."""
    return (record.get("annotations") or {}).get("type") == "mevis_rle"


def has_ground_truth(record: dict) -> bool:
    """Whether :func:`read_masks` can give the record's masks: a mask source and referred objects, or a
    mask source whose expressions may refer to nothing (:func:`may_refer_to_nothing`)."""
    return bool(record.get("annotations")) and (bool(record.get("obj_ids")) or may_refer_to_nothing(record))


def mask_source_name(record: dict, frame: Optional[int] = None) -> str:
    """The file a record's mask for ``frame`` comes from (for error messages)."""
    ann = record.get("annotations") or {}
    if ann.get("type") == "png":
        files = ann["files"]
        return files[frame] if frame is not None else os.path.dirname(files[0])
    return str(ann.get("file", f"{ann.get('type')} annotation of {record.get('video_id')}"))
