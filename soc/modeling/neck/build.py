"""Registry and builder of SOC necks (vision-language fusion between the backbone and the decoder)."""

from typing import Dict

from detectron2.layers import ShapeSpec
from detectron2.utils.registry import Registry
from torch import nn

__all__ = ["SOC_NECK_REGISTRY", "build_neck"]

SOC_NECK_REGISTRY = Registry("SOC_NECK")
SOC_NECK_REGISTRY.__doc__ = """
Registry for SOC necks, which fuse the backbone's per-frame maps with the expression.

Called as ``obj(cfg, input_shape)`` with ``input_shape`` the backbone's ``output_shape()``
(``Dict[str, ShapeSpec]``); returns an ``nn.Module`` whose ``forward(features, pad_mask, words, word_mask,
num_frames)`` returns a dict with

* ``srcs``: list over levels of ``(B·T, C, h_l, w_l)`` fused maps (frames batch-major);
* ``masks``: list of ``(B·T, h_l, w_l)`` bool padding masks;
* ``pos``: list of ``(B·T, C, h_l, w_l)`` position encodings;
* ``text_feature``: ``(B, C)`` vision-aware sentence feature (the contrastive loss's text side).

The module also exposes ``num_levels`` (int).
"""


def build_neck(cfg, input_shape: Dict[str, ShapeSpec]) -> nn.Module:
    """Build the neck named by ``cfg.MODEL.SOC.NECK.NAME``."""
    name = cfg.MODEL.SOC.NECK.NAME
    neck = SOC_NECK_REGISTRY.get(name)(cfg, input_shape)
    if not isinstance(neck, nn.Module) or not hasattr(neck, "num_levels"):
        raise TypeError(f"SOC neck {name!r} must be an nn.Module with a num_levels attribute")
    return neck
