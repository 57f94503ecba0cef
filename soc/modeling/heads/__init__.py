from .mask_head import DynamicMaskHead
from .mlp import MLP
from .pixel_decoder import FPNSpatialDecoder
