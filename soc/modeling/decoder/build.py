"""Registry and builder of SOC decoders (frame-level queries, video-level clustering and prediction heads)."""

from detectron2.utils.registry import Registry
from torch import nn

__all__ = ["SOC_DECODER_REGISTRY", "build_decoder"]

SOC_DECODER_REGISTRY = Registry("SOC_DECODER")
SOC_DECODER_REGISTRY.__doc__ = """
Registry for SOC decoders, which turn the neck's fused levels into per-frame query predictions.

Called as ``obj(cfg)``; returns an ``nn.Module`` whose ``forward(srcs, masks, pos, sentence, num_frames)``
takes the neck's lists (``(B·T, C, h_l, w_l)`` maps, masks, position encodings) and the ``(B, C)`` sentence
feature, and returns a dict with (``L'`` = the decoder layers whose predictions are returned: all of them in
training, the test head layer in evaluation)

* ``layers``: list of the ``L'`` decoder-layer indices;
* ``pred_cls``: ``(L', B, T, Q, K)`` class logits; ``pred_boxes``: ``(L', B, T, Q, 4)`` normalised cxcywh;
* ``queries``: ``(L', B, T, Q, C)`` the queries the heads read;
* ``mask_references``: ``(L', B, T, Q, 2)`` normalised centres for the mask head's relative coordinates;
* ``pred_video_queries``: ``(L', B, N, C)`` video-level query embeddings (contrastive loss);
* ``memory``: list of encoder maps ``(B·T, C, h_l, w_l)``, finest first (s8, s16, s32).
"""


def build_decoder(cfg) -> nn.Module:
    """Build the decoder named by ``cfg.MODEL.SOC.DECODER.NAME``."""
    name = cfg.MODEL.SOC.DECODER.NAME
    decoder = SOC_DECODER_REGISTRY.get(name)(cfg)
    if not isinstance(decoder, nn.Module):
        raise TypeError(f"SOC decoder {name!r} must be an nn.Module, got {type(decoder).__name__}")
    return decoder
