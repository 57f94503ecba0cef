"""SOC, the meta-architecture: Video Swin + text encoder → MMF → SIM (deformable transformer + VOC) → heads.

Forward order as the authors' ``models/soc.py``: text, backbone, (``keep_frames``), fusion, transformer, VOC,
class/box heads, pixel decoder, dynamic mask head. Differences, all deliberate:

* batches: clips are padded to a common size (padding mask True outside each frame); within a training batch
  all clips must have the same number of frames (the mappers sample a fixed window); at inference each clip
  runs alone (no cross-clip padding), optionally in consecutive ``TEST.CLIP_LENGTH``-frame chunks, each chunk
  choosing its own query (the authors' Ref-DAVIS protocol);
* VOC never mixes clips of a batch (see :mod:`soc.modeling.decoder.voc`);
* masks are resized to the original size from the unpadded part of the logit map
  (:mod:`soc.modeling.postprocessing`); identical to the authors' path without padding.
"""

from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import META_ARCH_REGISTRY, Backbone, build_backbone
from torch import Tensor, nn

from ..criterion import SOCCriterion
from ..decoder.build import build_decoder
from ..heads.mask_head import DynamicMaskHead
from ..heads.pixel_decoder import FPNSpatialDecoder
from ..neck.build import build_neck
from ..postprocessing import boxes_to_original, resize_mask_logits, select_query
from ..targets import pad_masks
from ..text_encoder import TextEncoder

__all__ = ["SOC"]


@META_ARCH_REGISTRY.register()
class SOC(nn.Module):
    """Referring video object segmentation: one expression per clip → the referred object's masks."""

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        text_encoder: nn.Module,
        neck: nn.Module,
        decoder: nn.Module,
        pixel_decoder: nn.Module,
        mask_head: nn.Module,
        criterion: Optional[nn.Module],
        pixel_mean: Sequence[float],
        pixel_std: Sequence[float],
        mask_in_feature: str = "res2",
        test_clip_length: int = 0,
        mask_threshold: float = 0.5,
        all_query_masks: bool = False,
    ):
        """
        Args:
            backbone: per-frame maps ``(B·T, C, h, w)`` from ``(B, T, 3, H, W)`` frames.
            text_encoder: expressions → word features, padding mask, sentence feature.
            neck: see ``SOC_NECK_REGISTRY``. decoder: see ``SOC_DECODER_REGISTRY``.
            pixel_decoder: ``(s32 memory, [s16, s8, backbone s4]) → (B·T, D, h4, w4)`` mask features.
            mask_head: (queries, reference centres, mask features, image sizes) → mask logits.
            criterion: raw losses + ``weight_dict`` (training only; None for inference-only models).
            pixel_mean, pixel_std: RGB normalisation in 0–255 units.
            mask_in_feature: the backbone map that enters the pixel decoder last (stride 4).
            test_clip_length: > 0: inference in consecutive clips of this many frames.
            mask_threshold: probability threshold of the binary masks.
            all_query_masks: also return every query's masks (``query_masks``).
        """
        super().__init__()
        self.backbone = backbone
        self.text_encoder = text_encoder
        self.neck = neck
        self.decoder = decoder
        self.pixel_decoder = pixel_decoder
        self.mask_head = mask_head
        self.criterion = criterion
        self.mask_in_feature = mask_in_feature
        self.test_clip_length = test_clip_length
        self.mask_threshold = mask_threshold
        self.all_query_masks = all_query_masks
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean, dtype=torch.float32).view(3, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std, dtype=torch.float32).view(3, 1, 1), False)

    @classmethod
    def from_config(cls, cfg) -> Dict[str, Any]:
        backbone = build_backbone(cfg, ShapeSpec(channels=len(cfg.MODEL.PIXEL_MEAN)))
        shapes = backbone.output_shape()
        hidden = cfg.MODEL.SOC.HIDDEN_DIM
        mask_in = cfg.MODEL.VIDEO_SWIN.OUT_FEATURES[0]
        m = cfg.MODEL.SOC.MASK_HEAD
        return {
            "backbone": backbone,
            "text_encoder": TextEncoder(cfg),
            "neck": build_neck(cfg, shapes),
            "decoder": build_decoder(cfg),
            "pixel_decoder": FPNSpatialDecoder(
                hidden, [hidden, hidden, shapes[mask_in].channels], m.MASK_DIM
            ),
            "mask_head": DynamicMaskHead(
                hidden_dim=hidden,
                mask_dim=m.MASK_DIM,
                controller_layers=m.CONTROLLER_LAYERS,
                dynamic_channels=m.DYNAMIC_MASK_CHANNELS,
                rel_coord=m.REL_COORD,
                stride=shapes[mask_in].stride,
            ),
            "criterion": SOCCriterion(cfg),
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "mask_in_feature": mask_in,
            "test_clip_length": cfg.MODEL.SOC.TEST.CLIP_LENGTH,
            "mask_threshold": cfg.MODEL.SOC.TEST.MASK_THRESHOLD,
            "all_query_masks": cfg.MODEL.SOC.TEST.ALL_QUERY_MASKS,
        }

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    # ------------------------------------------------------------------ batching
    def preprocess(self, frames: Sequence[Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
        """
        Normalise and pad clips to a common size.

        Args:
            frames: B uint8 tensors (T, 3, H_b, W_b), RGB, same T.

        Returns:
            images (B, T, 3, H, W) float, zero outside each clip; pad_mask (B·T, H, W) bool, True there;
            image_sizes (B, 2) long, (H_b, W_b).
        """
        T = frames[0].shape[0]
        if any(f.shape[0] != T for f in frames):
            raise ValueError(
                f"clips of one batch must have the same number of frames, got {[f.shape[0] for f in frames]}"
            )
        H = max(int(f.shape[-2]) for f in frames)
        W = max(int(f.shape[-1]) for f in frames)
        images = torch.zeros(len(frames), T, 3, H, W, device=self.device)
        pad_mask = torch.ones(len(frames), T, H, W, dtype=torch.bool, device=self.device)
        for b, f in enumerate(frames):
            h, w = f.shape[-2:]
            images[b, :, :, :h, :w] = (f.to(self.device).float() - self.pixel_mean) / self.pixel_std
            pad_mask[b, :, :h, :w] = False
        sizes = torch.tensor([list(f.shape[-2:]) for f in frames], dtype=torch.long, device=self.device)
        return images, pad_mask.flatten(0, 1), sizes

    # ------------------------------------------------------------------ network
    def forward_network(
        self,
        images: Tensor,
        pad_mask: Tensor,
        expressions: Sequence[str],
        image_sizes: Tensor,
        keep_frames: Optional[Tensor] = None,
    ) -> Dict[str, Any]:
        """
        Legend: B clips, T frames (T' after ``keep_frames``), N queries, K classes, C width, h × w = stride-4
        size of the padded input.

        Args:
            images: (B, T, 3, H, W) normalised, padded frames. pad_mask: (B·T, H, W) bool.
            expressions: B strings. image_sizes: (B, 2) unpadded (H_b, W_b) in pixels.
            keep_frames: (B, T') frame indices that go past the backbone, or None for all.

        Returns:
            the criterion's input: ``pred_cls`` (T', B, N, K), ``pred_boxes`` (T', B, N, 4) normalised cxcywh,
            ``pred_masks`` (T', B, N, h, w) logits, ``pred_video_queries`` (B, N, C) video-query
            embeddings, ``text_sentence_feature`` (B, C), and ``aux_outputs`` (earlier decoder layers,
            training only). Evaluation returns the test head layer's predictions and no ``aux_outputs``.
        """
        B, T = images.shape[:2]
        words, word_mask, sentence = self.text_encoder(expressions, self.device)
        features = self.backbone(images)
        if keep_frames is not None:
            index = (torch.arange(B, device=self.device)[:, None] * T + keep_frames.to(self.device)).flatten()
            features = {k: v.index_select(0, index) for k, v in features.items()}
            pad_mask = pad_mask.index_select(0, index)
            T = keep_frames.shape[1]
        fused = self.neck(features, pad_mask, words, word_mask, T)
        dec = self.decoder(fused["srcs"], fused["masks"], fused["pos"], sentence, T)
        memory = dec["memory"]  # finest first
        mask_features = self.pixel_decoder(memory[-1], memory[:-1][::-1] + [features[self.mask_in_feature]])
        mask_features = mask_features.view(B, T, *mask_features.shape[1:])  # (B, T, D, h, w)

        per_layer = []
        for i in range(len(dec["layers"])):
            masks = self.mask_head(dec["queries"][i], dec["mask_references"][i], mask_features, image_sizes)
            per_layer.append(
                {
                    "pred_cls": dec["pred_cls"][i].transpose(0, 1),
                    "pred_boxes": dec["pred_boxes"][i].transpose(0, 1),
                    "pred_masks": masks.transpose(0, 1),
                    "pred_video_queries": dec["pred_video_queries"][i],
                    "text_sentence_feature": fused["text_feature"],
                }
            )
        out = per_layer[-1]
        if self.training:
            out["aux_outputs"] = per_layer[:-1]
        return out

    # ------------------------------------------------------------------ entry point
    def forward(self, batched_inputs: List[Dict[str, Any]]):
        """
        Args:
            batched_inputs: list over clips of dicts with ``frames`` uint8 (T, 3, H, W) RGB, ``expression``,
                ``height``/``width`` (original size), optional ``keep_frames`` (T',) long, and in training
                ``targets`` (``masks`` bool (T', H, W), ``boxes`` (T', 4) normalised cxcywh, ``is_visible``
                (T',), optional ``labels`` (T',)).

        Returns:
            training: dict of weighted losses. Inference: list over clips of dicts with ``pred_masks`` bool
            (T', H0, W0), ``mask_probs`` (T', H0, W0), ``pred_boxes`` (T', 4) xyxy original pixels, ``score``
            float, ``query_scores`` (T', N), and ``query_masks`` bool (T', N, H0, W0) if configured.
        """
        if self.training:
            return self.losses(batched_inputs)
        return [self.inference(x) for x in batched_inputs]

    def losses(self, batched_inputs: List[Dict[str, Any]]) -> Dict[str, Tensor]:
        """Weighted training losses of a batch (target masks padded to the batch's padded input size)."""
        if self.criterion is None:
            raise RuntimeError("SOC was built without a criterion; it cannot be trained")
        images, pad_mask, sizes = self.preprocess([x["frames"] for x in batched_inputs])
        keep = _stack_keep_frames(batched_inputs, self.device)
        outputs = self.forward_network(
            images, pad_mask, [x["expression"] for x in batched_inputs], sizes, keep
        )
        H, W = images.shape[-2:]
        targets = []
        for x in batched_inputs:
            t = x["targets"]
            target = {
                "masks": pad_masks(t["masks"].to(self.device, torch.bool), (H, W)),
                "boxes": t["boxes"].to(self.device, torch.float32),
                "is_visible": t["is_visible"].to(self.device, torch.bool),
            }
            if "labels" in t:
                target["labels"] = t["labels"].to(self.device, torch.long)
            targets.append(target)
        raw = self.criterion(outputs, targets)
        weights = self.criterion.weight_dict
        return {k: v * weights[k] for k, v in raw.items() if k in weights}

    @torch.no_grad()
    def inference(self, x: Dict[str, Any]) -> Dict[str, Any]:
        """Predictions for one clip (see :meth:`forward`)."""
        frames = x["frames"]
        keep = x.get("keep_frames")
        orig = (int(x.get("height", frames.shape[-2])), int(x.get("width", frames.shape[-1])))
        T = frames.shape[0]
        if keep is not None or self.test_clip_length <= 0 or T <= self.test_clip_length:
            chunks = [(0, T)]
        else:
            chunks = [(s, min(s + self.test_clip_length, T)) for s in range(0, T, self.test_clip_length)]
        parts = []
        for start, end in chunks:
            images, pad_mask, sizes = self.preprocess([frames[start:end]])
            keep_b = None if keep is None else torch.as_tensor(keep, dtype=torch.long).view(1, -1)
            out = self.forward_network(images, pad_mask, [x["expression"]], sizes, keep_b)
            parts.append(self._postprocess(out, tuple(sizes[0].tolist()), orig))
        if len(parts) == 1:
            return parts[0]
        n = torch.tensor([p["pred_masks"].shape[0] for p in parts], dtype=torch.float32)
        merged = {k: torch.cat([p[k] for p in parts]) for k in parts[0] if k != "score"}
        merged["score"] = float((torch.tensor([p["score"] for p in parts]) * n).sum() / n.sum())
        return merged

    def _postprocess(
        self, out: Dict[str, Tensor], input_size: Tuple[int, int], orig_size: Tuple[int, int]
    ) -> Dict[str, Any]:
        """One clip's outputs (batch of 1) → the documented output dict."""
        pred_cls = out["pred_cls"][:, 0]  # (T, N, K)
        query_scores, idx, score = select_query(pred_cls)
        logits = resize_mask_logits(out["pred_masks"][:, 0, idx], input_size, orig_size)  # (T, H0, W0)
        probs = logits.sigmoid()
        result = {
            "pred_masks": probs > self.mask_threshold,
            "mask_probs": probs,
            "pred_boxes": boxes_to_original(out["pred_boxes"][:, 0, idx], orig_size),
            "score": float(score),
            "query_scores": query_scores,
        }
        if self.all_query_masks:
            T, N = out["pred_masks"].shape[0], out["pred_masks"].shape[2]
            all_logits = resize_mask_logits(out["pred_masks"][:, 0].flatten(0, 1), input_size, orig_size)
            result["query_masks"] = (all_logits.sigmoid() > self.mask_threshold).view(T, N, *orig_size)
        return result


def _stack_keep_frames(batched_inputs: List[Dict[str, Any]], device: torch.device) -> Optional[Tensor]:
    """(B, T') indices of the frames that go past the backbone, or None when no clip gives them."""
    keeps = [x.get("keep_frames") for x in batched_inputs]
    if all(k is None for k in keeps):
        return None
    if any(k is None for k in keeps):
        raise ValueError("keep_frames must be given for every clip of a batch or for none")
    keeps = [torch.as_tensor(k, dtype=torch.long).view(-1) for k in keeps]
    if any(k.numel() != keeps[0].numel() for k in keeps):
        raise ValueError("every clip of a batch must keep the same number of frames")
    return torch.stack(keeps).to(device)
