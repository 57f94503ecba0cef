"""Layers shared by SOC's components."""

from .ms_deform_attn import MSDeformAttn, ms_deform_attn, ms_deform_attn_backend, ms_deform_attn_reference
from .position_encoding import PositionEmbeddingSine1D, PositionEmbeddingSine2D

__all__ = ["MSDeformAttn", "ms_deform_attn", "ms_deform_attn_backend", "ms_deform_attn_reference"]
