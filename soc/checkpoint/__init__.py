"""Conversion of the authors' checkpoints, a checkpointer that loads them directly, the loading of the
pretrained Kinetics backbone into a built model, weight files read without running their code, and weights
named by URI (``hf://`` on the Hugging Face Hub, ``torchvision://`` Swin3D weights)."""

from .checkpointer import SOCCheckpointer, load_pretrained_weights, load_text_encoder_weights
from .convert import (
    apply_official_config,
    convert_checkpoint_file,
    convert_official_state_dict,
    convert_to_official_state_dict,
    convert_torchvision_swin3d,
    convert_video_swin_kinetics,
    extract_state_dict,
    infer_variant,
    is_converted_state_dict,
    is_official_state_dict,
)
from .efficientnet_lite import convert_efficientnet_lite0, load_timm_backbone_weights
from .weights_io import WeightsFileError, load_weights_file
from .weight_sources import HuggingFaceHubHandler, load_torchvision_swin3d
