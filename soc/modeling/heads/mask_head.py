"""Dynamic mask head (CondInst / ReferFormer style), as in the authors' ``SOC.dynamic_mask_with_coords``.

A controller MLP turns every query into the weights of a small stack of 1×1 convolutions, applied to the
pixel decoder's mask features concatenated with relative coordinates. As the authors' code: coordinates are in
input **pixels** (reference centre × unpadded input size − cell centre at stride 4, offset 2), not normalised;
masks stay at the resolution of the mask features (stride 4 of the padded input). Differences: batched
``einsum`` in place of one grouped convolution over all instances (same function).
"""

from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .mlp import MLP

__all__ = ["DynamicMaskHead"]


class DynamicMaskHead(nn.Module):
    """Per-query dynamic 1×1 convolutions over shared mask features."""

    def __init__(
        self,
        *,
        hidden_dim: int,
        mask_dim: int = 8,
        controller_layers: int = 3,
        dynamic_channels: int = 8,
        rel_coord: bool = True,
        stride: int = 4,
    ):
        """
        Args:
            hidden_dim: width C of the queries.
            mask_dim: channels of the mask features.
            controller_layers: number of dynamic conv layers (the controller MLP itself always has 3 layers).
            dynamic_channels: channels of the hidden dynamic layers.
            rel_coord: append the 2 relative-coordinate channels.
            stride: stride of the mask features w.r.t. the input (cell centres at ``stride·j + stride//2``).
        """
        super().__init__()
        self.rel_coord = rel_coord
        self.stride = stride
        in_ch = mask_dim + (2 if rel_coord else 0)
        self.layer_shapes: List[Tuple[int, int]] = []  # (out, in) per dynamic layer
        for i in range(controller_layers):
            out_ch = 1 if i == controller_layers - 1 else dynamic_channels
            self.layer_shapes.append((out_ch, in_ch))
            in_ch = out_ch
        self.weight_nums = [o * i for o, i in self.layer_shapes]
        self.bias_nums = [o for o, _ in self.layer_shapes]
        self.controller = MLP(hidden_dim, hidden_dim, sum(self.weight_nums) + sum(self.bias_nums), 3)
        for layer in self.controller.layers:
            nn.init.zeros_(layer.bias)
            nn.init.xavier_uniform_(layer.weight)

    def forward(
        self, queries: Tensor, references: Tensor, mask_features: Tensor, image_sizes: Tensor
    ) -> Tensor:
        """
        Legend: B clips, T frames, Q queries, C width, D mask channels, h × w mask-feature size.

        Args:
            queries: (B, T, Q, C).
            references: (B, T, Q, 2) normalised (cx, cy) of each query's reference box.
            mask_features: (B, T, D, h, w).
            image_sizes: (B, 2) (height, width) in pixels of each clip's unpadded input.

        Returns:
            (B, T, Q, h, w) mask logits.
        """
        B, T, Q, _ = queries.shape
        h, w = mask_features.shape[-2:]
        params = self.controller(queries)  # (B, T, Q, n_params)
        splits = torch.split(params, self.weight_nums + self.bias_nums, dim=-1)
        n = len(self.layer_shapes)
        x = mask_features.unsqueeze(2).expand(B, T, Q, *mask_features.shape[2:])  # (B, T, Q, D, h, w)
        if self.rel_coord:
            scale = image_sizes.flip(-1).to(references.dtype).view(B, 1, 1, 2)  # (w, h)
            ref_px = references * scale
            ys = torch.arange(h, dtype=torch.float32, device=x.device) * self.stride + self.stride // 2
            xs = torch.arange(w, dtype=torch.float32, device=x.device) * self.stride + self.stride // 2
            rel_x = ref_px[..., 0, None, None] - xs.view(1, 1, 1, 1, w)  # (B, T, Q, 1, w)
            rel_y = ref_px[..., 1, None, None] - ys.view(1, 1, 1, h, 1)  # (B, T, Q, h, 1)
            rel = torch.stack([rel_x.expand(B, T, Q, h, w), rel_y.expand(B, T, Q, h, w)], dim=3)
            x = torch.cat([x, rel.to(x.dtype)], dim=3)  # (B, T, Q, D+2, h, w)
        for i, (out_ch, in_ch) in enumerate(self.layer_shapes):
            weight = splits[i].reshape(B, T, Q, out_ch, in_ch)
            bias = splits[n + i].reshape(B, T, Q, out_ch, 1, 1)
            x = torch.einsum("btqoi,btqihw->btqohw", weight, x) + bias
            if i < n - 1:
                x = F.relu(x)
        return x[:, :, :, 0]
