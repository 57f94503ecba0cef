"""Conversion of the authors' checkpoints, a checkpointer that loads them directly, and the loading of the
pretrained Kinetics backbone into a built model."""

from .checkpointer import SOCCheckpointer, load_pretrained_weights
from .convert import (
    convert_checkpoint_file,
    convert_official_state_dict,
    convert_to_official_state_dict,
    convert_video_swin_kinetics,
    extract_state_dict,
    infer_variant,
    is_converted_state_dict,
    is_official_state_dict,
)
