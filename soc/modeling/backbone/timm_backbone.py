"""A timm image network (``features_only``) run on every frame of a clip, as SOC's backbone.

The network's feature levels become ``res<k>`` maps by their reduction ``2**k`` (timm's ``feature_info``):
stride 4 → ``res2`` ... stride 32 → ``res5``, the names and strides that Video Swin gives, so the neck and the
heads take any such network. The network is built without weights: ImageNet weights
(``MODEL.TIMM.PRETRAINED``) are loaded into ``backbone.body`` by
:func:`soc.checkpoint.load_pretrained_weights`.
"""

import math
from typing import Dict, List, Optional, Sequence

import timm
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY
from timm.layers import freeze_batch_norm_2d
from torch import Tensor, nn

from .frozen_stages import FrozenStagesBackbone

__all__ = ["TimmFrameBackbone", "build_timm_frame_backbone"]


class TimmFrameBackbone(FrozenStagesBackbone):
    """
    Per-frame maps of a timm network: ``(B, T, 3, H, W)`` frames → ``{res<k>: (B·T, C_k, ⌈H/2^k⌉, ⌈W/2^k⌉)}``
    (timm's own rounding; ceil for its CNNs). Frames are independent: no layer mixes time.
    """

    def __init__(
        self,
        *,
        model_name: str,
        out_indices: Optional[Sequence[int]] = None,
        freeze_bn: bool = False,
        frozen_stages: int = -1,
    ):
        """
        Args:
            model_name: a timm model with ``features_only`` support (e.g. ``efficientnet_lite0``).
            out_indices: timm's indices of the returned levels; None: timm's default levels, without those
                of stride < 4. Strides must be increasing powers of two, 4 or more.
            freeze_bn: every BatchNorm becomes a frozen affine map (timm's ``freeze_batch_norm_2d``, which
                keeps the activation of its fused norm-act layers), as detectron2's ``FrozenBN``.
            frozen_stages: -1 trains everything; k >= 0 freezes the layers before the first returned level's
                stage (the stem) and those of the first k returned levels, which then also stay in eval mode.
        """
        super().__init__()
        body = timm.create_model(
            model_name,
            pretrained=False,
            features_only=True,
            out_indices=None if out_indices is None else tuple(out_indices),
        )
        self.body = freeze_batch_norm_2d(body) if freeze_bn else body
        info = self.body.feature_info
        reductions, channels, modules = info.reduction(), info.channels(), info.module_name()
        positions = [i for i, r in enumerate(reductions) if out_indices is not None or r >= 4]
        strides = [reductions[i] for i in positions]
        if not strides or any(s < 4 or s & (s - 1) for s in strides) or strides != sorted(set(strides)):
            raise ValueError(
                f"TimmFrameBackbone: {model_name} levels {list(info.out_indices)} have strides {reductions}; "
                "the returned ones must be increasing powers of two >= 4"
            )
        # (position in the body's output list, name, module of the level in the body)
        self._levels = [
            (i, f"res{int(math.log2(reductions[i]))}", self._body_module(modules[i])) for i in positions
        ]
        self._out_features = [name for _, name, _ in self._levels]
        self._out_feature_channels = {name: channels[i] for i, name, _ in self._levels}
        self._out_feature_strides = {name: reductions[i] for i, name, _ in self._levels}
        self.frozen_stages = frozen_stages
        self.freeze()

    def _body_module(self, name: str) -> str:
        """The body's name of timm's module ``name`` (timm's feature wrappers flatten ``stages.0`` to
        ``stages_0``)."""
        modules = dict(self.body.named_modules())
        for candidate in (name, name.replace(".", "_")):
            if candidate in modules:
                return candidate
        raise ValueError(f"TimmFrameBackbone: no module {name!r} in the features network")

    def _frozen_modules(self) -> List[nn.Module]:
        """The body's modules registered before the first level's module (``frozen_stages`` 0) or up to the
        end of level ``frozen_stages - 1``'s module, without their ancestors: registration order is the order
        of computation in timm's CNNs."""
        if self.frozen_stages < 0:
            return []
        named = list(self.body.named_modules())
        order = [n for n, _ in named]
        if self.frozen_stages == 0:
            last = self._levels[0][2]
            end = order.index(last)
        else:
            last = self._levels[min(self.frozen_stages, len(self._levels)) - 1][2]
            end = max(j for j, n in enumerate(order) if n == last or n.startswith(last + ".")) + 1
        return [m for n, m in named[:end] if not (n == "" or last.startswith(n + "."))]

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        """
        Args:
            x: (B, T, 3, H, W) normalised frames.

        Returns:
            ``{"res2": (B·T, C_2, h_2, w_2), ...}`` at strides 4, 8, ..., frames batch-major.
        """
        if x.dim() != 5:
            raise ValueError(f"TimmFrameBackbone expects (B, T, 3, H, W), got {tuple(x.shape)}")
        maps = self.body(x.flatten(0, 1))  # list over timm's levels, (B·T, C, h, w)
        return {name: maps[i] for i, name, _ in self._levels}


@BACKBONE_REGISTRY.register()
def build_timm_frame_backbone(cfg, input_shape: ShapeSpec) -> TimmFrameBackbone:
    """The per-frame timm network of ``cfg.MODEL.TIMM`` (``input_shape`` is unused: the input is RGB)."""
    c = cfg.MODEL.TIMM
    return TimmFrameBackbone(
        model_name=c.NAME,
        out_indices=list(c.OUT_INDICES) or None,
        freeze_bn=c.FREEZE_BN,
        frozen_stages=c.FROZEN_STAGES,
    )
