"""Choose the mapper of a registered dataset from its ``evaluator_type``."""

from __future__ import annotations

from typing import Callable

from detectron2.config import CfgNode
from detectron2.data import MetadataCatalog

from .mappers import A2DTestMapper, A2DTrainMapper, RefVOSTestMapper, RefVOSTrainMapper

__all__ = ["build_soc_mapper"]

_WINDOWED = ("a2d_sentences", "jhmdb_sentences")


def build_soc_mapper(cfg: CfgNode, dataset_name: str, is_train: bool) -> Callable[[dict], dict]:
    """The mapper for ``dataset_name``: A2D/JHMDB datasets get the MTTR-window mappers, every other
    dataset (Ref-YouTube-VOS, Ref-DAVIS17, RefCOCO, SynthRVOS ytvos/davis) the whole-video/clip mappers."""
    windowed = MetadataCatalog.get(dataset_name).get("evaluator_type") in _WINDOWED
    if windowed:
        return A2DTrainMapper(cfg, is_train=True) if is_train else A2DTestMapper(cfg, is_train=False)
    return RefVOSTrainMapper(cfg) if is_train else RefVOSTestMapper(cfg)
