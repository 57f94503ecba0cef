"""SOC: Semantic-assisted Object Cluster for referring video object segmentation, as a Detectron2 project.

Importing ``soc`` registers the model (``META_ARCH_REGISTRY["SOC"]``, the Video Swin backbone, SOC's neck and
decoder registries) and the builtin datasets.
"""

import warnings

with warnings.catch_warnings():
    # fvcore.nn's focal losses and detectron2's box_regression call torch.jit.script at import time, which
    # this torch deprecates: a FutureWarning about their code on every command. Silenced for these imports;
    # entry points import ``soc`` before detectron2 so that these are the first imports of those modules.
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
    import detectron2.modeling  # noqa: F401
    import fvcore.nn  # noqa: F401

from . import data, evaluation, modeling  # noqa: E402,F401  (registration)
from .config import add_soc_config  # noqa: E402

__version__ = "0.1.0"
