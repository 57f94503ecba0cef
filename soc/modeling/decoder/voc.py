"""VOC: video-level object cluster (paper §3.3; authors' ``models/voc.py``, after VITA).

A temporal encoder (full self-attention over the T·Q frame queries of a clip, no temporal embedding) followed
by an object-grouping decoder whose N video queries start as the sentence feature (repeated N times), with a
learned query position ``query_embed`` and one key position per frame-query slot ``fq_pos`` (repeated over
time). Post-norm layers; a final ``decoder_norm``. Output: N video queries per clip and per decoder layer.

Deliberate difference: the authors reshape ``[L, T, B, Q, C]`` straight to ``[L·B, T, Q, C]``, which mixes
batch and time when B > 1 and T > 1; here the input is ``[L, B, T, Q, C]`` and each clip only sees its own
frames. At B = 1 both are identical. The windowed temporal encoder (``window_size > 0``, unused by every
released configuration) is not implemented.
"""

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["VOC"]


def _xavier_(module: nn.Module) -> None:
    for p in module.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)


def _with_pos(x: Tensor, pos: Optional[Tensor]) -> Tensor:
    return x if pos is None else x + pos


class SelfAttentionLayer(nn.Module):
    """Post-norm self-attention: ``norm(x + MHA(x + pos, x + pos, x))``; sequence-first (S, N, C)."""

    def __init__(self, d_model: int, nhead: int, dropout: float = 0.0):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        _xavier_(self)

    def forward(self, tgt: Tensor, query_pos: Optional[Tensor] = None) -> Tensor:
        q = k = _with_pos(tgt, query_pos)
        tgt2 = self.self_attn(q, k, value=tgt)[0]
        return self.norm(tgt + self.dropout(tgt2))


class CrossAttentionLayer(nn.Module):
    """Post-norm cross-attention: ``norm(x + MHA(x + query_pos, mem + pos, mem))``; sequence-first."""

    def __init__(self, d_model: int, nhead: int, dropout: float = 0.0):
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        _xavier_(self)

    def forward(
        self, tgt: Tensor, memory: Tensor, pos: Optional[Tensor] = None, query_pos: Optional[Tensor] = None
    ) -> Tensor:
        tgt2 = self.multihead_attn(query=_with_pos(tgt, query_pos), key=_with_pos(memory, pos), value=memory)[
            0
        ]
        return self.norm(tgt + self.dropout(tgt2))


class FFNLayer(nn.Module):
    """Post-norm FFN: ``norm(x + W2 ReLU(W1 x))``."""

    def __init__(self, d_model: int, dim_feedforward: int, dropout: float = 0.0):
        super().__init__()
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm = nn.LayerNorm(d_model)
        _xavier_(self)

    def forward(self, tgt: Tensor) -> Tensor:
        tgt2 = self.linear2(self.dropout(F.relu(self.linear1(tgt))))
        return self.norm(tgt + self.dropout(tgt2))


class VOC(nn.Module):
    """Clusters the frame queries of a clip into N video-level object queries, guided by the sentence."""

    def __init__(
        self,
        *,
        hidden_dim: int,
        num_frame_queries: int,
        num_queries: int,
        nheads: int = 8,
        enc_layers: int = 3,
        dec_layers: int = 3,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
    ):
        """
        Args:
            hidden_dim: width C.
            num_frame_queries: Q frame queries per frame (size of ``fq_pos``).
            num_queries: N video queries.
            nheads, enc_layers, dec_layers, dim_feedforward: sizes of the encoder and decoder.
            dropout: of every layer, attention included (hard-coded 0.1 by the authors).
        """
        super().__init__()
        self.num_queries = num_queries
        self.enc_self_attn = nn.ModuleList(
            [SelfAttentionLayer(hidden_dim, nheads, dropout) for _ in range(enc_layers)]
        )
        self.enc_ffn = nn.ModuleList(
            [FFNLayer(hidden_dim, dim_feedforward, dropout) for _ in range(enc_layers)]
        )
        self.transformer_self_attention_layers = nn.ModuleList(
            [SelfAttentionLayer(hidden_dim, nheads, dropout) for _ in range(dec_layers)]
        )
        self.transformer_cross_attention_layers = nn.ModuleList(
            [CrossAttentionLayer(hidden_dim, nheads, dropout) for _ in range(dec_layers)]
        )
        self.transformer_ffn_layers = nn.ModuleList(
            [FFNLayer(hidden_dim, dim_feedforward, dropout) for _ in range(dec_layers)]
        )
        self.fq_pos = nn.Embedding(num_frame_queries, hidden_dim)
        self.query_embed = nn.Embedding(num_queries, hidden_dim)
        self.decoder_norm = nn.LayerNorm(hidden_dim)

    def forward(self, frame_queries: Tensor, sentence: Tensor) -> Tensor:
        """
        Legend: L decoder layers fed in (processed independently, shared weights), B clips, T frames,
        Q frame queries, N video queries, C width.

        Args:
            frame_queries: (L, B, T, Q, C).
            sentence: (B, C) sentence feature, the initial content of every video query.

        Returns:
            (L, B, N, C) video queries.
        """
        L, B, T, Q, C = frame_queries.shape
        LB = L * B
        src = frame_queries.reshape(LB, T * Q, C).transpose(0, 1)  # (T·Q, L·B, C), layer-major
        for attn, ffn in zip(self.enc_self_attn, self.enc_ffn):
            src = ffn(attn(src))
        pos = self.fq_pos.weight[None, :, None, :].expand(T, Q, LB, C).reshape(T * Q, LB, C)
        query_pos = self.query_embed.weight.unsqueeze(1).expand(self.num_queries, LB, C)
        output = sentence.unsqueeze(0).expand(L, B, C).reshape(1, LB, C).expand(self.num_queries, LB, C)
        for cross, self_attn, ffn in zip(
            self.transformer_cross_attention_layers,
            self.transformer_self_attention_layers,
            self.transformer_ffn_layers,
        ):
            output = cross(output, src, pos=pos, query_pos=query_pos)
            output = self_attn(output, query_pos=query_pos)
            output = ffn(output)
        output = self.decoder_norm(output)  # (N, L·B, C)
        return output.transpose(0, 1).reshape(L, B, self.num_queries, C)
