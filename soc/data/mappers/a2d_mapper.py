"""Mapper for A2D-Sentences and JHMDB-Sentences records: the centred window around the annotated frame.

Window (``docs/formats_and_metrics.md`` §3.3, MTTR's rule; :func:`~soc.data.io.centered_window`): 0-based
indices ``c - w//2 ... c + (w+1)//2 - 1`` around the annotated frame c, clamped to the video; the annotated
frame sits at position ``w//2`` and is the only kept frame (``keep_frames``), the only one with targets.
``w`` is ``INPUT.SAMPLING_FRAME_NUM`` for training and ``INPUT.TEST_WINDOW`` for inference. A2D frames are
decoded from the mp4 with PyAV; JHMDB frames are PNGs. For inference the mapper also takes a group of the
records of one (video, annotated frame) (A2D: one per instance; :func:`soc.data.build.group_expressions`),
whose window is then decoded once for all of its expressions.
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np
import torch
from detectron2.config import CfgNode, configurable
from detectron2.data import transforms as T

from ..io import centered_window, read_masks, read_video_window
from .clip_utils import build_clip_augmentation, check_mask_size, clip_input, masks_to_targets, read_frames

__all__ = ["A2DMapper"]

_REWRITTEN = ("file_names", "frame_names", "expression", "height", "width")


class A2DMapper:
    """Record -> clip dict with ``frames`` ``(w, 3, H, W)``, ``keep_frames`` = [w//2] and, when training,
    ``targets`` for the kept frame only (``T' = 1``).

    Training and inference differ only through ``from_config``: window ``INPUT.SAMPLING_FRAME_NUM`` and the
    training augmentations, or window ``INPUT.TEST_WINDOW``, the test resize and no targets.
    """

    @configurable
    def __init__(self, *, is_train: bool, augmentations: List[T.Augmentation], window_size: int):
        """
        Args:
            is_train: add ``targets`` (``masks`` ``(1, H, W)``, ``boxes`` ``(1, 4)``, ``is_visible`` ``(1,)``
                of the annotated frame).
            augmentations: sampled once per clip, applied to every frame and to the mask.
            window_size: frames per window (w).
        """
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.window_size = window_size

    @classmethod
    def from_config(cls, cfg: CfgNode, is_train: bool = True) -> dict:
        return {
            "is_train": is_train,
            "augmentations": build_clip_augmentation(cfg, is_train),
            "window_size": cfg.INPUT.SAMPLING_FRAME_NUM if is_train else cfg.INPUT.TEST_WINDOW,
        }

    def _read_window(self, record: dict) -> Tuple[List[np.ndarray], List[int], List[str], List[str]]:
        """(frames uint8 ``(H, W, 3)``, their 0-based indices, file names, frame names) of the window."""
        center = int(record["annotated_frame"])
        if record.get("video_file"):  # A2D: frames inside the mp4
            frames, indices, _ = read_video_window(record["video_file"], center, self.window_size)
            frames = list(frames)
            file_names = [record["video_file"]] * len(indices)
            frame_names = [f"{i + 1:05d}" for i in indices]  # A2D frame numbers are 1-based
        else:  # JHMDB: one PNG per frame
            files = record["file_names"]
            indices = centered_window(center, len(files), self.window_size)
            frames = read_frames(files, indices)
            file_names = [files[i] for i in indices]
            frame_names = [record["frame_names"][i] for i in indices]
        return frames, indices, file_names, frame_names

    def __call__(self, record: dict) -> dict:
        """Map one record (or, for inference, a group of records that share the window)."""
        if self.is_train and "expressions" in record:
            raise ValueError(
                f"video {record.get('video_id')}: A2D/JHMDB training takes one expression per clip "
                "(DATALOADER.EXPRESSIONS_PER_CLIP must be 1)"
            )
        frames, indices, file_names, frame_names = self._read_window(record)
        keep = self.window_size // 2
        assert indices[keep] == record["annotated_frame"], (indices, record["annotated_frame"])
        tfm = self.augmentations(T.AugInput(frames[0]))
        out = clip_input(record, _REWRITTEN, frames, tfm)
        out.update(
            {
                "keep_frames": torch.tensor([keep], dtype=torch.long),
                "file_names": file_names,
                "frame_names": frame_names,
                "frame_indices": list(indices),
            }
        )
        if self.is_train:
            masks = read_masks(record)  # (1, h, w): the annotated frame
            check_mask_size(record, masks, frames[keep].shape, [indices[keep]], file_names[keep])
            out["targets"] = masks_to_targets(masks, tfm)
        return out
