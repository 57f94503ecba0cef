"""SOC's model: importing this package registers the backbone, neck, decoder and meta-architecture."""

from .backbone import build_video_swin_backbone, VideoSwinTransformer
from .criterion import SOCCriterion
from .decoder import SIM, SOC_DECODER_REGISTRY, build_decoder
from .matcher import HungarianTrajectoryMatcher
from .meta_arch import SOC
from .neck import MMF, SOC_NECK_REGISTRY, build_neck
from .text_encoder import TextEncoder
