"""Post-norm transformer layers on sequence-first tensors ``(S, N, C)``: self-attention, cross-attention, FFN.

The layers of Mask2Former's and VITA's transformer decoders in their post-norm form (the only form SOC's VOC
uses): ``norm(x + dropout(sublayer(x)))``, positions added to queries and keys but never to values, Xavier
initialisation of every matrix.
"""

from typing import Optional

from torch import Tensor, nn

from soc.layers.dropout import Dropout
from soc.layers.linear_activation import linear_activation

__all__ = ["CrossAttentionLayer", "FFNLayer", "SelfAttentionLayer", "with_pos_embed"]


def with_pos_embed(x: Tensor, pos: Optional[Tensor]) -> Tensor:
    """``x + pos``, or ``x`` when there is no position embedding."""
    return x if pos is None else x + pos


def _xavier_(module: nn.Module) -> None:
    for p in module.parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)


class SelfAttentionLayer(nn.Module):
    """``norm(x + MHA(x + pos, x + pos, x))``."""

    def __init__(self, d_model: int, nhead: int, dropout: float = 0.0):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = Dropout(dropout)
        _xavier_(self)

    def forward(self, tgt: Tensor, query_pos: Optional[Tensor] = None) -> Tensor:
        """tgt, query_pos: (S, N, C) → (S, N, C)."""
        q = k = with_pos_embed(tgt, query_pos)
        tgt2 = self.self_attn(q, k, value=tgt)[0]
        return self.norm(tgt + self.dropout(tgt2))


class CrossAttentionLayer(nn.Module):
    """``norm(x + MHA(x + query_pos, memory + pos, memory))``."""

    def __init__(self, d_model: int, nhead: int, dropout: float = 0.0):
        super().__init__()
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = Dropout(dropout)
        _xavier_(self)

    def forward(
        self, tgt: Tensor, memory: Tensor, pos: Optional[Tensor] = None, query_pos: Optional[Tensor] = None
    ) -> Tensor:
        """tgt, query_pos: (S, N, C); memory, pos: (S_m, N, C). Returns (S, N, C)."""
        tgt2 = self.multihead_attn(
            query=with_pos_embed(tgt, query_pos), key=with_pos_embed(memory, pos), value=memory
        )[0]
        return self.norm(tgt + self.dropout(tgt2))


class FFNLayer(nn.Module):
    """``norm(x + W2 dropout(ReLU(W1 x)))``."""

    def __init__(self, d_model: int, dim_feedforward: int, dropout: float = 0.0):
        super().__init__()
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm = nn.LayerNorm(d_model)
        _xavier_(self)

    def forward(self, tgt: Tensor) -> Tensor:
        """(..., C) → (..., C)."""
        tgt2 = self.linear2(linear_activation(tgt, self.linear1, "relu", self.dropout))
        return self.norm(tgt + self.dropout(tgt2))
