"""``SOCCheckpointer``: a ``DetectionCheckpointer`` that also reads the authors' SOC checkpoints and the
Kinetics Video-Swin weights; ``load_pretrained_weights``: what a fresh model loads before training.

``MODEL.WEIGHTS`` may point at an authors' ``.pth.tar`` (a dict with ``model_state_dict``) or a bare official
state_dict: the file is converted on the fly with :func:`soc.checkpoint.convert.convert_official_state_dict`,
as detectron2 converts Caffe2 and pycls files in ``_load_file``. Files written by detectron2 (or by
``tools/convert_soc_checkpoint.py``) load unchanged.

``MODEL.VIDEO_SWIN.PRETRAINED`` (a Kinetics Video-Swin file, as the authors initialise the backbone) is not
read by the model: :func:`load_pretrained_weights` loads it into the built model's backbone when no
``MODEL.WEIGHTS`` is given, the way detectron2 loads ImageNet backbones through ``MODEL.WEIGHTS``.
"""

import logging
import os
import pickle
import tempfile
from typing import Any, Dict

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import CfgNode
from torch import nn

from .convert import (
    convert_official_state_dict,
    convert_video_swin_kinetics,
    extract_state_dict,
    infer_variant,
    is_official_state_dict,
)

__all__ = ["SOCCheckpointer", "load_pretrained_weights"]

logger = logging.getLogger(__name__)


def _atomic_write(path: str, write) -> None:
    """Write ``path`` through a temporary file in the same folder and rename it into place, so that a crash
    (or SIGKILL) leaves either the previous file or the complete new one, never a truncated file."""
    folder = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


class SOCCheckpointer(DetectionCheckpointer):
    """Loads detectron2 checkpoints and, converted on the fly, the authors' SOC checkpoints.

    Checkpoints and the ``last_checkpoint`` tag are written atomically; a missing or unreadable file is an
    error that names it.
    """

    def save(self, name: str, **kwargs: Any) -> None:
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        data.update({key: obj.state_dict() for key, obj in self.checkpointables.items()})
        data.update(kwargs)
        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        self.logger.info(f"Saving checkpoint to {save_file}")
        _atomic_write(save_file, lambda f: torch.save(data, f))
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        tag = os.path.join(self.save_dir, "last_checkpoint")
        _atomic_write(tag, lambda f: f.write(last_filename_basename.encode()))

    def load(self, path: str, *args, **kwargs) -> Dict[str, Any]:
        if path and "://" not in path and not os.path.isfile(path):
            raise FileNotFoundError(f"checkpoint {path} (MODEL.WEIGHTS or last_checkpoint) does not exist")
        return super().load(path, *args, **kwargs)

    def _load_file(self, filename: str) -> Dict[str, Any]:
        try:
            return super()._load_file(filename)
        except (pickle.UnpicklingError, EOFError, RuntimeError, OSError) as e:
            raise RuntimeError(f"cannot read checkpoint {filename}: {e}") from e

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

    def load_backbone_pretrained(self, path: str) -> None:
        """
        Load a Kinetics Video-Swin checkpoint (mmaction layout: ``{"state_dict": {"backbone.*": ...}}``, e.g.
        ``swin_tiny_patch244_window877_kinetics400_1k.pth``) into ``self.model.backbone``, converted by
        :func:`~soc.checkpoint.convert.convert_video_swin_kinetics`. Every backbone tensor must come from the
        file, except the ``relative_position_index`` buffers (deterministic; some files omit them).

        Raises:
            FileNotFoundError: ``path`` does not exist.
            ValueError: the file does not fit the backbone (missing, unexpected or differently shaped keys);
                the message names the file.
        """
        local = self.path_manager.get_local_path(path)
        if not os.path.isfile(local):
            raise FileNotFoundError(
                f"Video-Swin checkpoint {path} (MODEL.VIDEO_SWIN.PRETRAINED) does not exist"
            )
        try:
            loaded = torch.load(local, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, EOFError, RuntimeError) as e:
            raise RuntimeError(f"cannot read Video-Swin checkpoint {path}: {e}") from e
        try:
            converted = convert_video_swin_kinetics(extract_state_dict(loaded))
        except ValueError as e:
            raise ValueError(f"Video-Swin checkpoint {path}: {e}") from e
        backbone = self.model.backbone
        own = backbone.state_dict()
        missing = [k for k in own if k not in converted and not k.endswith("relative_position_index")]
        unexpected = [k for k in converted if k not in own]
        mismatched = [
            f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}"
            for k, v in converted.items()
            if k in own and v.shape != own[k].shape
        ]
        if missing or unexpected or mismatched:
            raise ValueError(
                f"Video-Swin checkpoint {path} does not fit this backbone: missing {missing[:10]}, "
                f"unexpected {unexpected[:10]}, shape mismatch (file vs backbone) {mismatched[:10]}"
            )
        backbone.load_state_dict(converted, strict=False)
        self.logger.info(f"Loaded Kinetics Video-Swin weights from {path} into the backbone")


def load_pretrained_weights(model: nn.Module, cfg: CfgNode) -> bool:
    """
    Initialise a freshly built SOC model from pretrained files when it is trained from scratch: with
    ``MODEL.WEIGHTS`` empty and ``MODEL.VIDEO_SWIN.PRETRAINED`` set, the Kinetics Video-Swin weights go into
    ``model.backbone`` (see :meth:`SOCCheckpointer.load_backbone_pretrained`). With ``MODEL.WEIGHTS`` set,
    that file holds the whole model and nothing is loaded here. Call it once after ``build_model``, before
    ``resume_or_load`` (a resumed checkpoint then overrides it).

    Args:
        model: the built model (or its DDP wrapper), with a ``backbone`` attribute.
        cfg: the config it was built from.

    Returns:
        True when weights were loaded.
    """
    path = cfg.MODEL.VIDEO_SWIN.PRETRAINED
    if not path or cfg.MODEL.WEIGHTS:
        return False
    SOCCheckpointer(model).load_backbone_pretrained(path)
    return True
