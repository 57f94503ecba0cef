"""Deformable-DETR transformer run per frame (single stage, iterative box refinement), as SOC uses it.

Differences from the authors' ``models/deformable_transformer.py``: the box heads used for refinement are
passed to :meth:`DeformableTransformer.forward` instead of being stored a second time on the decoder (so the
checkpoint has no ``transformer.decoder.bbox_embed`` duplicate); the decoder does not return the unused
"top-30 sampling points"; no two-stage variant (SOC never uses it). The function computed is unchanged.
"""

import copy
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from detectron2.config import configurable
from torch import Tensor, nn

from soc.layers import MSDeformAttn
from soc.layers.dropout import Dropout
from soc.layers.linear_activation import linear_activation

from .attention_layers import with_pos_embed

__all__ = [
    "DeformableTransformer",
    "DeformableTransformerDecoder",
    "DeformableTransformerDecoderLayer",
    "DeformableTransformerEncoder",
    "DeformableTransformerEncoderLayer",
    "inverse_sigmoid",
    "refine_boxes",
]


def inverse_sigmoid(x: Tensor, eps: float = 1e-5) -> Tensor:
    """log(x / (1 − x)) with both terms clamped to ≥ ``eps`` (Deformable DETR)."""
    x = x.clamp(min=0, max=1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


def refine_boxes(delta: Tensor, reference: Tensor) -> Tensor:
    """Deformable DETR's box refinement: ``sigmoid(delta + inverse_sigmoid(reference))``.

    Args:
        delta: (..., 4) output of a box head, in inverse-sigmoid space.
        reference: (..., 4) normalised cxcywh boxes, or (..., 2) normalised centres (the size then comes from
            ``delta`` alone).

    Returns:
        (..., 4) normalised cxcywh boxes.
    """
    if reference.shape[-1] == 4:
        return (delta + inverse_sigmoid(reference)).sigmoid()
    return torch.cat([delta[..., :2] + inverse_sigmoid(reference), delta[..., 2:]], -1).sigmoid()


class DeformableTransformerEncoderLayer(nn.Module):
    """Post-norm layer: deformable self-attention (query = src + pos) → add & LN → FFN → add & LN."""

    def __init__(self, d_model: int, d_ffn: int, dropout: float, n_levels: int, n_heads: int, n_points: int):
        super().__init__()
        self.self_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        self.dropout1 = Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.dropout2 = Dropout(dropout)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.dropout3 = Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(
        self,
        src: Tensor,
        pos: Tensor,
        reference_points: Tensor,
        spatial_shapes: Tensor,
        level_start_index: Tensor,
        padding_mask: Optional[Tensor] = None,
    ) -> Tensor:
        """src, pos: (N, S, C); reference_points: (N, S, L, 2); returns (N, S, C)."""
        src2 = self.self_attn(
            with_pos_embed(src, pos), reference_points, src, spatial_shapes, level_start_index, padding_mask
        )[0]
        src = self.norm1(src + self.dropout1(src2))
        src2 = self.linear2(linear_activation(src, self.linear1, "relu", self.dropout2))
        return self.norm2(src + self.dropout3(src2))


class DeformableTransformerEncoder(nn.Module):
    def __init__(self, layer: DeformableTransformerEncoderLayer, num_layers: int):
        super().__init__()
        self.layers = nn.ModuleList([copy.deepcopy(layer) for _ in range(num_layers)])

    @staticmethod
    def get_reference_points(spatial_shapes: Tensor, valid_ratios: Tensor, device: torch.device) -> Tensor:
        """Centres of every cell of every level, normalised by the valid size: (N, S, L, 2)."""
        refs = []
        for lvl, (H, W) in enumerate(spatial_shapes.tolist()):
            ref_y, ref_x = torch.meshgrid(
                torch.linspace(0.5, H - 0.5, H, dtype=torch.float32, device=device),
                torch.linspace(0.5, W - 0.5, W, dtype=torch.float32, device=device),
                indexing="ij",
            )
            ref_y = ref_y.reshape(-1)[None] / (valid_ratios[:, None, lvl, 1] * H)
            ref_x = ref_x.reshape(-1)[None] / (valid_ratios[:, None, lvl, 0] * W)
            refs.append(torch.stack((ref_x, ref_y), -1))
        reference_points = torch.cat(refs, 1)
        return reference_points[:, :, None] * valid_ratios[:, None]

    def forward(
        self,
        src: Tensor,
        spatial_shapes: Tensor,
        level_start_index: Tensor,
        valid_ratios: Tensor,
        pos: Tensor,
        padding_mask: Optional[Tensor] = None,
    ) -> Tensor:
        """(N, S, C) → (N, S, C) memory."""
        reference_points = self.get_reference_points(spatial_shapes, valid_ratios, src.device)
        output = src
        for layer in self.layers:
            output = layer(output, pos, reference_points, spatial_shapes, level_start_index, padding_mask)
        return output


class DeformableTransformerDecoderLayer(nn.Module):
    """Post-norm layer: self-attention (q = k = tgt + query_pos) → deformable cross-attention → FFN."""

    def __init__(self, d_model: int, d_ffn: int, dropout: float, n_levels: int, n_heads: int, n_points: int):
        super().__init__()
        self.cross_attn = MSDeformAttn(d_model, n_levels, n_heads, n_points)
        self.dropout1 = Dropout(dropout)
        self.norm1 = nn.LayerNorm(d_model)
        self.self_attn = nn.MultiheadAttention(d_model, n_heads, dropout=dropout)
        self.dropout2 = Dropout(dropout)
        self.norm2 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, d_ffn)
        self.dropout3 = Dropout(dropout)
        self.linear2 = nn.Linear(d_ffn, d_model)
        self.dropout4 = Dropout(dropout)
        self.norm3 = nn.LayerNorm(d_model)

    def forward(
        self,
        tgt: Tensor,
        query_pos: Tensor,
        reference_points: Tensor,
        src: Tensor,
        src_spatial_shapes: Tensor,
        level_start_index: Tensor,
        src_padding_mask: Optional[Tensor] = None,
    ) -> Tuple[Tensor, Tensor, Tensor]:
        """
        Args:
            tgt, query_pos: (N, Q, C). reference_points: (N, Q, L, 2 or 4). src: (N, S, C) memory.

        Returns:
            tgt (N, Q, C), sampling locations (N, Q, M, L, P, 2), attention weights (N, Q, M, L, P).
        """
        q = k = with_pos_embed(tgt, query_pos)
        tgt2 = self.self_attn(q.transpose(0, 1), k.transpose(0, 1), tgt.transpose(0, 1))[0].transpose(0, 1)
        tgt = self.norm2(tgt + self.dropout2(tgt2))
        tgt2, locations, weights = self.cross_attn(
            with_pos_embed(tgt, query_pos),
            reference_points,
            src,
            src_spatial_shapes,
            level_start_index,
            src_padding_mask,
        )
        tgt = self.norm1(tgt + self.dropout1(tgt2))
        tgt2 = self.linear2(linear_activation(tgt, self.linear1, "relu", self.dropout3))
        tgt = self.norm3(tgt + self.dropout4(tgt2))
        return tgt, locations, weights


class DeformableTransformerDecoder(nn.Module):
    def __init__(self, layer: DeformableTransformerDecoderLayer, num_layers: int):
        super().__init__()
        self.layers = nn.ModuleList([copy.deepcopy(layer) for _ in range(num_layers)])
        self.num_layers = num_layers

    def forward(
        self,
        tgt: Tensor,
        reference_points: Tensor,
        src: Tensor,
        src_spatial_shapes: Tensor,
        src_level_start_index: Tensor,
        src_valid_ratios: Tensor,
        query_pos: Tensor,
        src_padding_mask: Optional[Tensor] = None,
        bbox_embed: Optional[Sequence[nn.Module]] = None,
    ) -> Tuple[Tensor, Tensor]:
        """
        Args:
            tgt, query_pos: (N, Q, C). reference_points: (N, Q, 2) normalised (x, y).
            src: (N, S, C) memory. src_valid_ratios: (N, L, 2).
            bbox_embed: one box head per layer for iterative refinement (None: the reference stays fixed).

        Returns:
            hs (n_layers, N, Q, C) and the reference after each layer (n_layers, N, Q, 2 or 4), detached.
        """
        output = tgt
        intermediate, intermediate_refs = [], []
        for lid, layer in enumerate(self.layers):
            if reference_points.shape[-1] == 4:
                ref_input = (
                    reference_points[:, :, None]
                    * torch.cat([src_valid_ratios, src_valid_ratios], -1)[:, None]
                )
            else:
                ref_input = reference_points[:, :, None] * src_valid_ratios[:, None]
            output = layer(
                output, query_pos, ref_input, src, src_spatial_shapes, src_level_start_index, src_padding_mask
            )[0]
            if bbox_embed is not None:
                reference_points = refine_boxes(bbox_embed[lid](output), reference_points).detach()
            intermediate.append(output)
            intermediate_refs.append(reference_points)
        return torch.stack(intermediate), torch.stack(intermediate_refs)


class DeformableTransformer(nn.Module):
    """Deformable encoder over the fused levels of each frame + decoder of ``Q`` frame queries."""

    @configurable
    def __init__(
        self,
        *,
        d_model: int = 256,
        nhead: int = 8,
        num_encoder_layers: int = 3,
        num_decoder_layers: int = 3,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        num_feature_levels: int = 4,
        dec_n_points: int = 4,
        enc_n_points: int = 4,
    ):
        """
        Args:
            d_model: width C.
            nhead: attention heads (deformable and decoder self-attention).
            num_encoder_layers, num_decoder_layers: depths.
            dim_feedforward: FFN width. dropout: of every layer.
            num_feature_levels: levels L of the input.
            dec_n_points, enc_n_points: sampling points per head and level.
        """
        super().__init__()
        self.d_model = d_model
        self.num_feature_levels = num_feature_levels
        enc_layer = DeformableTransformerEncoderLayer(
            d_model, dim_feedforward, dropout, num_feature_levels, nhead, enc_n_points
        )
        self.encoder = DeformableTransformerEncoder(enc_layer, num_encoder_layers)
        dec_layer = DeformableTransformerDecoderLayer(
            d_model, dim_feedforward, dropout, num_feature_levels, nhead, dec_n_points
        )
        self.decoder = DeformableTransformerDecoder(dec_layer, num_decoder_layers)
        self.level_embed = nn.Parameter(torch.empty(num_feature_levels, d_model))
        self.reference_points = nn.Linear(d_model, 2)
        self._reset_parameters()

    @classmethod
    def from_config(cls, cfg) -> Dict[str, object]:
        d = cfg.MODEL.SOC.DECODER
        return {
            "d_model": cfg.MODEL.SOC.HIDDEN_DIM,
            "nhead": d.NHEADS,
            "num_encoder_layers": d.ENC_LAYERS,
            "num_decoder_layers": d.DEC_LAYERS,
            "dim_feedforward": d.DIM_FEEDFORWARD,
            "dropout": d.DROPOUT,
            "num_feature_levels": cfg.MODEL.SOC.NUM_FEATURE_LEVELS,
            "dec_n_points": d.DEC_N_POINTS,
            "enc_n_points": d.ENC_N_POINTS,
        }

    def _reset_parameters(self) -> None:
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for m in self.modules():
            if isinstance(m, MSDeformAttn):
                m._reset_parameters()
        nn.init.xavier_uniform_(self.reference_points.weight, gain=1.0)
        nn.init.constant_(self.reference_points.bias, 0.0)
        nn.init.normal_(self.level_embed)

    @staticmethod
    def get_valid_ratio(mask: Tensor) -> Tensor:
        """(N, H, W) padding mask → (N, 2) valid fraction (w, h)."""
        _, H, W = mask.shape
        valid_H = torch.sum(~mask[:, :, 0], 1)
        valid_W = torch.sum(~mask[:, 0, :], 1)
        return torch.stack([valid_W.float() / W, valid_H.float() / H], -1)

    def forward(
        self,
        srcs: List[Tensor],
        masks: List[Tensor],
        pos_embeds: List[Tensor],
        query_embed: Tensor,
        bbox_embed: Optional[Sequence[nn.Module]] = None,
    ) -> Tuple[Tensor, List[Tensor], Tensor, Tensor]:
        """
        Legend: N = B·T frames, C width, Q queries, L levels, S = Σ h_l·w_l.

        Args:
            srcs, pos_embeds: L × (N, C, h_l, w_l). masks: L × (N, h_l, w_l) bool, True at padding.
            query_embed: (Q, C) query positions (the content starts at zero).
            bbox_embed: per-layer box heads for iterative refinement.

        Returns:
            hs: (n_layers, N, Q, C); memory: the encoder output of the first L−1 levels as maps
            L−1 × (N, C, h_l, w_l); init_reference: (N, Q, 2); inter_references: (n_layers, N, Q, 4).
        """
        src_flatten, mask_flatten, pos_flatten, shapes = [], [], [], []
        for lvl, (src, mask, pos) in enumerate(zip(srcs, masks, pos_embeds)):
            shapes.append(src.shape[-2:])
            src_flatten.append(src.flatten(2).transpose(1, 2))  # (N, h·w, C)
            mask_flatten.append(mask.flatten(1))
            pos_flatten.append(pos.flatten(2).transpose(1, 2) + self.level_embed[lvl].view(1, 1, -1))
        src_flatten = torch.cat(src_flatten, 1)
        mask_flatten = torch.cat(mask_flatten, 1)
        pos_flatten = torch.cat(pos_flatten, 1)
        spatial_shapes = torch.as_tensor(shapes, dtype=torch.long, device=src_flatten.device)
        level_start_index = torch.cat((spatial_shapes.new_zeros((1,)), spatial_shapes.prod(1).cumsum(0)[:-1]))
        valid_ratios = torch.stack([self.get_valid_ratio(m) for m in masks], 1)  # (N, L, 2)

        memory = self.encoder(
            src_flatten, spatial_shapes, level_start_index, valid_ratios, pos_flatten, mask_flatten
        )

        N, _, C = memory.shape
        query_pos = query_embed.unsqueeze(0).expand(N, -1, -1)
        tgt = torch.zeros_like(query_pos)
        init_reference = self.reference_points(query_pos).sigmoid()  # (N, Q, 2)
        hs, inter_references = self.decoder(
            tgt,
            init_reference,
            memory,
            spatial_shapes,
            level_start_index,
            valid_ratios,
            query_pos,
            mask_flatten,
            bbox_embed,
        )
        maps, start = [], 0
        for h, w in shapes[:-1]:
            maps.append(memory[:, start : start + h * w].reshape(N, h, w, C).permute(0, 3, 1, 2).contiguous())
            start += h * w
        return hs, maps, init_reference, inter_references
