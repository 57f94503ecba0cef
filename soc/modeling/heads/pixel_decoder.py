"""The pixel decoder: MTTR's FPN-like spatial decoder (authors' ``FPNSpatialDecoder``), unchanged.

From the encoder memory at s32 down to the backbone's s4 stage: 3×3 conv + GroupNorm(8) + ReLU per level,
1×1 adapters on the finer maps added after nearest upsampling, and a final 3×3 conv to the mask-feature width.
"""

from typing import List, Sequence

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["FPNSpatialDecoder"]


class FPNSpatialDecoder(nn.Module):
    """Mask features at the resolution of the finest input map."""

    def __init__(self, context_dim: int, fpn_dims: Sequence[int], mask_kernels_dim: int = 8):
        """
        Args:
            context_dim: channels C of the coarsest input (the s32 memory); widths halve per level
                (C, C/2, C/4, C/8, C/16), each in a GroupNorm of 8 groups, so C ≥ 128.
            fpn_dims: channels of the finer inputs, coarse to fine (SOC: [C, C, C_s4]); with two entries the
                last level (``adapter3``/``lay5``/``gn5``) is omitted.
            mask_kernels_dim: output channels.
        """
        super().__init__()
        dims = [context_dim, context_dim // 2, context_dim // 4, context_dim // 8, context_dim // 16]
        self.lay1 = nn.Conv2d(context_dim, dims[0], 3, padding=1)
        self.gn1 = nn.GroupNorm(8, dims[0])
        self.lay2 = nn.Conv2d(dims[0], dims[1], 3, padding=1)
        self.gn2 = nn.GroupNorm(8, dims[1])
        self.lay3 = nn.Conv2d(dims[1], dims[2], 3, padding=1)
        self.gn3 = nn.GroupNorm(8, dims[2])
        self.lay4 = nn.Conv2d(dims[2], dims[3], 3, padding=1)
        self.gn4 = nn.GroupNorm(8, dims[3])
        self.adapter1 = nn.Conv2d(fpn_dims[0], dims[1], 1)
        self.adapter2 = nn.Conv2d(fpn_dims[1], dims[2], 1)
        self.add_extra_layer = len(fpn_dims) == 3
        if self.add_extra_layer:
            self.adapter3 = nn.Conv2d(fpn_dims[2], dims[3], 1)
            self.lay5 = nn.Conv2d(dims[3], dims[4], 3, padding=1)
            self.gn5 = nn.GroupNorm(8, dims[4])
            self.out_lay = nn.Conv2d(dims[4], mask_kernels_dim, 3, padding=1)
        else:
            self.out_lay = nn.Conv2d(dims[3], mask_kernels_dim, 3, padding=1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.constant_(m.bias, 0)

    def forward(self, x: Tensor, layer_features: List[Tensor]) -> Tensor:
        """
        Args:
            x: (N, C, h32, w32) coarsest map.
            layer_features: finer maps, coarse to fine: [(N, C, h16, w16), (N, C, h8, w8), (N, C_s4, h4, w4)].

        Returns:
            (N, mask_kernels_dim, h4, w4).
        """
        x = F.relu(self.gn1(self.lay1(x)))
        x = F.relu(self.gn2(self.lay2(x)))
        stages = [(self.adapter1, self.lay3, self.gn3), (self.adapter2, self.lay4, self.gn4)]
        if self.add_extra_layer:
            stages.append((self.adapter3, self.lay5, self.gn5))
        for (adapter, lay, gn), feat in zip(stages, layer_features):
            cur = adapter(feat)
            x = cur + F.interpolate(x, size=cur.shape[-2:], mode="nearest")
            x = F.relu(gn(lay(x)))
        return self.out_lay(x)
