"""Sine position encodings: 1-D for text tokens, 2-D for feature maps (DETR / Deformable DETR conventions).

Both depend only on a padding mask (True = padding), so positions count valid elements only: a padded
sentence or frame gets the same encoding on its valid part as the unpadded one.
"""

import math
from typing import Optional

import torch
from torch import Tensor, nn

__all__ = ["PositionEmbeddingSine1D", "PositionEmbeddingSine2D"]


def _sine_embed(positions: Tensor, num_pos_feats: int, temperature: float) -> Tensor:
    """(..., ) positions → (..., num_pos_feats): sin on even, cos on odd channels, frequencies in pairs."""
    dim_t = torch.arange(num_pos_feats, dtype=torch.float32, device=positions.device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_pos_feats)
    pos = positions[..., None] / dim_t
    return torch.stack((pos[..., 0::2].sin(), pos[..., 1::2].cos()), dim=-1).flatten(-2)


class _PositionEmbeddingSine(nn.Module):
    """The hyper-parameters of both encodings: ``num_pos_feats`` channels per axis, the frequency
    ``temperature``, and with ``normalize`` positions scaled to (0, ``scale``] (default 2π)."""

    def __init__(self, num_pos_feats: int, temperature: float, normalize: bool, scale: Optional[float]):
        super().__init__()
        if scale is not None and not normalize:
            raise ValueError(f"{type(self).__name__}: normalize must be True if scale is passed")
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.normalize = normalize
        self.scale = 2 * math.pi if scale is None else scale


class PositionEmbeddingSine1D(_PositionEmbeddingSine):
    """
    1-D sine encoding of token positions.

    With ``normalize``, the k-th valid token (1-based) gets position ``k / n_valid · scale`` (no −0.5 offset,
    as SOC/ReferFormer's text encoding), i.e. positions lie in (0, scale].
    """

    def __init__(
        self,
        num_pos_feats: int = 256,
        temperature: float = 10000.0,
        normalize: bool = False,
        scale: Optional[float] = None,
    ):
        super().__init__(num_pos_feats, temperature, normalize, scale)

    def forward(self, mask: Tensor) -> Tensor:
        """
        Args:
            mask: (B, L) bool, True at padding tokens.

        Returns:
            (B, C, L) float32 encoding, C = ``num_pos_feats``.
        """
        x_embed = (~mask).cumsum(1, dtype=torch.float32)  # (B, L)
        if self.normalize:
            x_embed = x_embed / (x_embed[:, -1:] + 1e-6) * self.scale
        return _sine_embed(x_embed, self.num_pos_feats, self.temperature).permute(0, 2, 1)


class PositionEmbeddingSine2D(_PositionEmbeddingSine):
    """
    2-D sine encoding of feature-map positions: ``num_pos_feats`` channels for y, then as many for x.

    With ``normalize``, row i (1-based among valid rows) gets ``(i − 0.5) / n_valid_rows · scale`` (the
    Deformable-DETR offset), columns likewise.
    """

    def __init__(
        self,
        num_pos_feats: int = 64,
        temperature: float = 10000.0,
        normalize: bool = False,
        scale: Optional[float] = None,
    ):
        super().__init__(num_pos_feats, temperature, normalize, scale)

    def forward(self, mask: Tensor) -> Tensor:
        """
        Args:
            mask: (N, H, W) bool, True at padding.

        Returns:
            (N, 2·num_pos_feats, H, W) float32 encoding (y channels first).
        """
        not_mask = ~mask
        y_embed = not_mask.cumsum(1, dtype=torch.float32)
        x_embed = not_mask.cumsum(2, dtype=torch.float32)
        if self.normalize:
            eps = 1e-6
            y_embed = (y_embed - 0.5) / (y_embed[:, -1:, :] + eps) * self.scale
            x_embed = (x_embed - 0.5) / (x_embed[:, :, -1:] + eps) * self.scale
        pos_y = _sine_embed(y_embed, self.num_pos_feats, self.temperature)
        pos_x = _sine_embed(x_embed, self.num_pos_feats, self.temperature)
        return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)
