from .build import SOC_DECODER_REGISTRY, build_decoder
from .deformable_transformer import DeformableTransformer
from .sim import SIM
from .voc import VOC
