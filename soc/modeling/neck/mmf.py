"""MMF: multi-modal fusion of the backbone's maps with the expression (paper §3.2; authors' ``vla.py``).

Per level (s8, s16, s32 from ``res3..res5``, plus extra stride-2 levels from the raw last stage): a 1×1 conv +
GroupNorm projects the stage to C; language→vision (``vlf``): ``v ⊙ MHA(q=v, k=words+PE, v=words)``;
vision→language (``lvf``): ``w ⊙ MHA(q=w, k=v+PE, v=v)`` over all T·h·w positions of the clip. The extra
level gets only ``vlf``. Both blocks are shared across levels; the words entering every level are the
resizer's output (no progressive update). Only the s32 ``lvf`` output is used: its mean over valid tokens
is the vision-aware sentence feature F_gud of the contrastive loss.

As the authors' code: element-wise product without residual or norm (``NECK.RESIDUAL`` adds the input back,
the paper's Eq. 3 reading); position encodings only on keys.
"""

from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from torch import Tensor, nn

from soc.layers.position_encoding import PositionEmbeddingSine1D, PositionEmbeddingSine2D

from .build import SOC_NECK_REGISTRY

__all__ = ["MMF", "MMFLayer"]


class MMFLayer(nn.Module):
    """One fusion block: ``out = tgt ⊙ MHA(tgt + query_pos, memory + pos, memory)`` (+ ``tgt``)."""

    def __init__(self, d_model: int, nhead: int, dropout: float = 0.0, residual: bool = False):
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.residual = residual

    def forward(
        self,
        tgt: Tensor,
        memory: Tensor,
        memory_key_padding_mask: Optional[Tensor] = None,
        pos: Optional[Tensor] = None,
        query_pos: Optional[Tensor] = None,
    ) -> Tensor:
        """
        Args:
            tgt: (Lq, B, C) queries. memory: (Lk, B, C) keys/values.
            memory_key_padding_mask: (B, Lk) bool, True at padding.
            pos: (Lk, B, C) added to the keys. query_pos: (Lq, B, C) added to the queries.

        Returns:
            (Lq, B, C).
        """
        query = tgt if query_pos is None else tgt + query_pos
        key = memory if pos is None else memory + pos
        attn = self.multihead_attn(query, key, memory, key_padding_mask=memory_key_padding_mask)[0]
        out = tgt * attn
        return out + tgt if self.residual else out


@SOC_NECK_REGISTRY.register()
class MMF(nn.Module):
    """Projects the backbone stages to the model width and fuses them with the word features."""

    @configurable
    def __init__(
        self,
        *,
        input_shape: Dict[str, ShapeSpec],
        in_features: Sequence[str],
        hidden_dim: int,
        num_levels: int,
        nheads: int = 8,
        residual: bool = False,
    ):
        """
        Args:
            input_shape: the backbone's output shapes.
            in_features: backbone maps projected and fused, finest first (SOC: ``res3, res4, res5``).
            hidden_dim: model width C.
            num_levels: levels handed to the decoder; levels beyond ``in_features`` are stride-2 3×3 convs,
                the first on the raw last stage, the next ones on the previous fused level.
            nheads: heads of both fusion blocks.
            residual: add the input back after the product (paper variant).
        """
        super().__init__()
        if num_levels < len(in_features):
            raise ValueError(f"MMF: num_levels={num_levels} < {len(in_features)} input features")
        self.in_features = list(in_features)
        self.num_levels = num_levels
        proj = []
        for name in self.in_features:
            proj.append(
                nn.Sequential(
                    nn.Conv2d(input_shape[name].channels, hidden_dim, kernel_size=1),
                    nn.GroupNorm(32, hidden_dim),
                )
            )
        in_channels = input_shape[self.in_features[-1]].channels
        for _ in range(num_levels - len(self.in_features)):
            proj.append(
                nn.Sequential(
                    nn.Conv2d(in_channels, hidden_dim, kernel_size=3, stride=2, padding=1),
                    nn.GroupNorm(32, hidden_dim),
                )
            )
            in_channels = hidden_dim
        self.input_proj = nn.ModuleList(proj)
        for p in self.input_proj:
            nn.init.xavier_uniform_(p[0].weight, gain=1)
            nn.init.constant_(p[0].bias, 0)
        self.vlf = MMFLayer(hidden_dim, nheads, residual=residual)
        self.lvf = MMFLayer(hidden_dim, nheads, residual=residual)
        self.text_pos = PositionEmbeddingSine1D(hidden_dim, normalize=True)
        self.pos_2d = PositionEmbeddingSine2D(hidden_dim // 2, normalize=True)

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]) -> Dict:
        names = sorted(input_shape, key=lambda name: input_shape[name].stride)
        return {
            "input_shape": input_shape,
            "in_features": names[-3:],
            "hidden_dim": cfg.MODEL.SOC.HIDDEN_DIM,
            "num_levels": cfg.MODEL.SOC.NUM_FEATURE_LEVELS,
            "nheads": cfg.MODEL.SOC.NECK.NHEADS,
            "residual": cfg.MODEL.SOC.NECK.RESIDUAL,
        }

    def forward(
        self,
        features: Dict[str, Tensor],
        pad_mask: Tensor,
        words: Tensor,
        word_mask: Tensor,
        num_frames: int,
    ) -> Dict[str, object]:
        """
        Legend: B clips, T frames, C width, L tokens, h_l × w_l the size of level l.

        Args:
            features: backbone maps ``(B·T, C_s, h, w)``, frames batch-major.
            pad_mask: (B·T, H, W) bool, True at padded input pixels.
            words: (B, L, C) word features. word_mask: (B, L) bool, True at padding tokens.
            num_frames: T.

        Returns:
            dict with ``srcs``, ``masks``, ``pos`` (lists over levels, see ``SOC_NECK_REGISTRY``) and
            ``text_feature`` (B, C).
        """
        B, T = words.shape[0], num_frames
        words_seq = words.transpose(0, 1)  # (L, B, C)
        text_pos = self.text_pos(word_mask).permute(2, 0, 1)  # (L, B, C)
        srcs: List[Tensor] = []
        masks: List[Tensor] = []
        poses: List[Tensor] = []
        lang = words_seq
        for lvl in range(self.num_levels):
            if lvl < len(self.in_features):
                src = self.input_proj[lvl](features[self.in_features[lvl]])
            elif lvl == len(self.in_features):
                src = self.input_proj[lvl](features[self.in_features[-1]])
            else:
                src = self.input_proj[lvl](srcs[-1])
            _, C, h, w = src.shape
            mask = F.interpolate(pad_mask[None].float(), size=(h, w)).to(torch.bool)[0]  # (B·T, h, w)
            pos = self.pos_2d(mask).to(src.dtype)
            src_seq = _to_clip_sequence(src, B, T)  # (T·h·w, B, C)
            fused = self.vlf(tgt=src_seq, memory=words_seq, memory_key_padding_mask=word_mask, pos=text_pos)
            if lvl < len(self.in_features):
                lang = self.lvf(
                    tgt=words_seq,
                    memory=src_seq,
                    memory_key_padding_mask=mask.view(B, T * h * w),
                    pos=_to_clip_sequence(pos, B, T),
                )
            srcs.append(fused.view(T, h, w, B, C).permute(3, 0, 4, 1, 2).reshape(B * T, C, h, w))
            masks.append(mask)
            poses.append(pos)
        valid = (~word_mask).transpose(0, 1).unsqueeze(-1).to(lang.dtype)  # (L, B, 1)
        text_feature = (lang * valid).sum(0) / valid.sum(0)  # (B, C): mean over valid tokens
        return {"srcs": srcs, "masks": masks, "pos": poses, "text_feature": text_feature}


def _to_clip_sequence(x: Tensor, B: int, T: int) -> Tensor:
    """(B·T, C, h, w) → (T·h·w, B, C): one attention sequence per clip."""
    _, C, h, w = x.shape
    return x.view(B, T, C, h, w).permute(1, 3, 4, 0, 2).reshape(T * h * w, B, C)
