"""``SOCCheckpointer``: a ``DetectionCheckpointer`` that also reads the authors' SOC checkpoints and the
Kinetics Video-Swin weights; ``load_pretrained_weights``: what a fresh model loads before training.

``MODEL.WEIGHTS`` may point at an authors' ``.pth.tar`` (a dict with ``model_state_dict``) or a bare official
state_dict: the file is converted on the fly with :func:`soc.checkpoint.convert.convert_official_state_dict`,
as detectron2 converts Caffe2 and pycls files in ``_load_file``. Files written by detectron2 (or by
``tools/convert_soc_checkpoint.py``) load unchanged.

``MODEL.VIDEO_SWIN.PRETRAINED`` (Kinetics Video-Swin weights, as the authors initialise the backbone) is not
read by the model: :func:`load_pretrained_weights` loads it into the built model's backbone when no
``MODEL.WEIGHTS`` is given, the way detectron2 loads ImageNet backbones through ``MODEL.WEIGHTS``. The same
goes for the text encoder's pretrained weights (:func:`load_text_encoder_weights`): an SOC checkpoint holds
them, so a model loaded from one never fetches them; a ``MODEL.WEIGHTS`` file without them (an ImageNet
backbone) gets them from the pretrained encoder.

Both keys may name remote files (:mod:`soc.checkpoint.weight_sources`): ``hf://owner/repo/path/file.pth`` on
the Hugging Face Hub; ``MODEL.VIDEO_SWIN.PRETRAINED`` also ``torchvision://Swin3D_T_Weights.KINETICS400_V1``
(or another of torchvision's Swin3D weights).
"""

import logging
import os
from typing import Any, Dict, List, Mapping, Optional

import numpy as np
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import CfgNode
from fvcore.common.checkpoint import _IncompatibleKeys
from torch import nn
from torch.nn.parallel import DataParallel, DistributedDataParallel
from transformers import AutoModel

from .convert import (
    convert_official_state_dict,
    convert_torchvision_swin3d,
    convert_video_swin_kinetics,
    extract_state_dict,
    infer_variant,
    is_official_state_dict,
)
from .weight_sources import TORCHVISION_PREFIX, load_torchvision_swin3d
from .efficientnet_lite import load_timm_backbone_weights
from .weights_io import WeightsFileError, atomic_write, load_weights_file, remove_stale_temporaries

__all__ = ["SOCCheckpointer", "load_pretrained_weights", "load_text_encoder_weights"]

logger = logging.getLogger(__name__)

_TEXT_ENCODER_PREFIX = "text_encoder.model."


def _require_mapping(filename: str, obj: Any, what: str = "it") -> None:
    if not isinstance(obj, Mapping):
        raise WeightsFileError(
            f"{filename} is not a checkpoint: {what} holds a {type(obj).__name__}, not a dict"
        )


def _check_state_dict(filename: str, state_dict: Any) -> None:
    _require_mapping(filename, state_dict, "its model state")
    for key, value in state_dict.items():
        if not isinstance(value, (torch.Tensor, np.ndarray)):
            raise WeightsFileError(
                f"{filename} is not a checkpoint: its model state holds {key!r}, a {type(value).__name__}, "
                "where tensors are expected"
            )


def _from_zoo_pickle(filename: str, data: Any) -> Dict[str, Any]:
    """A detectron2 model-zoo ``.pkl`` (``{"model": ..., "__author__": ...}``) as is; a Caffe2 / Detectron1
    one (``{name: array}``, under ``blobs`` for detection models) as detectron2 reads it: momentum buffers
    dropped, names matched heuristically."""
    _require_mapping(filename, data)
    if "model" in data and "__author__" in data:
        return dict(data)
    blobs = data.get("blobs", data)
    _require_mapping(filename, blobs, "its 'blobs'")
    return {
        "model": {k: v for k, v in blobs.items() if not k.endswith("_momentum")},
        "__author__": "Caffe2",
        "matching_heuristics": True,
    }


def _from_pycls(filename: str, data: Any) -> Dict[str, Any]:
    """A pycls ``.pyth`` (``{"model_state": ...}``), as detectron2 reads it."""
    _require_mapping(filename, data)
    if not isinstance(data.get("model_state"), Mapping):
        raise WeightsFileError(f"{filename} is not a pycls checkpoint: it has no 'model_state' dict")
    model_state = {k: v for k, v in data["model_state"].items() if not k.endswith("num_batches_tracked")}
    return {"model": model_state, "__author__": "pycls", "matching_heuristics": True}


def _unwrapped(key: str) -> str:
    """``key`` without the prefix of a model saved inside (Distributed)DataParallel."""
    return key[len("module.") :] if key.startswith("module.") else key


def _some(names: List[str], n: int = 5) -> str:
    more = f" (+{len(names) - n} more)" if len(names) > n else ""
    return ", ".join(names[:n]) + more


class SOCCheckpointer(DetectionCheckpointer):
    """Loads detectron2 checkpoints and, converted on the fly, the authors' SOC checkpoints.

    Every file is read by :func:`~soc.checkpoint.weights_io.load_weights_file`, which runs no code the file
    asks for (detectron2 reads ``.pkl`` files with plain ``pickle.load``). A checkpoint must fill at least
    ``min_matched`` of the model's tensors. Checkpoints and the ``last_checkpoint`` tag are written
    atomically; a missing or unreadable file is an error that names it.
    """

    def __init__(
        self,
        model: nn.Module,
        save_dir: str = "",
        *,
        min_matched: float = 0.9,
        save_to_disk: Optional[bool] = None,
        **checkpointables: Any,
    ):
        """
        Args:
            model, save_dir, save_to_disk, checkpointables: as for ``DetectionCheckpointer``. Temporary files
                that a killed process left in ``save_dir`` are removed.
            min_matched: the share of the model's ``state_dict`` entries that a loaded checkpoint must fill
                with tensors of the right shape (``MODEL.WEIGHTS_MIN_MATCHED``); 0 accepts any partial
                initialisation. A checkpoint that fills none is always an error.
        """
        if not 0.0 <= min_matched <= 1.0:
            raise ValueError(f"min_matched (MODEL.WEIGHTS_MIN_MATCHED) must be in [0, 1], got {min_matched}")
        super().__init__(model, save_dir, save_to_disk=save_to_disk, **checkpointables)
        self.min_matched = min_matched
        self._loading_path = ""
        if self.save_dir and self.save_to_disk and os.path.isdir(self.save_dir):
            remove_stale_temporaries(self.save_dir)

    def save(self, name: str, **kwargs: Any) -> None:
        """Like ``Checkpointer.save``; a failed write (``OSError`` naming the file) leaves the previous
        checkpoint and ``last_checkpoint`` as they were."""
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        data.update({key: obj.state_dict() for key, obj in self.checkpointables.items()})
        data.update(kwargs)
        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        self.logger.info(f"Saving checkpoint to {save_file}")
        atomic_write(save_file, lambda f: torch.save(data, f))
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        tag = os.path.join(self.save_dir, "last_checkpoint")
        atomic_write(tag, lambda f: f.write(last_filename_basename.encode()))

    def load(self, path: str, *args, **kwargs) -> Dict[str, Any]:
        """Like ``DetectionCheckpointer.load`` (``path`` "" loads nothing); ``path`` may be an ``hf://`` URI.

        Raises:
            FileNotFoundError: ``path`` does not exist.
            WeightsFileError: ``path`` is not a checkpoint, or asks for code to run.
            ValueError: the checkpoint fills fewer than ``min_matched`` of the model's tensors, or none; the
                model is then partly overwritten and must not be used. A ``torchvision://`` name (a backbone,
                for ``MODEL.VIDEO_SWIN.PRETRAINED``) is refused.
        """
        if path.startswith(TORCHVISION_PREFIX):
            raise ValueError(
                f"{path} names backbone weights: set it as MODEL.VIDEO_SWIN.PRETRAINED, with MODEL.WEIGHTS "
                "empty"
            )
        if path and "://" not in path and not os.path.isfile(path):
            raise FileNotFoundError(f"checkpoint {path} (MODEL.WEIGHTS or last_checkpoint) does not exist")
        self._loading_path = path
        try:
            return super().load(path, *args, **kwargs)
        finally:
            self._loading_path = ""

    def _load_file(self, filename: str) -> Dict[str, Any]:
        if filename.endswith(".pkl"):
            checkpoint = _from_zoo_pickle(filename, load_weights_file(filename))
        elif filename.endswith(".pyth"):
            checkpoint = _from_pycls(filename, load_weights_file(filename))
        else:  # through self._torch_load; wraps a bare state_dict as {"model": ...}
            checkpoint = super()._load_file(filename)
        _check_state_dict(filename, checkpoint["model"])
        return checkpoint

    def _torch_load(self, f: str) -> Dict[str, Any]:
        loaded = load_weights_file(f)
        _require_mapping(f, loaded)
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

    def _load_model(self, checkpoint: Dict[str, Any]) -> _IncompatibleKeys:
        # Modules fill some entries themselves when the file lacks them (BatchNorm's num_batches_tracked):
        # only names the file has count. Heuristic matching renames the file's keys: there, only the report.
        offered = (
            None if checkpoint.get("matching_heuristics") else {_unwrapped(k) for k in checkpoint["model"]}
        )
        incompatible = super()._load_model(checkpoint)
        own = list(self.model.state_dict())
        mismatched = {k: f"{k} {tuple(a)} vs {tuple(b)}" for k, a, b in incompatible.incorrect_shapes}
        reported = set(incompatible.missing_keys)
        missing = [
            k
            for k in own
            if k not in mismatched and (k in reported or (offered is not None and k not in offered))
        ]
        text_keys = [k for k in own if _unwrapped(k).startswith(_TEXT_ENCODER_PREFIX)]
        if text_keys and set(text_keys) <= set(missing):
            # a file without any text-encoder tensor (an ImageNet backbone): the pretrained encoder fills them
            load_text_encoder_weights(self.model)
            missing = [k for k in missing if k not in set(text_keys)]
        total = len(own)
        matched = total - len(missing) - len(mismatched)
        if total and (matched == 0 or matched < self.min_matched * total):
            raise ValueError(
                self._poor_fit_message(
                    matched, total, missing, list(mismatched.values()), len(incompatible.unexpected_keys)
                )
            )
        return incompatible

    def _poor_fit_message(
        self, matched: int, total: int, missing: List[str], mismatched: List[str], unexpected: int
    ) -> str:
        head = f"{self._loading_path or 'the checkpoint'} does not fit this model: "
        if matched:
            head += (
                f"{matched} of its {total} tensors ({matched / total:.1%}) load with matching shapes, "
                f"fewer than MODEL.WEIGHTS_MIN_MATCHED = {self.min_matched:g} of them"
            )
        else:
            head += f"none of its {total} tensors loads with a matching shape"
        lines = [head + " (a checkpoint of another architecture or configuration?)"]
        if missing:
            lines.append(f"{len(missing)} missing from the file: {_some(missing)}")
        if mismatched:
            lines.append(f"{len(mismatched)} of another shape (file vs model): {_some(mismatched)}")
        if unexpected:
            lines.append(f"{unexpected} tensors of the file have no place in the model")
        if matched:
            lines.append(
                "set MODEL.WEIGHTS_MIN_MATCHED 0 (or a lower share) to start from a partial checkpoint on "
                "purpose, as fine-tuning does"
            )
        return "\n  ".join(lines)

    def load_backbone_pretrained(self, path: str) -> None:
        """
        Load Kinetics Video-Swin weights into ``self.model.backbone``: ``path`` is either a checkpoint in the
        mmaction layout (``{"state_dict": {"backbone.*": ...}}``, e.g.
        ``swin_tiny_patch244_window877_kinetics400_1k.pth``; a local file or an ``hf://`` URI), converted by
        :func:`~soc.checkpoint.convert.convert_video_swin_kinetics`, or ``torchvision://<Swin3D weights>``
        (e.g. ``torchvision://Swin3D_T_Weights.KINETICS400_V1``), converted by
        :func:`~soc.checkpoint.convert.convert_torchvision_swin3d`. Every backbone tensor must come from the
        weights, except the ``relative_position_index`` buffers (deterministic; some files omit them).

        Raises:
            FileNotFoundError: ``path`` does not exist.
            WeightsFileError: ``path`` is not a checkpoint, or asks for code to run.
            ValueError: the weights do not fit the backbone (missing, unexpected or differently shaped keys),
                or ``torchvision://`` names no Swin3D weights; the message names ``path``.
        """
        if path.startswith(TORCHVISION_PREFIX):
            converted = convert_torchvision_swin3d(load_torchvision_swin3d(path))
        else:
            local = self.path_manager.get_local_path(path)
            if not os.path.isfile(local):
                raise FileNotFoundError(
                    f"Video-Swin checkpoint {path} (MODEL.VIDEO_SWIN.PRETRAINED) does not exist"
                )
            loaded = load_weights_file(local)
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
    ``MODEL.WEIGHTS`` empty, the text encoder's pretrained weights go into ``model.text_encoder`` (see
    :func:`load_text_encoder_weights`); with ``MODEL.VIDEO_SWIN.PRETRAINED`` set, the Kinetics Video-Swin
    weights go into ``model.backbone`` (see :meth:`SOCCheckpointer.load_backbone_pretrained`); with
    ``MODEL.TIMM.PRETRAINED`` set, ImageNet weights go into a timm frame backbone (see
    :func:`~soc.checkpoint.efficientnet_lite.load_timm_backbone_weights`). With ``MODEL.WEIGHTS`` set,
    that file holds the whole model and nothing is loaded here. Call it once after ``build_model``, before
    ``resume_or_load`` (a resumed checkpoint then overrides it).

    Args:
        model: the built model (or its DDP wrapper), with a ``backbone`` attribute.
        cfg: the config it was built from.

    Returns:
        True when weights were loaded (``MODEL.WEIGHTS`` empty).
    """
    if cfg.MODEL.WEIGHTS:
        return False
    if cfg.MODEL.TIMM.PRETRAINED:
        load_timm_backbone_weights(model, cfg.MODEL.TIMM.PRETRAINED)
    elif cfg.MODEL.VIDEO_SWIN.PRETRAINED:
        SOCCheckpointer(model).load_backbone_pretrained(cfg.MODEL.VIDEO_SWIN.PRETRAINED)
    load_text_encoder_weights(model)
    return True


def load_text_encoder_weights(model: nn.Module) -> None:
    """
    Load the pretrained weights of the text encoder's source (``MODEL.SOC.TEXT_ENCODER.NAME``: a hub name, a
    folder or a package, see :func:`~soc.modeling.text_encoder.resolve_text_encoder_path`) into
    ``model.text_encoder.model``, which was built from the encoder's configuration alone.

    Args:
        model: a built SOC model (or its (Distributed)DataParallel wrapper).

    Raises:
        OSError: the source has no weights (e.g. offline, with the hub's cache holding only the
            configuration and tokenizer); the message names the source and how to avoid the download.
    """
    if isinstance(model, (DataParallel, DistributedDataParallel)):
        model = model.module
    encoder = model.text_encoder
    try:
        pretrained = AutoModel.from_pretrained(encoder.source)
    except OSError as e:
        raise OSError(
            f"the text encoder's pretrained weights ({encoder.source}, MODEL.SOC.TEXT_ENCODER.NAME) cannot "
            f"be loaded: {e}\nTraining from scratch needs them; an SOC checkpoint in MODEL.WEIGHTS holds "
            "them and needs only the encoder's configuration and tokenizer"
        ) from e
    encoder.model.load_state_dict(pretrained.state_dict())
    logger.info(f"Loaded the pretrained text encoder {encoder.source}")
