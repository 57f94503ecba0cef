"""Mapper for Ref-YouTube-VOS / Ref-DAVIS17 records (and RefCOCO images as one-frame clips).

Training window (documented choice): a random window of ``INPUT.SAMPLING_FRAME_NUM`` consecutive listed
frames that contains an anchor frame in which the referred object is visible. The anchor is drawn uniformly
from the object's annotated frames (``meta.json``'s ``frames``, when the dataset lists them) or from all
frames; if the window's masks are then empty, the anchor is redrawn among the frames whose masks show the
object. So windows in which the object is invisible in every frame are never produced (MTTR drops those
windows), and an object that is in no mask at all is an error, except in formats whose expressions may refer
to nothing (MeViS v2 and ReVOS no-target expressions, :func:`~soc.data.io.may_refer_to_nothing`): their clip
is a plain window around a random frame with empty targets in every frame (``is_visible`` all False), which
teaches the model to score every query "absent". Videos shorter than the window are padded by repeating their
last frame (MTTR); a record with a single frame (an image) gives a one-frame clip.

A group of one video's records (``DATALOADER.EXPRESSIONS_PER_CLIP`` ≠ 1) gives one clip for several of its
expressions: up to that many, drawn at random each time; the window is chosen for the first as above, and the
others are kept if their object is visible in it after the augmentation (``expressions`` and one ``targets``
dict per kept expression).

``INPUT.ALL_OBJECT_TARGETS`` adds the video's other annotated objects that the training clip shows as further
target trajectories after the referred one (palette-PNG sources only), for the unreferred queries' masks and
boxes.

Inference: the whole video, resized with ``INPUT.MIN/MAX_SIZE_TEST``, without targets; for a record or for a
group of one video's records (``expressions``, :func:`soc.data.build.group_expressions`), whose frames are
then read once for all of its expressions.
"""

from __future__ import annotations

import logging
from typing import List, Optional

import numpy as np
from detectron2.config import CfgNode, configurable
from detectron2.data import transforms as T

from ..groups import make_group, ungroup
from ..io import (
    DataError,
    has_ground_truth,
    mask_source_name,
    may_refer_to_nothing,
    read_masks,
    read_other_object_masks,
)
from .clip_utils import (
    build_clip_augmentation,
    check_mask_size,
    clip_input,
    masks_to_targets,
    read_frames,
    sample_window,
    stack_targets,
)

__all__ = ["RefVOSMapper"]

logger = logging.getLogger(__name__)

# record keys the mapper rewrites; everything else passes through to the model input untouched
_REWRITTEN = ("file_names", "frame_names", "expression", "height", "width", "obj_frames")


class RefVOSMapper:
    """Record -> model input dict (``frames``, ``expression``, ...; see ``DEVELOPERS.md``, "Model input").

    Training: a clip of ``sampling_frame_num`` frames around a frame that shows the referred object, with
    ``frame_indices`` and ``targets``. Inference: every frame of the video, no targets; ``obj_ids`` and
    ``annotations`` pass through, so an evaluator reads ground truth with ``read_masks(input)``. A group of
    records gives one input with ``expressions`` (E str) and its ``exp_ids`` and ``per_expression`` lists.
    """

    @configurable
    def __init__(
        self,
        *,
        is_train: bool,
        augmentations: List[T.Augmentation],
        sampling_frame_num: int,
        expressions_per_clip: int = 1,
        all_object_targets: bool = False,
        max_aug_tries: int = 10,
    ):
        """
        Args:
            is_train: sample a training clip with targets, or map the whole video for inference.
            augmentations: sampled once per clip, applied to every frame and mask.
            sampling_frame_num: frames per training clip (T); unused for inference.
            expressions_per_clip: in training, at most this many expressions of a group are drawn per clip
                (0 = all of them).
            all_object_targets: in training, every other object visible in the clip becomes a trajectory
                of the targets besides the referred one (``referred_idx`` 0): their masks and boxes are
                supervised too, while the class and contrastive losses still single out the referred object.
                False keeps the referred object only (the authors').
            max_aug_tries: training crops that hide the object are resampled this many times before the
                mapper returns None (detectron2 then tries another record).
        """
        self.is_train = is_train
        self.augmentations = T.AugmentationList(augmentations)
        self.sampling_frame_num = sampling_frame_num
        self.expressions_per_clip = expressions_per_clip
        self.all_object_targets = all_object_targets
        self.max_aug_tries = max_aug_tries

    @classmethod
    def from_config(cls, cfg: CfgNode, is_train: bool = True) -> dict:
        return {
            "is_train": is_train,
            "augmentations": build_clip_augmentation(cfg, is_train),
            "sampling_frame_num": cfg.INPUT.SAMPLING_FRAME_NUM,
            "expressions_per_clip": cfg.DATALOADER.EXPRESSIONS_PER_CLIP,
            "all_object_targets": cfg.INPUT.ALL_OBJECT_TARGETS,
        }

    def __call__(self, record: dict) -> Optional[dict]:
        """Map one record (or, for inference, a group). Returns None only in training, when every crop hid
        the object."""
        if not self.is_train:
            return self._test_clip(record)
        if "expressions" not in record:
            return self._train_clip(record)
        members = ungroup(record)
        order = np.random.permutation(len(members))[: self.expressions_per_clip or None]
        return self._train_clip(members[order[0]], [members[i] for i in order[1:]])

    def _anchor(self, record: dict, num_frames: int) -> int:
        names = record.get("obj_frames")
        if names:
            pos = {n: i for i, n in enumerate(record["frame_names"])}
            candidates = [pos[n] for n in names if n in pos]
            if candidates:
                return int(candidates[np.random.randint(len(candidates))])
        return int(np.random.randint(num_frames))

    def _train_clip(self, record: dict, others: Optional[List[dict]] = None) -> Optional[dict]:
        """A training clip for ``record``; with ``others`` (records of the same video, maybe empty) a group
        input for ``record`` and those of ``others`` whose object the clip shows."""
        if not has_ground_truth(record):
            raise DataError(f"training record {record['video_id']}/{record['exp_id']} has no ground truth")
        files = record["file_names"]
        n = len(files)
        length = 1 if n == 1 else self.sampling_frame_num
        indices = sample_window(n, length, self._anchor(record, n))
        masks = read_masks(record, indices)
        no_target = False
        if not masks.any():
            visible = np.flatnonzero(read_masks(record).any(axis=(1, 2)))
            no_target = len(visible) == 0 and may_refer_to_nothing(record)
            if len(visible) == 0 and not no_target:
                raise DataError(
                    f"expression {record['video_id']}/{record['exp_id']} ({record['expression']!r}) "
                    f"refers to object(s) {record['obj_ids']}, which appear in no mask under "
                    f"{mask_source_name(record)}"
                )
            if not no_target:
                indices = sample_window(n, length, int(visible[np.random.randint(len(visible))]))
                masks = read_masks(record, indices)
        frames = read_frames(files, indices)
        check_mask_size(record, masks, frames[0].shape, indices, files[indices[0]])

        for _ in range(self.max_aug_tries):
            tfm = self.augmentations(T.AugInput(frames[0]))
            targets = masks_to_targets(masks, tfm)
            if no_target or targets["is_visible"].any():
                break
        else:
            return None
        targets = self._with_other_objects(record, indices, tfm, targets)
        if others is not None:
            members, all_targets = [record], [targets]
            for other in others:
                other_targets = masks_to_targets(read_masks(other, indices), tfm)
                if other_targets["is_visible"].any():
                    members.append(other)
                    all_targets.append(self._with_other_objects(other, indices, tfm, other_targets))
            record, targets = make_group(members), all_targets
        out = clip_input(record, _REWRITTEN, frames, tfm)
        out.update(
            {
                "file_names": [files[i] for i in indices],
                "frame_names": [record["frame_names"][i] for i in indices],
                "frame_indices": list(indices),
                "targets": targets,
            }
        )
        return out

    def _with_other_objects(self, record: dict, indices: List[int], tfm: T.Transform, targets: dict) -> dict:
        """``targets`` of the referred object, with ``all_object_targets`` stacked with those of the video's
        other objects that are visible in the transformed clip."""
        if not self.all_object_targets:
            return targets
        others = [masks_to_targets(m, tfm) for m in read_other_object_masks(record, indices)]
        return stack_targets([targets] + [t for t in others if t["is_visible"].any()])

    def _test_clip(self, record: dict) -> dict:
        files = record["file_names"]
        frames = read_frames(files, list(range(len(files))))
        height, width = frames[0].shape[:2]
        if record.get("height") is not None and (record["height"], record["width"]) != (height, width):
            raise DataError(
                f"frame {files[0]} is {(height, width)}, the annotation file says "
                f"{(record['height'], record['width'])}"
            )
        tfm = self.augmentations(T.AugInput(frames[0]))
        out = clip_input(record, _REWRITTEN, frames, tfm)
        out.update({"file_names": list(files), "frame_names": list(record["frame_names"])})
        return out
