"""SOC: Semantic-assisted Object Cluster for referring video object segmentation, as a Detectron2 project.

Importing ``soc`` registers the model (``META_ARCH_REGISTRY["SOC"]``, the Video Swin backbone, SOC's neck and
decoder registries) and the builtin datasets.
"""
from . import data, evaluation, modeling  # noqa: F401  (registration)
from .config import add_soc_config

__version__ = "0.1.0"
