"""Hungarian matching between query slots and ground-truth object trajectories (one assignment per video)."""

from typing import Dict, List, Mapping, Sequence, Tuple

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn

from .losses import cxcywh_generalized_box_iou, dice_coefficient, focal_class_cost
from .targets import Trajectories, as_trajectories, batch_mask_size, pad_masks

__all__ = ["HungarianTrajectoryMatcher"]


class HungarianTrajectoryMatcher(nn.Module):
    """One-to-one assignment of query slots (index ``n`` in every frame) to ground-truth trajectories.

    Cost of (query ``n``, trajectory ``i``) =
    ``cost_class`` C_cls + ``cost_dice`` C_dice + ``cost_bbox`` C_L1 + ``cost_giou`` C_giou, with

    - C_cls: :func:`focal_class_cost` of ``pred_cls`` (channel 0 when K = 1, else the trajectory's category at
      its first visible frame), averaged over the frames where the trajectory is visible (0 if it never is);
    - C_dice: ``-dice`` of the sigmoid masks, bilinearly upsampled (``align_corners=False``) to the target
      size, averaged over all frames;
    - C_L1, C_giou: L1 distance and ``-GIoU`` of the normalised cxcywh boxes, averaged over all frames (absent
      frames have a zero ground-truth box).

    ``scipy.optimize.linear_sum_assignment`` solves each video's ``(N, I)`` block.
    """

    @configurable
    def __init__(
        self,
        *,
        cost_class: float = 2.0,
        cost_dice: float = 5.0,
        cost_bbox: float = 2.0,
        cost_giou: float = 2.0,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
    ):
        """
        Args:
            cost_class, cost_dice, cost_bbox, cost_giou: weights of the four cost terms; 0 skips a term.
            focal_alpha, focal_gamma: parameters of the focal class cost.
        """
        super().__init__()
        assert max(cost_class, cost_dice, cost_bbox, cost_giou) > 0, "all matching costs are 0"
        self.cost_class = cost_class
        self.cost_dice = cost_dice
        self.cost_bbox = cost_bbox
        self.cost_giou = cost_giou
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma

    @classmethod
    def from_config(cls, cfg) -> Dict[str, float]:
        return {
            "cost_class": cfg.MODEL.SOC.MATCHER.COST_CLASS,
            "cost_dice": cfg.MODEL.SOC.MATCHER.COST_DICE,
            "cost_bbox": cfg.MODEL.SOC.MATCHER.COST_BBOX,
            "cost_giou": cfg.MODEL.SOC.MATCHER.COST_GIOU,
            "focal_alpha": cfg.MODEL.SOC.LOSS.FOCAL_ALPHA,
            "focal_gamma": cfg.MODEL.SOC.LOSS.FOCAL_GAMMA,
        }

    @torch.no_grad()
    def compute_costs(
        self, outputs: Mapping[str, Tensor], targets: Sequence[Mapping[str, Tensor]]
    ) -> List[Tensor]:
        """Matching cost of every (query, trajectory) pair, per video.

        Args:
            outputs: ``pred_cls`` ``(T, B, N, K)`` logits, ``pred_boxes`` ``(T, B, N, 4)`` normalised cxcywh,
                ``pred_masks`` ``(T, B, N, h, w)`` logits.
            targets: list over ``B`` of target dicts (see :func:`as_trajectories`) or of
                :class:`Trajectories`.
        Returns:
            list over ``B`` of ``(N, I_b)`` float tensors.
        """
        pred_masks = outputs["pred_masks"]
        T, B, N = pred_masks.shape[:3]
        assert len(targets) == B, f"{len(targets)} targets for a batch of {B}"
        trajs = [t if isinstance(t, Trajectories) else as_trajectories(t, pred_masks.device) for t in targets]
        size = batch_mask_size(trajs)
        costs = []
        for b, traj in enumerate(trajs):
            assert traj.masks.shape[1] == T, f"targets have {traj.masks.shape[1]} frames, predictions {T}"
            costs.append(self._video_cost(outputs, b, traj, size))
        return costs

    def _video_cost(self, outputs: Mapping[str, Tensor], b: int, traj: Trajectories, size) -> Tensor:
        pred_masks = outputs["pred_masks"][:, b]  # T, N, h, w
        T, N = pred_masks.shape[:2]
        cost = pred_masks.new_zeros(N, traj.num)
        if traj.num == 0:
            return cost
        if self.cost_class > 0:
            pred_cls = outputs["pred_cls"][:, b]  # T, N, K
            per_entry = focal_class_cost(pred_cls, self.focal_alpha, self.focal_gamma)
            if pred_cls.shape[-1] == 1:
                channel = torch.zeros(traj.num, dtype=torch.long, device=cost.device)
            else:
                first_visible = traj.visible.long().argmax(1)  # I; 0 when never visible (then unused)
                channel = traj.labels.gather(1, first_visible[:, None])[:, 0]
            per_traj = per_entry[:, :, channel]  # T, N, I
            vis = traj.visible.t().to(per_traj.dtype)  # T, I
            cost_cls = (per_traj * vis[:, None]).sum(0) / vis.sum(0).clamp(min=1)
            cost = cost + self.cost_class * cost_cls
        if self.cost_dice > 0:
            probs = F.interpolate(pred_masks, size=size, mode="bilinear", align_corners=False).sigmoid()
            gt = pad_masks(traj.masks, size).transpose(0, 1)  # T, I, H, W
            dice = dice_coefficient(probs.flatten(2), gt.flatten(2)).mean(0)  # N, I
            cost = cost + self.cost_dice * -dice
        pred_boxes = outputs["pred_boxes"][:, b]  # T, N, 4
        gt_boxes = traj.boxes.transpose(0, 1).to(pred_boxes.dtype)  # T, I, 4
        if self.cost_bbox > 0:
            cost = cost + self.cost_bbox * torch.cdist(pred_boxes, gt_boxes, p=1).mean(0)
        if self.cost_giou > 0:
            giou = cxcywh_generalized_box_iou(pred_boxes[:, :, None], gt_boxes[:, None]).mean(0)  # N, I
            cost = cost + self.cost_giou * -giou
        return cost

    @torch.no_grad()
    def forward(
        self, outputs: Mapping[str, Tensor], targets: Sequence[Mapping[str, Tensor]]
    ) -> List[Tuple[Tensor, Tensor]]:
        """Match each video's query slots to its trajectories.

        Args: as :meth:`compute_costs`.
        Returns:
            list over ``B`` of ``(query_idx, target_idx)`` int64 tensors of length ``min(N, I_b)``, query
            indices in increasing order.
        """
        indices = []
        for cost in self.compute_costs(outputs, targets):
            rows, cols = linear_sum_assignment(cost.cpu())
            indices.append(
                (
                    torch.as_tensor(rows, dtype=torch.int64, device=cost.device),
                    torch.as_tensor(cols, dtype=torch.int64, device=cost.device),
                )
            )
        return indices
