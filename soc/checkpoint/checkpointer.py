"""``SOCCheckpointer``: a ``DetectionCheckpointer`` that also reads the authors' SOC checkpoints.

``MODEL.WEIGHTS`` may point at an authors' ``.pth.tar`` (a dict with ``model_state_dict``) or a bare official
state_dict: the file is converted on the fly with :func:`soc.checkpoint.convert.convert_official_state_dict`,
as detectron2 converts Caffe2 and pycls files in ``_load_file``. Files written by detectron2 (or by
``tools/convert_soc_checkpoint.py``) load unchanged.
"""

import logging
from typing import Any, Dict

from detectron2.checkpoint import DetectionCheckpointer

from .convert import convert_official_state_dict, extract_state_dict, infer_variant, is_official_state_dict

__all__ = ["SOCCheckpointer"]

logger = logging.getLogger(__name__)


class SOCCheckpointer(DetectionCheckpointer):
    """Loads detectron2 checkpoints and, converted on the fly, the authors' SOC checkpoints."""

    def _torch_load(self, f: str) -> Dict[str, Any]:
        loaded = super()._torch_load(f)
        try:
            state_dict = extract_state_dict(loaded)
        except ValueError:
            return loaded
        if not is_official_state_dict(state_dict):
            return loaded
        converted, unplaced, dropped = convert_official_state_dict(state_dict)
        if unplaced:
            raise ValueError(f"{f}: official SOC checkpoint with keys no rule can place: {unplaced[:20]}")
        logger.info(
            f"Converted the authors' SOC checkpoint {f} on the fly ({len(converted)} tensors, {len(dropped)} "
            f"dropped; variant {infer_variant(converted)})"
        )
        return {"model": converted, "__author__": "SOC authors (converted)", "matching_heuristics": False}
