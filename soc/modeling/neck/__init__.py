from .build import SOC_NECK_REGISTRY, build_neck
from .mmf import MMF, MMFLayer
