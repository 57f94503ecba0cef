"""detectron2's ResNet run on every frame of a clip, as SOC's backbone.

:class:`FrameResNet` *is* detectron2's ``ResNet`` (a subclass that only reshapes the clip), so its parameters
keep ResNet's names (``backbone.stem.conv1.weight``, ``backbone.res2.0.conv1.norm.weight`` in SOC): the
detectron2 model zoo's ImageNet files (``detectron2://ImageNetPretrained/torchvision/R-50.pkl``, MSRA's Caffe2
``R-50.pkl`` after the checkpointer's Caffe2 renaming) load through ``MODEL.WEIGHTS`` like for any detectron2
model. Configured by detectron2's own keys: ``MODEL.RESNETS.*`` and ``MODEL.BACKBONE.FREEZE_AT``.
"""

from typing import Dict

from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, ResNet, build_resnet_backbone
from torch import Tensor

__all__ = ["FrameResNet", "build_frame_resnet_backbone"]


class FrameResNet(ResNet):
    """detectron2's ``ResNet`` on ``(B, T, 3, H, W)`` clips: frames are independent images."""

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        """
        Args:
            x: (B, T, 3, H, W) normalised frames.

        Returns:
            ``{"res2": (B·T, C_2, ⌈H/4⌉, ⌈W/4⌉), ...}``, the maps of ``out_features``, frames batch-major.
        """
        if x.dim() != 5:
            raise ValueError(f"FrameResNet expects (B, T, 3, H, W), got {tuple(x.shape)}")
        return super().forward(x.flatten(0, 1))


@BACKBONE_REGISTRY.register()
def build_frame_resnet_backbone(cfg, input_shape: ShapeSpec) -> FrameResNet:
    """The ResNet of detectron2's ``build_resnet_backbone(cfg, input_shape)``, applied per frame."""
    resnet = build_resnet_backbone(cfg, input_shape)
    # Its stem and stages, already frozen up to MODEL.BACKBONE.FREEZE_AT, under the per-frame forward.
    return FrameResNet(
        resnet.stem,
        [list(stage) for stage in resnet.stages],
        out_features=resnet._out_features,
    )
