"""``SOCCheckpointer``: a ``DetectionCheckpointer`` that also reads the authors' SOC checkpoints.

``MODEL.WEIGHTS`` may point at an authors' ``.pth.tar`` (a dict with ``model_state_dict``) or a bare official
state_dict: the file is converted on the fly with :func:`soc.checkpoint.convert.convert_official_state_dict`,
as detectron2 converts Caffe2 and pycls files in ``_load_file``. Files written by detectron2 (or by
``tools/convert_soc_checkpoint.py``) load unchanged.
"""

import logging
import os
import pickle
import tempfile
from typing import Any, Dict

import torch
from detectron2.checkpoint import DetectionCheckpointer

from .convert import convert_official_state_dict, extract_state_dict, infer_variant, is_official_state_dict

__all__ = ["SOCCheckpointer"]

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
