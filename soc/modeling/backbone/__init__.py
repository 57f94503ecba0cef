from .d2_resnet import FrameResNet, build_frame_resnet_backbone
from .timm_backbone import TimmFrameBackbone, build_timm_frame_backbone
from .video_swin import VideoSwinTransformer, build_video_swin_backbone
