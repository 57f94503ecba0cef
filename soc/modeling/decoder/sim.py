"""SIM: frame-level content aggregation (deformable transformer) + VOC + the class and box heads.

As the authors' ``SOC.forward`` from the transformer to the heads: Q frame queries per frame (content zero,
position ``query_embed``), iterative box refinement with the per-layer box heads, VOC on the frame queries,
the video queries added slot-wise to the frame queries of every frame, then per decoder layer l one
``class_embed[l]`` (a single Linear) and ``bbox_embed[l]`` (3-layer MLP, refining layer l's input reference).

Training: VOC clusters every decoder layer's queries and every layer is predicted (deep supervision).
Evaluation: as the authors' code, VOC sees only the last layer and the predictions come from layer
``test_head_layer`` (0 in the released code): ``heads[0](hs[0] + VOC(hs[-1]))``; only that layer's heads run.

Differences: with VOC disabled (the "w/o VOC" ablation), the heads read the frame queries and the video
queries (``pred_video_queries``) are their mean over frames, so the contrastive loss still has a per-query
embedding.
"""

import copy
import math
from typing import Dict, List, Optional

import torch
from detectron2.config import configurable
from torch import Tensor, nn

from ..heads.mlp import MLP
from .build import SOC_DECODER_REGISTRY
from .deformable_transformer import DeformableTransformer, refine_boxes
from .voc import VOC

__all__ = ["SIM"]


@SOC_DECODER_REGISTRY.register()
class SIM(nn.Module):
    """Frame queries → (VOC) → per-layer class logits, boxes and the inputs of the mask head."""

    @configurable
    def __init__(
        self,
        *,
        transformer: DeformableTransformer,
        voc: Optional[VOC],
        num_classes: int,
        num_queries: int,
        with_box_refine: bool = True,
        test_head_layer: int = 0,
    ):
        """
        Args:
            transformer: the frame-level deformable transformer; its width C and decoder depth set the heads'.
            voc: clusters the frame queries into video queries; None for the "w/o VOC" ablation. Its video
                queries must be as many as the frame queries (video query n is added to frame query n).
            num_classes: K sigmoid classes. num_queries: Q frame queries.
            with_box_refine: iterative box refinement with one box/class head per layer (all released
                configs); False shares one head across layers and keeps the initial reference.
            test_head_layer: decoder layer whose heads give the evaluation predictions (< 0: from the end).
        """
        super().__init__()
        hidden_dim = transformer.d_model
        dec_layers = transformer.decoder.num_layers
        if not -dec_layers <= test_head_layer < dec_layers:
            raise ValueError(f"test_head_layer={test_head_layer} outside the {dec_layers} decoder layers")
        if voc is not None and not voc.num_queries == voc.fq_pos.num_embeddings == num_queries:
            raise ValueError(
                f"VOC maps {voc.fq_pos.num_embeddings} frame queries to {voc.num_queries} video queries, but "
                f"video query n is added to frame query n of the {num_queries}: all must be equal "
                "(MODEL.SOC.VOC.NUM_QUERIES == MODEL.SOC.DECODER.NUM_QUERIES)"
            )
        self.num_queries = num_queries
        self.with_box_refine = with_box_refine
        self.test_head_layer = test_head_layer % dec_layers
        self.transformer = transformer
        self.query_embed = nn.Embedding(num_queries, hidden_dim)

        class_embed = nn.Linear(hidden_dim, num_classes)
        nn.init.constant_(class_embed.bias, -math.log((1 - 0.01) / 0.01))  # prior probability 0.01
        bbox_embed = MLP(hidden_dim, hidden_dim, 4, 3)
        nn.init.constant_(bbox_embed.layers[-1].weight, 0)
        nn.init.constant_(bbox_embed.layers[-1].bias, 0)
        if with_box_refine:
            self.class_embed = nn.ModuleList([copy.deepcopy(class_embed) for _ in range(dec_layers)])
            self.bbox_embed = nn.ModuleList([copy.deepcopy(bbox_embed) for _ in range(dec_layers)])
            nn.init.constant_(self.bbox_embed[0].layers[-1].bias[2:], -2.0)
        else:
            nn.init.constant_(bbox_embed.layers[-1].bias[2:], -2.0)
            self.class_embed = nn.ModuleList([class_embed] * dec_layers)
            self.bbox_embed = nn.ModuleList([bbox_embed] * dec_layers)
        self.voc = voc

    @classmethod
    def from_config(cls, cfg) -> Dict[str, object]:
        s = cfg.MODEL.SOC
        return {
            "transformer": DeformableTransformer(cfg),
            "voc": VOC(cfg) if s.VOC.ENABLED else None,
            "num_classes": s.NUM_CLASSES,
            "num_queries": s.DECODER.NUM_QUERIES,
            "with_box_refine": s.DECODER.WITH_BOX_REFINE,
            "test_head_layer": s.TEST.HEAD_LAYER,
        }

    def forward(
        self, srcs: List[Tensor], masks: List[Tensor], pos: List[Tensor], sentence: Tensor, num_frames: int
    ) -> Dict[str, object]:
        """
        Legend: B clips, T frames, Q frame queries, N video queries, C width, K classes, L decoder layers,
        L' returned layers.

        Args:
            srcs, masks, pos: the neck's levels, ``(B·T, C, h_l, w_l)`` frames batch-major.
            sentence: (B, C) sentence feature (initial content of the video queries).
            num_frames: T.

        Returns:
            see ``SOC_DECODER_REGISTRY``.
        """
        B, T, Q = sentence.shape[0], num_frames, self.num_queries
        box_heads = self.bbox_embed if self.with_box_refine else None
        hs, memory, init_reference, inter_references = self.transformer(
            srcs, masks, pos, self.query_embed.weight, box_heads
        )
        L, _, _, C = hs.shape
        hs = hs.view(L, B, T, Q, C)
        layers = list(range(L)) if self.training else [self.test_head_layer]

        if self.voc is not None:
            if self.training:
                video_queries = self.voc(hs, sentence)  # (L, B, N, C)
            else:
                video_queries = self.voc(hs[-1:], sentence).expand(len(layers), -1, -1, -1)
            queries = hs[layers] + video_queries.unsqueeze(2)  # (L', B, T, Q, C)
        else:
            queries = hs[layers]
            video_queries = queries.mean(2)

        pred_cls, pred_boxes = [], []
        for i, lvl in enumerate(layers):
            reference = init_reference if lvl == 0 else inter_references[lvl - 1]
            pred_cls.append(self.class_embed[lvl](queries[i]))
            pred_boxes.append(refine_boxes(self.bbox_embed[lvl](queries[i]), reference.view(B, T, Q, -1)))
        mask_references = inter_references[layers][..., :2].reshape(len(layers), B, T, Q, 2)
        return {
            "layers": layers,
            "pred_cls": torch.stack(pred_cls),
            "pred_boxes": torch.stack(pred_boxes),
            "queries": queries,
            "mask_references": mask_references,
            "pred_video_queries": video_queries,
            "memory": memory,
        }
