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

from typing import Dict

from detectron2.config import configurable
from torch import Tensor, nn

from .attention_layers import CrossAttentionLayer, FFNLayer, SelfAttentionLayer

__all__ = ["VOC"]


class VOC(nn.Module):
    """Clusters the frame queries of a clip into N video-level object queries, guided by the sentence."""

    @configurable
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

    @classmethod
    def from_config(cls, cfg) -> Dict[str, object]:
        v = cfg.MODEL.SOC.VOC
        return {
            "hidden_dim": cfg.MODEL.SOC.HIDDEN_DIM,
            "num_frame_queries": cfg.MODEL.SOC.DECODER.NUM_QUERIES,
            "num_queries": v.NUM_QUERIES,
            "nheads": v.NHEADS,
            "enc_layers": v.ENC_LAYERS,
            "dec_layers": v.DEC_LAYERS,
            "dim_feedforward": v.DIM_FEEDFORWARD,
            "dropout": v.DROPOUT,
        }

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
