"""SOC, the meta-architecture: a video or per-frame backbone + text encoder → MMF → SIM (deformable
transformer + VOC) → heads.

Forward order as the authors' ``models/soc.py``: text, backbone, (``keep_frames``), fusion, transformer, VOC,
class/box heads, pixel decoder, dynamic mask head. Differences, all deliberate:

* batches: clips are padded to a common size (padding mask True outside each frame); within a training batch
  all clips must have the same number of frames (the mappers sample a fixed window); at inference each clip
  runs alone (no cross-clip padding), optionally in ``TEST.CLIP_LENGTH``-frame windows (see
  :mod:`soc.modeling.windows`; by default consecutive windows each choosing its own query, the authors'
  Ref-DAVIS protocol);
* one video, several expressions: the text-independent part (the backbone, :meth:`SOC.encode_frames`) runs
  once per window and its maps are repeated along the batch axis, one copy per expression, for the
  text-dependent rest (:meth:`SOC.decode`);
* VOC never mixes clips of a batch (see :mod:`soc.modeling.decoder.voc`);
* masks are resized to the original size from the unpadded part of the logit map
  (:mod:`soc.modeling.postprocessing`); identical to the authors' path without padding.
"""

import contextlib
from typing import Any, ContextManager, Dict, List, Optional, Sequence, Tuple, Union

import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling import META_ARCH_REGISTRY, Backbone, build_backbone
from torch import Tensor, nn

from ...utils.precision import PRECISIONS, warn_if_bf16_is_emulated
from ..criterion import SOCCriterion
from ..decoder.build import build_decoder
from ..heads.mask_head import DynamicMaskHead
from ..heads.pixel_decoder import FPNSpatialDecoder
from ..neck.build import build_neck
from ..postprocessing import boxes_to_original, resize_mask_logits, select_query
from ..targets import pad_masks
from ..text_encoder import TextEncoder
from ..windows import ASSOCIATIONS, Track, associate, check_window, window_bounds

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
        window_overlap: int = 0,
        association: str = "independent",
        association_score_weight: float = 0.0,
        mask_threshold: float = 0.5,
        all_query_masks: bool = False,
        precision: str = "fp32",
        no_target_threshold: float = 0.0,
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
            test_clip_length: > 0: inference in windows of this many frames (0: the whole clip at once).
            window_overlap: frames shared by consecutive windows (< ``test_clip_length``).
            association: how each window picks its query, one of ``ASSOCIATIONS`` (see
                :mod:`soc.modeling.windows`).
            association_score_weight: ``"iou_embedding"``: weight of the expression score beside the
                continuity (:func:`~soc.modeling.windows.associate`; 0 = the score only breaks ties).
            mask_threshold: probability threshold of the binary masks.
            all_query_masks: also return every query's masks (``query_masks``).
            precision: inference precision of the network, a key of :data:`soc.utils.precision.PRECISIONS`:
                ``"fp32"``, or ``"bf16"``/``"fp16"`` (CUDA only) under ``torch.autocast``; the
                deformable-attention sampling, the normalisation of the frames and the post-processing (mask
                resizing, sigmoid, thresholds) stay float32.
            no_target_threshold: an expression whose clip ``score`` is below it gets empty masks in every
                frame (the referred object is judged absent, MeViS v2); 0 = off.
        """
        super().__init__()
        if test_clip_length > 0:
            check_window(test_clip_length, window_overlap)
        if association not in ASSOCIATIONS:
            raise ValueError(f"association must be one of {ASSOCIATIONS}, got {association!r}")
        if association_score_weight < 0:
            raise ValueError(f"association_score_weight must be >= 0, got {association_score_weight}")
        self.backbone = backbone
        self.text_encoder = text_encoder
        self.neck = neck
        self.decoder = decoder
        self.pixel_decoder = pixel_decoder
        self.mask_head = mask_head
        self.criterion = criterion
        self.mask_in_feature = mask_in_feature
        self.test_clip_length = test_clip_length
        self.window_overlap = window_overlap
        self.association = association
        self.association_score_weight = association_score_weight
        self.mask_threshold = mask_threshold
        self.all_query_masks = all_query_masks
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {precision!r}")
        self.precision = precision
        self.no_target_threshold = no_target_threshold
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean, dtype=torch.float32).view(3, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std, dtype=torch.float32).view(3, 1, 1), False)

    @classmethod
    def from_config(cls, cfg) -> Dict[str, Any]:
        backbone = build_backbone(cfg, ShapeSpec(channels=len(cfg.MODEL.PIXEL_MEAN)))
        shapes = backbone.output_shape()
        hidden = cfg.MODEL.SOC.HIDDEN_DIM
        mask_in = min(shapes, key=lambda name: shapes[name].stride)  # the finest map
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
            "window_overlap": cfg.MODEL.SOC.TEST.WINDOW_OVERLAP,
            "association": cfg.MODEL.SOC.TEST.ASSOCIATION,
            "association_score_weight": cfg.MODEL.SOC.TEST.ASSOCIATION_SCORE_WEIGHT,
            "mask_threshold": cfg.MODEL.SOC.TEST.MASK_THRESHOLD,
            "all_query_masks": cfg.MODEL.SOC.TEST.ALL_QUERY_MASKS,
            "precision": cfg.MODEL.SOC.TEST.PRECISION,
            "no_target_threshold": cfg.MODEL.SOC.TEST.NO_TARGET_THRESHOLD,
        }

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def inference_autocast(self) -> ContextManager:
        """The autocast context of ``precision`` on the model's device (a no-op for ``"fp32"``)."""
        dtype = PRECISIONS[self.precision]
        if dtype is None:
            return contextlib.nullcontext()
        if dtype == torch.float16 and self.device.type != "cuda":
            raise RuntimeError(
                f"MODEL.SOC.TEST.PRECISION = 'fp16' needs CUDA (the model is on {self.device}); "
                "use 'bf16' or 'fp32' on the CPU"
            )
        if dtype == torch.bfloat16:
            warn_if_bf16_is_emulated(self.device.type, "MODEL.SOC.TEST.PRECISION")
        return torch.autocast(self.device.type, dtype=dtype)

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
        images = torch.zeros(len(frames), T, 3, H, W, dtype=self.pixel_mean.dtype, device=self.device)
        pad_mask = torch.ones(len(frames), T, H, W, dtype=torch.bool, device=self.device)
        for b, f in enumerate(frames):
            h, w = f.shape[-2:]
            images[b, :, :, :h, :w] = (f.to(self.device, images.dtype) - self.pixel_mean) / self.pixel_std
            pad_mask[b, :, :h, :w] = False
        sizes = torch.tensor([list(f.shape[-2:]) for f in frames], dtype=torch.long, device=self.device)
        return images, pad_mask.flatten(0, 1), sizes

    # ------------------------------------------------------------------ network
    def encode_frames(
        self, images: Tensor, pad_mask: Tensor, keep_frames: Optional[Tensor] = None
    ) -> Tuple[Dict[str, Tensor], Tensor]:
        """
        The text-independent part of the network: the backbone, then the frames that go past it.

        Args:
            images: (B, T, 3, H, W) normalised, padded frames. pad_mask: (B·T, H, W) bool.
            keep_frames: (B, T') frame indices that go past the backbone, or None for all (T' = T).

        Returns:
            the backbone maps ``{name: (B·T', C_s, h_s, w_s)}`` and their pad mask (B·T', H, W) bool, frames
            batch-major.
        """
        B, T = images.shape[:2]
        features = self.backbone(images)
        if keep_frames is not None:
            index = (torch.arange(B, device=self.device)[:, None] * T + keep_frames.to(self.device)).flatten()
            features = {k: v.index_select(0, index) for k, v in features.items()}
            pad_mask = pad_mask.index_select(0, index)
        return features, pad_mask

    def decode(
        self,
        features: Dict[str, Tensor],
        pad_mask: Tensor,
        text: Tuple[Tensor, Tensor, Tensor],
        image_sizes: Tensor,
        num_frames: int,
    ) -> Dict[str, Any]:
        """
        The text-dependent part of the network: fusion, transformer, VOC, heads.

        Legend: B clips, T frames, N queries, K classes, C width, L tokens, h × w = stride-4 size of the
        padded input.

        Args:
            features: backbone maps ``(B·T, C_s, h_s, w_s)``, frames batch-major. pad_mask: (B·T, H, W) bool.
            text: the text encoder's word features (B, L, C), word padding mask (B, L) bool, sentence
                feature (B, C).
            image_sizes: (B, 2) unpadded (H_b, W_b) in pixels. num_frames: T.

        Returns:
            the criterion's input: ``pred_cls`` (T, B, N, K), ``pred_boxes`` (T, B, N, 4) normalised cxcywh,
            ``pred_masks`` (T, B, N, h, w) logits, ``pred_video_queries`` (B, N, C) video-query
            embeddings, ``text_sentence_feature`` (B, C), and ``aux_outputs`` (earlier decoder layers,
            training only). Evaluation returns the test head layer's predictions and no ``aux_outputs``.
        """
        words, word_mask, sentence = text
        B, T = sentence.shape[0], num_frames
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

    def forward_network(
        self,
        images: Tensor,
        pad_mask: Tensor,
        expressions: Sequence[str],
        image_sizes: Tensor,
        keep_frames: Optional[Tensor] = None,
        clip_of: Optional[Sequence[int]] = None,
    ) -> Dict[str, Any]:
        """
        The whole network on B clips and E expressions: text encoder, :meth:`encode_frames` (once per clip),
        :meth:`decode` (once per expression; its outputs, with T' frames after ``keep_frames`` and E in
        place of B, are returned).

        Args:
            images: (B, T, 3, H, W) normalised, padded frames. pad_mask: (B·T, H, W) bool.
            expressions: E strings. image_sizes: (B, 2) unpadded (H_b, W_b) in pixels.
            keep_frames: (B, T') frame indices that go past the backbone, or None for all.
            clip_of: the clip (in 0..B−1) of each expression; None when expression b is about clip b (E = B).
        """
        text = self.text_encoder(expressions, self.device)
        features, pad_mask = self.encode_frames(images, pad_mask, keep_frames)
        T = images.shape[1] if keep_frames is None else keep_frames.shape[1]
        if clip_of is not None:
            clips = torch.as_tensor(clip_of, dtype=torch.long, device=self.device)
            frames = (clips[:, None] * T + torch.arange(T, device=self.device)).flatten()  # (E·T,)
            features = {k: v.index_select(0, frames) for k, v in features.items()}
            pad_mask, image_sizes = pad_mask.index_select(0, frames), image_sizes.index_select(0, clips)
        return self.decode(features, pad_mask, text, image_sizes, T)

    # ------------------------------------------------------------------ entry point
    def forward(self, batched_inputs: List[Dict[str, Any]]):
        """
        Args:
            batched_inputs: list over clips of dicts with ``frames`` uint8 (T, 3, H, W) RGB, ``expression``
                (str) or ``expressions`` (list of E str, answered or trained together: the backbone runs
                once per window for all of them), ``height``/``width`` (original size), optional
                ``keep_frames`` (T',) long, and in training ``targets`` (``masks`` bool (T', H, W), ``boxes``
                (T', 4) normalised cxcywh, ``is_visible`` (T',), optional ``labels`` (T',); with several
                objects an instance axis after T' and ``referred_idx``, see
                :func:`~soc.modeling.targets.as_trajectories`; a list of E such dicts with ``expressions``).

        Returns:
            training: dict of weighted losses. Inference: list over clips of one output dict per clip, or for
            an ``expressions`` input a list of E output dicts in the order of the expressions. Output dict:
            ``pred_masks`` bool (T', H0, W0) (all False when ``score`` < ``no_target_threshold``),
            ``mask_probs`` (T', H0, W0), ``pred_boxes`` (T', 4) xyxy
            original pixels, ``score`` float, ``query_scores`` (T', N), ``query_index`` (T',) long (the
            selected query of each frame's window), and ``query_masks`` bool (T', N, H0, W0) if configured.
        """
        if self.training:
            return self.losses(batched_inputs)
        return [self.inference(x) for x in batched_inputs]

    def losses(self, batched_inputs: List[Dict[str, Any]]) -> Dict[str, Tensor]:
        """Weighted training losses of a batch (target masks padded to the batch's padded input size). A clip
        with ``expressions`` (E str) and E ``targets`` dicts is encoded once and trained on all E, each
        counting as one batch element."""
        if self.criterion is None:
            raise RuntimeError("SOC was built without a criterion; it cannot be trained")
        images, pad_mask, sizes = self.preprocess([x["frames"] for x in batched_inputs])
        keep = _stack_keep_frames(batched_inputs, self.device)
        expressions, raw_targets, clip_of = [], [], []
        for b, x in enumerate(batched_inputs):
            texts, clip_targets = (
                (x["expressions"], x["targets"])
                if "expressions" in x
                else ([x["expression"]], [x["targets"]])
            )
            if len(texts) != len(clip_targets):
                raise ValueError(
                    f"a training clip has {len(texts)} expressions but {len(clip_targets)} targets"
                )
            expressions += texts
            raw_targets += clip_targets
            clip_of += [b] * len(texts)
        grouped = len(expressions) != len(batched_inputs)
        outputs = self.forward_network(
            images, pad_mask, expressions, sizes, keep, clip_of if grouped else None
        )
        H, W = images.shape[-2:]
        targets = []
        for t in raw_targets:
            target = {
                "masks": pad_masks(t["masks"].to(self.device, torch.bool), (H, W)),
                "boxes": t["boxes"].to(self.device, torch.float32),
                "is_visible": t["is_visible"].to(self.device, torch.bool),
            }
            if "labels" in t:
                target["labels"] = t["labels"].to(self.device, torch.long)
            if "referred_idx" in t:
                target["referred_idx"] = int(t["referred_idx"])
            targets.append(target)
        raw = self.criterion(outputs, targets)
        weights = self.criterion.weight_dict
        return {k: v * weights[k] for k, v in raw.items() if k in weights}

    @torch.no_grad()
    def inference(self, x: Dict[str, Any]) -> Union[Dict[str, Any], List[Dict[str, Any]]]:
        """Predictions for one clip (see :meth:`forward`), window by window (``test_clip_length`` frames
        overlapping by ``window_overlap``; one window with ``keep_frames`` or ``test_clip_length`` 0)."""
        frames = x["frames"]
        keep = x.get("keep_frames")
        expressions = list(x["expressions"]) if "expressions" in x else [x["expression"]]
        orig = (int(x.get("height", frames.shape[-2])), int(x.get("width", frames.shape[-1])))
        T = frames.shape[0]
        if T == 0:
            raise ValueError("a clip needs at least one frame")
        if keep is None and self.test_clip_length > 0:
            length, overlap = self.test_clip_length, self.window_overlap
        else:
            length, overlap = T, 0
        tracks = None
        parts = []
        for start, end in window_bounds(T, length, overlap):
            results, tracks = self.inference_window(
                frames[start:end], expressions, orig, tracks, overlap, keep
            )
            parts.append(results)
        merged = [self._no_target(_merge_windows([p[e] for p in parts])) for e in range(len(expressions))]
        return merged if "expressions" in x else merged[0]

    def _no_target(self, result: Dict[str, Any]) -> Dict[str, Any]:
        """Empty ``pred_masks`` (T', H0, W0) in every frame when the clip ``score`` is below
        ``no_target_threshold`` (a decision per expression over the whole video, not per window)."""
        if result["score"] < self.no_target_threshold:
            result["pred_masks"] = torch.zeros_like(result["pred_masks"])
        return result

    @torch.no_grad()
    def inference_window(
        self,
        frames: Tensor,
        expressions: Sequence[str],
        orig_size: Tuple[int, int],
        tracks: Optional[List[Track]] = None,
        overlap: int = 0,
        keep_frames: Optional[Tensor] = None,
    ) -> Tuple[List[Dict[str, Any]], List[Track]]:
        """
        One window of a video for E expressions: the backbone runs once, the rest once for all E together.

        Args:
            frames: (T, 3, H, W) uint8 RGB, resized.
            expressions: E strings.
            orig_size: (H0, W0) original frame size in pixels.
            tracks: the previous window's objects, one per expression (None for the first window). Their V
                frames are this window's first V: they belong to the previous window, so they are left out
                of the outputs, and with ``association == "iou_embedding"`` they choose the query.
            overlap: frames this window shares with the next one (its last ones), kept in the new tracks.
            keep_frames: (T',) indices of the frames that go past the backbone (one-window clips).

        Returns:
            per expression the output dict (see :meth:`forward`) of the T − V frames this window owns, and
            the tracks for the next window.
        """
        E = len(expressions)
        if tracks is not None and len(tracks) != E:
            raise ValueError(f"{len(tracks)} tracks for {E} expressions")
        images, pad_mask, sizes = self.preprocess([frames])
        keep = None if keep_frames is None else torch.as_tensor(keep_frames, dtype=torch.long).view(1, -1)
        with self.inference_autocast():
            text = self.text_encoder(expressions, self.device)
            features, pad_mask = self.encode_frames(images, pad_mask, keep)
            T = pad_mask.shape[0]
            features = {k: _repeat_clip(v, E) for k, v in features.items()}  # (E·T, C_s, h_s, w_s)
            out = self.decode(features, _repeat_clip(pad_mask, E), text, sizes.repeat(E, 1), T)
        # post-processing (query choice, association, mask resizing and thresholds) in float32
        out = {k: v.float() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in out.items()}
        shared = 0 if tracks is None else tracks[0].masks.shape[0]
        input_size = tuple(sizes[0].tolist())
        results, new_tracks = [], []
        for e in range(E):
            clip = {k: out[k][:, e] for k in ("pred_cls", "pred_boxes", "pred_masks")}  # (T, N, ...)
            embeddings = out["pred_video_queries"][e]  # (N, C)
            query_scores, idx, mean_scores = select_query(clip["pred_cls"])
            if tracks is not None and self.association == "iou_embedding":
                shared_masks = clip["pred_masks"][:shared].sigmoid() > self.mask_threshold  # (V, N, h, w)
                idx = associate(
                    tracks[e], shared_masks, embeddings, mean_scores, self.association_score_weight
                )
            owned = {k: v[shared:] for k, v in clip.items()}
            results.append(
                self._postprocess(owned, idx, mean_scores[idx], query_scores[shared:], input_size, orig_size)
            )
            tail = clip["pred_masks"][max(T - overlap, 0) :, idx]  # (V', h, w)
            new_tracks.append(Track(masks=tail.sigmoid() > self.mask_threshold, embedding=embeddings[idx]))
        return results, new_tracks

    def _postprocess(
        self,
        clip: Dict[str, Tensor],
        idx: int,
        score: Tensor,
        query_scores: Tensor,
        input_size: Tuple[int, int],
        orig_size: Tuple[int, int],
    ) -> Dict[str, Any]:
        """
        One expression's output dict from its ``pred_cls`` (T, N, K), ``pred_boxes`` (T, N, 4) and
        ``pred_masks`` (T, N, h, w) logits, the selected query ``idx``, its ``score`` (0-d) and the
        ``query_scores`` (T, N).
        """
        T, N = clip["pred_masks"].shape[:2]
        logits = resize_mask_logits(clip["pred_masks"][:, idx], input_size, orig_size)  # (T, H0, W0)
        probs = logits.sigmoid()
        result = {
            "pred_masks": probs > self.mask_threshold,
            "mask_probs": probs,
            "pred_boxes": boxes_to_original(clip["pred_boxes"][:, idx], orig_size),
            "score": float(score),
            "query_scores": query_scores,
            "query_index": torch.full((T,), idx, dtype=torch.long, device=probs.device),
        }
        if self.all_query_masks:
            all_logits = resize_mask_logits(clip["pred_masks"].flatten(0, 1), input_size, orig_size)
            result["query_masks"] = (all_logits.sigmoid() > self.mask_threshold).view(T, N, *orig_size)
        return result


def _repeat_clip(x: Tensor, copies: int) -> Tensor:
    """(T, ...) → (copies·T, ...), the clip repeated along the batch axis. One copy is ``x`` itself (its
    memory layout, which the convolutions' results depend on in the last bits, is kept)."""
    return x.unsqueeze(0).expand(copies, *x.shape).flatten(0, 1)


def _merge_windows(parts: List[Dict[str, Any]]) -> Dict[str, Any]:
    """One expression's output over a clip from its windows' outputs: frames concatenated, ``score`` the
    mean of the windows' scores weighted by their frames."""
    if len(parts) == 1:
        return parts[0]
    n = torch.tensor([p["pred_masks"].shape[0] for p in parts], dtype=torch.float32)
    merged = {k: torch.cat([p[k] for p in parts]) for k in parts[0] if k != "score"}
    merged["score"] = float((torch.tensor([p["score"] for p in parts]) * n).sum() / n.sum())
    return merged


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
