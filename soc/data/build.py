"""Choose the mapper of a registered dataset from its ``evaluator_type``. The grouping of a dataset's
expressions by clip (:mod:`soc.data.groups`) is re-exported here."""

from __future__ import annotations

from typing import Callable, Optional

from detectron2.config import CfgNode
from detectron2.data import MetadataCatalog

from .groups import CLIP_KEYS, GROUP_KEYS, group_expressions, make_group, ungroup
from .mappers import A2DMapper, RefVOSMapper

__all__ = ["build_soc_mapper", "group_expressions", "make_group", "ungroup", "CLIP_KEYS", "GROUP_KEYS"]

_WINDOWED = ("a2d_sentences", "jhmdb_sentences")


def build_soc_mapper(cfg: CfgNode, dataset_name: str, is_train: bool) -> Callable[[dict], Optional[dict]]:
    """The mapper for ``dataset_name``: A2D/JHMDB datasets get :class:`A2DMapper` (a window around the
    annotated frame), every other dataset (Ref-YouTube-VOS, Ref-DAVIS17, RefCOCO, SynthRVOS ytvos/davis)
    :class:`RefVOSMapper` (training clips / whole videos). Test mappers also map groups
    (:func:`group_expressions`)."""
    windowed = MetadataCatalog.get(dataset_name).get("evaluator_type") in _WINDOWED
    mapper = A2DMapper if windowed else RefVOSMapper
    return mapper(cfg, is_train=is_train)
