"""SOC's set criterion: per-layer Hungarian matching, then mask, box, class and contrastive losses."""

import math
from typing import Dict, List, Mapping, Sequence, Tuple

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.utils import comm
from torch import Tensor, nn
from torchvision.ops import sigmoid_focal_loss

from .losses import contrastive_loss, cxcywh_generalized_box_iou, dice_loss, mask_focal_loss
from .matcher import HungarianTrajectoryMatcher
from .targets import Trajectories, as_trajectories, batch_mask_size, pad_masks

__all__ = ["SOCCriterion"]

# Names of the per-layer terms, in the authors' order; aux layer i adds the suffix f"_{i}".
LOSS_NAMES = ("loss_sigmoid_focal", "loss_dice", "loss_con", "loss_cls", "loss_bbox", "loss_giou")


def _matched_predictions(pred: Tensor, indices: Sequence[Tuple[Tensor, Tensor]]) -> Tensor:
    """Per-query predictions ``(T, B, N, ...)`` → those of the matched queries ``(M, T, ...)``, video by video
    in batch order (the order of the targets ``traj.<field>[target_idx]`` concatenated over the batch)."""
    return torch.cat([pred[:, b, q].transpose(0, 1) for b, (q, _) in enumerate(indices)])


class SOCCriterion(nn.Module):
    """Losses of SOC, computed on the last decoder layer and (deep supervision) on every earlier one.

    Each layer is matched on its own by :class:`HungarianTrajectoryMatcher`. With ``num_masks`` = number of
    (frame, trajectory) targets in the batch (averaged over processes, at least 1):

    - ``loss_sigmoid_focal``: sigmoid focal loss of each matched (trajectory, frame) mask, masks bilinearly
      upsampled to the target size, mean over pixels, summed, / num_masks;
    - ``loss_dice``: ``1 - (2 sum(pt) + 1) / (sum(p) + sum(t) + 1)`` per matched (trajectory, frame), summed,
      / num_masks;
    - ``loss_cls``: sigmoid focal loss over all ``T * N * K`` (frame, query, class) logits, target 1 only at
      the query matched to the referred trajectory, in the frames where it is visible (channel 0 when K = 1,
      else its category in that frame); summed, / num_masks;
    - ``loss_bbox``, ``loss_giou``: L1 and ``1 - GIoU`` of the matched queries' boxes over all frames (absent
      frames: zero ground-truth box), summed, / num_masks;
    - ``loss_con``: :func:`~soc.modeling.losses.contrastive_loss` of the video queries against the sentence
      feature, target = query matched to the referred trajectory.

    Mask and box losses include the frames where the object is absent (empty mask, zero box), as the authors'
    code does. A referred object absent from every frame (a MeViS no-target expression) keeps its matched
    query's empty-mask and zero-box terms, but has no class positive (every entry is "absent") and no
    contrastive target. A term whose weight is 0 is not computed and not returned.
    """

    @configurable
    def __init__(
        self,
        *,
        matcher: nn.Module,
        num_classes: int = 1,
        class_weight: float = 2.0,
        bbox_weight: float = 2.0,
        giou_weight: float = 2.0,
        dice_weight: float = 5.0,
        mask_focal_weight: float = 2.0,
        contrastive_weight: float = 1.0,
        contrastive_scale: str = "dim",
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        num_aux_layers: int = 2,
    ):
        """
        Args:
            matcher: called as ``matcher(layer_outputs, trajectories)`` (``trajectories``: list over B of
                :class:`~soc.modeling.targets.Trajectories`) -> list over B of ``(query_idx, target_idx)``.
            num_classes: K, channels of ``pred_cls``.
            class_weight, bbox_weight, giou_weight, dice_weight, mask_focal_weight, contrastive_weight: loss
                weights (``weight_dict``); 0 disables a term.
            contrastive_scale: ``"dim"`` divides the query embeddings by D (authors' code), ``"sqrt_dim"`` by
                sqrt(D) (paper).
            focal_alpha, focal_gamma: parameters of the mask and class focal losses.
            num_aux_layers: number of ``aux_outputs`` entries expected (0 = no deep supervision).
        """
        super().__init__()
        assert contrastive_scale in ("dim", "sqrt_dim"), f"unknown contrastive scale {contrastive_scale!r}"
        self.matcher = matcher
        self.num_classes = num_classes
        self.contrastive_scale = contrastive_scale
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.num_aux_layers = num_aux_layers
        base = {
            "loss_sigmoid_focal": mask_focal_weight,
            "loss_dice": dice_weight,
            "loss_con": contrastive_weight,
            "loss_cls": class_weight,
            "loss_bbox": bbox_weight,
            "loss_giou": giou_weight,
        }
        self.active_terms: Tuple[str, ...] = tuple(k for k in LOSS_NAMES if base[k] != 0)
        self.weight_dict: Dict[str, float] = {k: base[k] for k in self.active_terms}
        for i in range(num_aux_layers):
            self.weight_dict.update({f"{k}_{i}": base[k] for k in self.active_terms})
        self.last_indices: List[List[Tuple[Tensor, Tensor]]] = []

    @classmethod
    def from_config(cls, cfg) -> dict:
        loss = cfg.MODEL.SOC.LOSS
        return {
            "matcher": HungarianTrajectoryMatcher(cfg),
            "num_classes": cfg.MODEL.SOC.NUM_CLASSES,
            "class_weight": loss.CLASS_WEIGHT,
            "bbox_weight": loss.BBOX_WEIGHT,
            "giou_weight": loss.GIOU_WEIGHT,
            "dice_weight": loss.DICE_WEIGHT,
            "mask_focal_weight": loss.MASK_FOCAL_WEIGHT,
            "contrastive_weight": loss.CONTRASTIVE_WEIGHT,
            "contrastive_scale": loss.CONTRASTIVE_SCALE,
            "focal_alpha": loss.FOCAL_ALPHA,
            "focal_gamma": loss.FOCAL_GAMMA,
            "num_aux_layers": cfg.MODEL.SOC.DECODER.DEC_LAYERS - 1 if loss.DEEP_SUPERVISION else 0,
        }

    def forward(
        self, outputs: Mapping[str, object], targets: Sequence[Mapping[str, Tensor]]
    ) -> Dict[str, Tensor]:
        """Raw (unweighted) losses; weight them with ``self.weight_dict``.

        Symbols: T frames, B clips, N queries, K classes, h x w mask logits (1/4 of the padded input),
        H x W target masks (padded input), D embedding width.

        Args:
            outputs: dict with ``pred_cls`` ``(T, B, N, K)`` logits, ``pred_boxes`` ``(T, B, N, 4)``
                normalised cxcywh, ``pred_masks`` ``(T, B, N, h, w)`` logits, ``pred_video_queries``
                ``(B, N, D)`` video-query embeddings and ``text_sentence_feature`` ``(B, D)`` (both only
                needed by ``loss_con``), and ``aux_outputs``: list of dicts with the same keys for the earlier
                decoder layers (read when ``num_aux_layers > 0``). Not modified.
            targets: list over B of target dicts (see :func:`soc.modeling.targets.as_trajectories`).
        Returns:
            dict of 0-d tensors, ``LOSS_NAMES`` for the last layer and ``f"{name}_{i}"`` for aux layer ``i``.
            ``self.last_indices`` keeps this call's matches (main layer first, then aux 0, 1, ...).
        """
        device = outputs["pred_masks"].device
        trajs = [as_trajectories(t, device) for t in targets]
        num_masks = self._num_masks(trajs, device)

        layers = [("", outputs)]
        if self.num_aux_layers > 0:
            aux = outputs.get("aux_outputs") or []
            assert (
                len(aux) == self.num_aux_layers
            ), f"expected {self.num_aux_layers} aux_outputs (DEC_LAYERS - 1), got {len(aux)}"
            layers += [(f"_{i}", a) for i, a in enumerate(aux)]

        losses: Dict[str, Tensor] = {}
        self.last_indices = []
        for suffix, layer_out in layers:
            indices = self.matcher(layer_out, trajs)
            self.last_indices.append(indices)
            layer_losses = self._layer_losses(layer_out, trajs, indices, num_masks)
            losses.update({k + suffix: v for k, v in layer_losses.items()})
        return losses

    @staticmethod
    def _num_masks(trajs: Sequence[Trajectories], device: torch.device) -> float:
        """(frame, trajectory) targets in the batch, averaged over processes, at least 1."""
        num = torch.as_tensor([float(sum(t.masks.shape[0] * t.masks.shape[1] for t in trajs))], device=device)
        world_size = comm.get_world_size()
        if world_size > 1:
            torch.distributed.all_reduce(num)
        return torch.clamp(num / world_size, min=1).item()

    def _layer_losses(
        self,
        out: Mapping[str, Tensor],
        trajs: Sequence[Trajectories],
        indices: Sequence[Tuple[Tensor, Tensor]],
        num_masks: float,
    ) -> Dict[str, Tensor]:
        terms = self.active_terms
        losses: Dict[str, Tensor] = {}
        if "loss_sigmoid_focal" in terms or "loss_dice" in terms:
            src, tgt = self._matched_masks(out["pred_masks"], trajs, indices)
            if "loss_sigmoid_focal" in terms:
                losses["loss_sigmoid_focal"] = mask_focal_loss(
                    src, tgt, num_masks, self.focal_alpha, self.focal_gamma
                )
            if "loss_dice" in terms:
                losses["loss_dice"] = dice_loss(src, tgt, num_masks)
        if "loss_con" in terms:
            losses["loss_con"] = self._contrastive(out, trajs, indices)
        if "loss_cls" in terms:
            losses["loss_cls"] = self._class_loss(out["pred_cls"], trajs, indices, num_masks)
        if "loss_bbox" in terms or "loss_giou" in terms:
            src_boxes = _matched_predictions(out["pred_boxes"], indices)  # M, T, 4
            tgt_boxes = torch.cat([traj.boxes[t] for traj, (_, t) in zip(trajs, indices)])  # M, T, 4
            src_boxes, tgt_boxes = src_boxes.flatten(0, 1), tgt_boxes.flatten(0, 1).to(src_boxes.dtype)
            if "loss_bbox" in terms:
                losses["loss_bbox"] = F.l1_loss(src_boxes, tgt_boxes, reduction="none").sum() / num_masks
            if "loss_giou" in terms:
                giou = cxcywh_generalized_box_iou(src_boxes, tgt_boxes)
                losses["loss_giou"] = (1 - giou).sum() / num_masks
        return losses

    @staticmethod
    def _matched_masks(
        pred_masks: Tensor, trajs: Sequence[Trajectories], indices: Sequence[Tuple[Tensor, Tensor]]
    ) -> Tuple[Tensor, Tensor]:
        """Matched mask logits upsampled to the batch's target size and their targets, ``(M*T, H*W)`` each."""
        size = batch_mask_size(trajs)
        src = _matched_predictions(pred_masks, indices)  # M, T, h, w
        src = F.interpolate(src.flatten(0, 1)[:, None], size=size, mode="bilinear", align_corners=False)
        tgt = torch.cat(
            [pad_masks(traj.masks[t], size) for traj, (_, t) in zip(trajs, indices)]
        )  # M, T, H, W
        return src.flatten(1), tgt.flatten(0, 1).flatten(1).to(src.dtype)

    @staticmethod
    def _referred_queries(
        trajs: Sequence[Trajectories], indices: Sequence[Tuple[Tensor, Tensor]]
    ) -> List[int]:
        """Per video, the query matched to the referred trajectory, or -1 (none matched, or the referred
        object is absent from every frame: a no-target expression, which no query should answer)."""
        queries = []
        for traj, (q, t) in zip(trajs, indices):
            hit = (t == traj.referred).nonzero()
            present = len(hit) > 0 and bool(traj.visible[traj.referred].any())
            queries.append(int(q[hit[0, 0]]) if present else -1)
        return queries

    def _class_loss(
        self,
        pred_cls: Tensor,
        trajs: Sequence[Trajectories],
        indices: Sequence[Tuple[Tensor, Tensor]],
        num_masks: float,
    ) -> Tensor:
        assert pred_cls.shape[-1] == self.num_classes, f"pred_cls has {pred_cls.shape[-1]} classes"
        target = torch.zeros_like(pred_cls)  # T, B, N, K
        for b, (traj, query) in enumerate(zip(trajs, self._referred_queries(trajs, indices))):
            if query < 0:
                continue
            frames = traj.visible[traj.referred].nonzero()[:, 0]
            if pred_cls.shape[-1] == 1:
                channels = torch.zeros_like(frames)
            else:
                channels = traj.labels[traj.referred, frames]
            target[frames, b, query, channels] = 1
        loss = sigmoid_focal_loss(
            pred_cls, target, alpha=self.focal_alpha, gamma=self.focal_gamma, reduction="none"
        )
        return loss.sum() / num_masks

    def _contrastive(
        self,
        out: Mapping[str, Tensor],
        trajs: Sequence[Trajectories],
        indices: Sequence[Tuple[Tensor, Tensor]],
    ) -> Tensor:
        query_embeds = out["pred_video_queries"]
        dim = query_embeds.shape[-1]
        scale = float(dim) if self.contrastive_scale == "dim" else math.sqrt(dim)
        query_idx = torch.as_tensor(self._referred_queries(trajs, indices), device=query_embeds.device)
        return contrastive_loss(query_embeds, out["text_sentence_feature"], query_idx, scale)
