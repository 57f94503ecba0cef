"""Layers shared by SOC's components."""
from .ms_deform_attn import MSDeformAttn, ms_deform_attn, ms_deform_attn_backend, ms_deform_attn_reference

__all__ = ["MSDeformAttn", "ms_deform_attn", "ms_deform_attn_backend", "ms_deform_attn_reference"]
