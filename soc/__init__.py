"""SOC: Semantic-assisted Object Cluster for referring video object segmentation, as a Detectron2 project."""
from .config import add_soc_config

__version__ = "0.1.0"
