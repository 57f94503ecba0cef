"""Conversion of the authors' checkpoints, and a checkpointer that loads them directly."""

from .checkpointer import SOCCheckpointer
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
