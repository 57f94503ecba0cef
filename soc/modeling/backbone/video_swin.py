"""Video Swin Transformer backbone (torchvision's ``SwinTransformer3d``) tapped per frame, as SOC uses it.

Differences from the authors' wrapper (``models/video_swin_transformer.py``): none in the function computed.
The window attention is :class:`~.window_attention.ShiftedWindowAttention3d`, torchvision's module (same
parameters) computed through fused attention, and the MLP a :class:`~soc.layers.linear_activation.FusedMLP`
(same modules).
torchvision's Swin3D with patch 1×4×4, the stage outputs taken after ``features[0, 2, 4, 6]`` (before patch
merging) and no final norm reproduces the authors' four stage outputs exactly; their keys map onto ours by
:mod:`soc.checkpoint.convert`. The backbone reads no file: the Kinetics weights
(``MODEL.VIDEO_SWIN.PRETRAINED``) are loaded into the built model by
:func:`soc.checkpoint.load_pretrained_weights`. The 2-D position encodings that the authors' ``Joiner``
attaches to the backbone live in the neck here.
"""

from typing import Dict, List, Sequence

from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY
from torch import Tensor, nn
from torchvision.models.swin_transformer import SwinTransformerBlock
from torchvision.models.video.swin_transformer import SwinTransformer3d

from ...layers.linear_activation import FusedMLP
from .frozen_stages import FrozenStagesBackbone
from .window_attention import ShiftedWindowAttention3d

__all__ = ["VideoSwinTransformer", "build_video_swin_backbone"]


def _swin_block(*args, attn_layer=None, **kwargs) -> SwinTransformerBlock:
    """torchvision's Swin block with our fused window attention (``SwinTransformer3d`` passes its own
    ``attn_layer``, which is replaced) and its MLP's GELU fused into the first linear at inference."""
    block = SwinTransformerBlock(*args, attn_layer=ShiftedWindowAttention3d, **kwargs)
    block.mlp = FusedMLP(block.mlp)
    return block


class VideoSwinTransformer(FrozenStagesBackbone):
    """
    Video Swin whose four stages produce per-frame maps ``res2..res5`` (strides 4, 8, 16, 32; channels
    C, 2C, 4C, 8C). With temporal patch size 1 the time axis is never downsampled, while attention windows
    (8 frames by default; the whole clip when it is shorter) mix frames.
    """

    def __init__(
        self,
        *,
        patch_size: Sequence[int] = (1, 4, 4),
        embed_dim: int = 96,
        depths: Sequence[int] = (2, 2, 6, 2),
        num_heads: Sequence[int] = (3, 6, 12, 24),
        window_size: Sequence[int] = (8, 7, 7),
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.2,
        out_features: Sequence[str] = ("res2", "res3", "res4", "res5"),
        frozen_stages: int = -1,
    ):
        """
        Args:
            patch_size: (t, h, w) patch of the embedding; t must be 1 to keep per-frame outputs.
            embed_dim: channels C of the first stage.
            depths: blocks per stage.
            num_heads: attention heads per stage.
            window_size: (t, h, w) attention window.
            mlp_ratio: MLP hidden width relative to the stage width.
            drop_path_rate: stochastic depth, linear over blocks from 0 to this value.
            out_features: which of ``res2..res5`` :meth:`forward` returns.
            frozen_stages: -1 trains everything; k >= 0 freezes the patch embedding and stages 0..k-1
                (with their patch merging), which then also stay in eval mode.
        """
        super().__init__()
        if patch_size[0] != 1:
            raise ValueError(f"VideoSwinTransformer: temporal patch size must be 1, got {tuple(patch_size)}")
        num_stages = len(depths)
        swin = SwinTransformer3d(
            patch_size=list(patch_size),
            embed_dim=embed_dim,
            depths=list(depths),
            num_heads=list(num_heads),
            window_size=list(window_size),
            mlp_ratio=mlp_ratio,
            stochastic_depth_prob=drop_path_rate,
            block=_swin_block,
        )
        # Only the stages are used: the final norm, pooling and classifier are dropped.
        self.patch_embed = swin.patch_embed
        self.pos_drop = swin.pos_drop
        self.features = swin.features
        self.num_stages = num_stages
        self.frozen_stages = frozen_stages

        names = [f"res{i + 2}" for i in range(num_stages)]
        unknown = set(out_features) - set(names)
        if unknown:
            raise ValueError(
                f"VideoSwinTransformer: unknown out_features {sorted(unknown)}; choose from {names}"
            )
        self._out_features = [n for n in names if n in out_features]
        self._out_feature_channels = {n: embed_dim * 2**i for i, n in enumerate(names)}
        self._out_feature_strides = {n: int(patch_size[1]) * 2**i for i, n in enumerate(names)}

        self.freeze()

    def _frozen_modules(self) -> List[nn.Module]:
        if self.frozen_stages < 0:
            return []
        modules: List[nn.Module] = [self.patch_embed, self.pos_drop]
        for stage in range(min(self.frozen_stages, self.num_stages)):
            modules.append(self.features[2 * stage])
            if 2 * stage + 1 < len(self.features):
                modules.append(self.features[2 * stage + 1])
        return modules

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        """
        Args:
            x: (B, T, 3, H, W) normalised frames.

        Returns:
            ``{"res2": (B·T, C, ⌈H/4⌉, ⌈W/4⌉), "res3": (B·T, 2C, ., .), ...}``, frames batch-major;
            the stage outputs before patch merging, without extra normalisation.
        """
        if x.dim() != 5:
            raise ValueError(f"VideoSwinTransformer expects (B, T, 3, H, W), got {tuple(x.shape)}")
        B, T = x.shape[:2]
        x = self.pos_drop(self.patch_embed(x.transpose(1, 2)))  # (B, T, h, w, C)
        outputs: Dict[str, Tensor] = {}
        for stage in range(self.num_stages):
            x = self.features[2 * stage](x)
            name = f"res{stage + 2}"
            if name in self._out_features:
                outputs[name] = x.permute(0, 1, 4, 2, 3).flatten(0, 1)  # (B·T, C, h, w)
            if 2 * stage + 1 < len(self.features) and stage + 1 < self.num_stages:
                x = self.features[2 * stage + 1](x)
        return outputs


@BACKBONE_REGISTRY.register()
def build_video_swin_backbone(cfg, input_shape: ShapeSpec) -> VideoSwinTransformer:
    """Build the Video Swin of ``cfg.MODEL.VIDEO_SWIN`` (``input_shape`` is unused: the input is RGB)."""
    c = cfg.MODEL.VIDEO_SWIN
    return VideoSwinTransformer(
        patch_size=c.PATCH_SIZE,
        embed_dim=c.EMBED_DIM,
        depths=c.DEPTHS,
        num_heads=c.NUM_HEADS,
        window_size=c.WINDOW_SIZE,
        mlp_ratio=c.MLP_RATIO,
        drop_path_rate=c.DROP_PATH_RATE,
        out_features=c.OUT_FEATURES,
        frozen_stages=c.FROZEN_STAGES,
    )
