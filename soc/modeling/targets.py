"""Training targets as the matcher and the criterion read them: each clip's ground truth as trajectories.

The model's training input gives each clip's ``targets`` dict frame-major (see :func:`as_trajectories`); the
set criterion works per object trajectory, instance axis first. Masks of a batch are compared at one common
size, the largest padded input, with zero padding at the bottom and right.
"""

from typing import Mapping, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["Trajectories", "as_trajectories", "batch_mask_size", "pad_masks"]


class Trajectories(NamedTuple):
    """The ground truth of one clip as ``I`` object trajectories over ``T`` frames (instance axis first)."""

    masks: Tensor  # (I, T, H, W) bool
    boxes: Tensor  # (I, T, 4) normalised cxcywh, zeros where absent
    visible: Tensor  # (I, T) bool
    labels: Tensor  # (I, T) long category ids
    referred: int  # index of the referred trajectory; -1 when I == 0

    @property
    def num(self) -> int:
        return self.masks.shape[0]


def as_trajectories(target: Mapping[str, Tensor], device: Optional[torch.device] = None) -> Trajectories:
    """Read one clip's target dict (the model-input ``targets`` layout) as :class:`Trajectories`.

    One trajectory (SOC's case, the referred object) is the plain layout; several trajectories add an instance
    axis after time:

    - ``masks``: bool ``(T, H, W)`` or ``(T, I, H, W)``, at the padded input size;
    - ``boxes``: float ``(T, 4)`` or ``(T, I, 4)``, normalised cxcywh, zeros where absent;
    - ``is_visible``: bool ``(T,)`` or ``(T, I)`` (default: mask not empty);
    - ``labels`` (optional): long ``(T,)`` or ``(T, I)``, category ids (default 0; read only when K > 1);
    - ``referred_idx`` (optional): int, the trajectory the expression refers to (default 0). The class and
      contrastive losses supervise that trajectory only; masks and boxes supervise every matched one.

    ``I = 0`` (masks ``(T, 0, H, W)``) is a clip without any target.
    """
    masks = torch.as_tensor(target["masks"], device=device)
    if masks.dim() == 3:  # one trajectory
        masks = masks[:, None]
    T, I = masks.shape[:2]
    boxes = torch.as_tensor(target["boxes"], device=device).reshape(T, I, 4)
    if "is_visible" in target:
        visible = torch.as_tensor(target["is_visible"], device=device).reshape(T, I).bool()
    else:
        visible = masks.flatten(2).any(-1)
    if target.get("labels") is not None:
        labels = torch.as_tensor(target["labels"], device=device).reshape(T, I).long()
    else:
        labels = torch.zeros(T, I, dtype=torch.long, device=masks.device)
    referred = int(target.get("referred_idx", 0)) if I > 0 else -1
    return Trajectories(
        masks=masks.bool().transpose(0, 1),
        boxes=boxes.transpose(0, 1),
        visible=visible.transpose(0, 1),
        labels=labels.transpose(0, 1),
        referred=referred,
    )


def pad_masks(masks: Tensor, size: Tuple[int, int]) -> Tensor:
    """Zero-pad ``(..., H, W)`` masks at the bottom/right to ``size`` (the batch's largest padded input)."""
    pad_h, pad_w = size[0] - masks.shape[-2], size[1] - masks.shape[-1]
    if pad_h == 0 and pad_w == 0:
        return masks
    return F.pad(masks, (0, pad_w, 0, pad_h))


def batch_mask_size(trajs: Sequence[Trajectories]) -> Tuple[int, int]:
    """Largest ``(H, W)`` of the target masks of a batch."""
    return max(t.masks.shape[-2] for t in trajs), max(t.masks.shape[-1] for t in trajs)
