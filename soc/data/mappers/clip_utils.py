"""Clip-level helpers shared by the mappers: augmentation list, the flip's word swap, frame reading, targets.

A clip is augmented without state: the transform is sampled once on the first frame
(``tfm = augs(T.AugInput(frames[0]))``) and that ``TransformList`` is applied to every frame and mask.
"""

from __future__ import annotations

import re
from typing import Dict, List, Sequence

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data import transforms as T
from fvcore.transforms.transform import HFlipTransform

from ..io import DataError, check_same_size, mask_source_name, normalize_expression, read_image

__all__ = [
    "swap_left_right",
    "build_clip_augmentation",
    "sample_window",
    "read_frames",
    "check_mask_size",
    "has_hflip",
    "frames_to_tensor",
    "masks_to_targets",
    "stack_targets",
    "inclusive_box",
    "clip_input",
]

_LEFT_RIGHT = re.compile(r"\b(left|right)", re.IGNORECASE)


def swap_left_right(text: str) -> str:
    """Swap the words "left" and "right" (also as word starts: "leftmost", "right-hand"), keeping their case.

    Matching at word starts only leaves "bright" or "upright" alone, unlike the references' plain
    substring replacement, which turns "bright" into "bleft".
    """

    def swap(m: "re.Match") -> str:
        word = m.group(0)
        new = "right" if word.lower() == "left" else "left"
        if word.isupper():
            return new.upper()
        if word[0].isupper():
            return new.capitalize()
        return new

    return _LEFT_RIGHT.sub(swap, text)


def build_clip_augmentation(cfg: CfgNode, is_train: bool) -> List[T.Augmentation]:
    """Augmentations of a clip: [random crop (``INPUT.CROP``, train)] + ResizeShortestEdge
    (``INPUT.MIN/MAX_SIZE_*``)
    + horizontal flip with probability ``INPUT.FLIP_PROB`` (train)."""
    augs: List[T.Augmentation] = []
    if is_train:
        if cfg.INPUT.CROP.ENABLED:
            augs.append(T.RandomCrop(cfg.INPUT.CROP.TYPE, cfg.INPUT.CROP.SIZE))
        augs.append(
            T.ResizeShortestEdge(
                cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN, cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING
            )
        )
        if cfg.INPUT.FLIP_PROB > 0:
            augs.append(T.RandomFlip(prob=cfg.INPUT.FLIP_PROB, horizontal=True, vertical=False))
    else:
        augs.append(T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST, "choice"))
    return augs


def sample_window(num_frames: int, length: int, anchor: int) -> List[int]:
    """A window of ``length`` consecutive frame indices that contains ``anchor``, uniformly among such
    windows.

    A video shorter than ``length`` gives all its frames, padded by repeating the last one (as MTTR does).
    """
    if num_frames <= length:
        return list(range(num_frames)) + [num_frames - 1] * (length - num_frames)
    lo, hi = max(0, anchor - length + 1), min(anchor, num_frames - length)
    start = int(np.random.randint(lo, hi + 1))
    return list(range(start, start + length))


def read_frames(file_names: Sequence[str], indices: Sequence[int]) -> List[np.ndarray]:
    """Decode the frames at ``indices`` (each file once) as uint8 RGB ``(H, W, 3)``; all must share one
    size."""
    cache: Dict[int, np.ndarray] = {}
    frames = []
    for i in indices:
        if i not in cache:
            cache[i] = read_image(file_names[i])
        frames.append(cache[i])
    check_same_size(frames, [file_names[i] for i in indices], "frame")
    return frames


def check_mask_size(
    record: dict, masks: np.ndarray, frame_shape: tuple, frame_indices: Sequence[int], frame_file: str
) -> None:
    """Raise DataError (naming both files) when the masks ``(T, h, w)`` do not match the frame size."""
    if masks.shape[1:] != tuple(frame_shape[:2]):
        ann = record.get("annotations") or {}
        source = mask_source_name(record, frame_indices[0] if ann.get("type") == "png" else None)
        raise DataError(
            f"mask {source} is {masks.shape[1:]} but frame {frame_file} is {tuple(frame_shape[:2])}"
        )


def has_hflip(tfm: T.TransformList) -> bool:
    """Whether a sampled transform flips horizontally (then "left"/"right" must be swapped)."""
    return any(isinstance(t, HFlipTransform) for t in tfm.transforms)


def frames_to_tensor(frames: Sequence[np.ndarray]) -> torch.Tensor:
    """List of ``(H, W, 3)`` uint8 -> uint8 tensor ``(T, 3, H, W)``."""
    return torch.from_numpy(np.ascontiguousarray(np.stack(frames).transpose(0, 3, 1, 2)))


def inclusive_box(mask: np.ndarray) -> np.ndarray:
    """xyxy of the inclusive pixel bounding box (x2 = last column, not last + 1), as the official datasets."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return np.array([cols[0], rows[0], cols[-1], rows[-1]], dtype=np.float64)


def masks_to_targets(masks: np.ndarray, tfm: T.Transform) -> Dict[str, torch.Tensor]:
    """Per-frame targets of the referred object after the clip transform.

    Args:
        masks: bool ``(T, h, w)`` at the original size.
        tfm: the clip's transform.

    Returns:
        ``masks`` bool ``(T, H, W)`` (transformed), ``boxes`` float ``(T, 4)`` normalised cxcywh of the
        transformed, unpadded frame (the inclusive box of the original mask, transformed and clipped; zeros
        where the object is not visible), ``is_visible`` bool ``(T,)``.
    """
    out_masks = np.stack([tfm.apply_segmentation(m.astype(np.uint8)) for m in masks]).astype(bool)
    h, w = out_masks.shape[1:]
    boxes = np.zeros((len(masks), 4), dtype=np.float32)
    visible = out_masks.any(axis=(1, 2))
    for t in np.flatnonzero(visible):
        x1, y1, x2, y2 = tfm.apply_box(inclusive_box(masks[t])[None])[0]
        x1, x2 = np.clip([x1, x2], 0, w)
        y1, y2 = np.clip([y1, y2], 0, h)
        boxes[t] = [(x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h]
    return {
        "masks": torch.from_numpy(out_masks),
        "boxes": torch.from_numpy(boxes),
        "is_visible": torch.from_numpy(visible),
    }


def stack_targets(per_object: Sequence[Dict[str, torch.Tensor]]) -> Dict[str, object]:
    """Targets of several objects of one clip (:func:`masks_to_targets` dicts, the referred object first) as
    one multi-trajectory target (:func:`soc.modeling.targets.as_trajectories`): ``masks`` bool
    ``(T, I, H, W)``, ``boxes`` ``(T, I, 4)``, ``is_visible`` ``(T, I)`` and ``referred_idx`` 0."""
    out: Dict[str, object] = {
        k: torch.stack([t[k] for t in per_object], dim=1) for k in ("masks", "boxes", "is_visible")
    }
    out["referred_idx"] = 0
    return out


def clip_input(
    record: dict, rewritten: Sequence[str], frames: Sequence[np.ndarray], tfm: T.Transform
) -> Dict[str, object]:
    """The model-input fields that every mapper fills alike (``DEVELOPERS.md``, "Model input").

    Args:
        record: the dataset record, or a group of records of one clip (``expressions``, see
            :func:`soc.data.build.group_expressions`); its keys other than ``rewritten`` pass through
            untouched.
        rewritten: the record keys the mapper replaces or drops.
        frames: the clip's frames, uint8 RGB ``(H, W, 3)`` at the original size.
        tfm: the clip's transform, applied to every frame.

    Returns:
        the pass-through keys, then ``frames`` uint8 ``(T, 3, H', W')`` (transformed), ``expression`` (a
        group: ``expressions``, E str) normalised, "left"/"right" swapped when ``tfm`` flips, and the original
        ``height``, ``width``; the mapper adds the rest.
    """
    height, width = frames[0].shape[:2]
    flip = has_hflip(tfm)

    def text(raw: str) -> str:
        expression = normalize_expression(raw)
        return swap_left_right(expression) if flip else expression

    out = {k: v for k, v in record.items() if k not in rewritten}
    if "expressions" in record:
        out["expressions"] = [text(e) for e in record["expressions"]]
    else:
        out["expression"] = text(record["expression"])
    out.update(
        {
            "frames": frames_to_tensor([tfm.apply_image(f) for f in frames]),
            "height": height,
            "width": width,
        }
    )
    return out
