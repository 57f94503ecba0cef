"""SynthRVOS in the MeViS layout (``docs/formats_and_metrics.md`` §9):
``<split>/JPEGImages/<video>/<frame>.jpg``, ``<split>/meta_expressions.json`` whose expressions carry
``obj_id`` and ``anno_id`` lists, and (``train``, ``valid_u``) ``<split>/mask_dict.json`` with one COCO RLE
(or null where the object is not visible) per object and frame. Registers itself in
:data:`~.writers.WRITERS` as ``mevis``.

Besides the single-object expressions of every format, each video gets the MeViS kinds: one multi-object
expression when its scene has a group that a phrase singles out ("the two red stars", "the two stars that move
left"; the temporal look-alike pairs give most of them), and one no-target expression ("the green circle" when
there is no green circle; ``obj_id`` and ``anno_id`` empty), as in MeViS v2. Object ids are 0-based per video
(scene object k is ``obj_id`` k - 1); ``anno_id`` counts the objects of the split from 0.
"""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np
from pycocotools import mask as mask_util

from ..datasets.common import TEMPORAL_FILE
from ..datasets.mevis import mevis_files
from .files import write_jpeg, write_json
from .language import multi_object_expressions, no_target_expressions
from .scene import COLOURS, SHAPES
from .videos import SynthVideo
from .writers import _HEX, WRITERS, SynthWriter, _truth, _unique_id

__all__ = ["MevisWriter", "encode_rle"]


def encode_rle(mask: np.ndarray) -> Any:
    """COCO RLE of a bool ``(H, W)`` mask as JSON stores it (``counts`` a str), or None when it is empty."""
    if not mask.any():
        return None
    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


class MevisWriter(SynthWriter):
    """MeViS layout. Video ids are 12 hex characters, frame names ``00000``, ``00001``, ...; ``valid`` is
    written without ``mask_dict.json`` and with ``exp`` only (the server's split)."""

    name = "mevis"
    splits = ("train", "valid_u", "valid")
    default_split = "train"
    default_size = (96, 160)
    layout = frozenset(splits)

    def __init__(self, root: str, split: str, **options: Any):
        super().__init__(root, split, **options)
        self.meta_exp: Dict[str, dict] = {}
        self.mask_dict: Dict[str, list] = {}
        self.num_annos = 0

    def owned_paths(self) -> List[str]:
        """The split's folder only, so that several splits can share a root."""
        return [self.split]

    def describe(self, rng: np.random.Generator, index: int, video: SynthVideo, extra: bool) -> dict:
        vid = _unique_id(rng, _HEX, 12, self.taken)
        names = [f"{k:05d}" for k in range(len(video.scene.frames))]
        groups = multi_object_expressions(video.scene)
        absent = no_target_expressions(video.scene, SHAPES, tuple(COLOURS))
        return {
            "video": video,
            "vid": vid,
            "frame_names": names,
            "groups": [groups[int(rng.integers(len(groups)))]] if groups else [],
            "no_target": [absent[int(rng.integers(len(absent)))]],
        }

    def add(self, item: dict) -> None:
        vid, video, names = item["vid"], item["video"], item["frame_names"]
        scene = video.scene
        with_masks = self.split != "valid"
        for i, name in enumerate(names):
            write_jpeg(self.path(self.split, "JPEGImages", vid, name + ".jpg"), scene.frames[i])
        anno_of = {}
        for o in scene.objects:
            anno_of[o.obj_id] = self.num_annos
            self.num_annos += 1
            if with_masks:
                self.mask_dict[str(anno_of[o.obj_id])] = [encode_rle(m) for m in scene.mask(o.obj_id)]
        plan = [(e.text, (e.obj_id,), e.family, e.temporal) for e in video.expressions]
        plan += [(text, members, "multi_object", False) for text, members in item["groups"]]
        plan += [(text, (), "no_target", False) for text in item["no_target"]]
        expressions, truth = {}, {}
        for k, (text, members, family, temporal) in enumerate(plan):
            obj_ids = [m - 1 for m in members]
            entry = {"exp": text}
            if with_masks:
                entry.update(obj_id=obj_ids, anno_id=[anno_of[m] for m in members])
            expressions[str(k)] = entry
            truth[str(k)] = {"exp": text, "obj_id": obj_ids, "temporal": temporal, "family": family}
            if temporal:
                self.temporal.append(f"{vid}/{k}")
        self.meta_exp[vid] = {"expressions": expressions, "frames": list(names)}
        self.truth[vid] = _truth(item, self.split, truth, {o.obj_id: o.obj_id - 1 for o in scene.objects})

    def finish(self) -> dict:
        meta_file, _, mask_file = mevis_files(self.root, self.split)
        write_json(meta_file, {"videos": self.meta_exp})
        if self.split != "valid":
            write_json(mask_file, self.mask_dict)
        write_json(self.path(self.split, TEMPORAL_FILE), {"temporal": self.temporal})
        return super().finish()


WRITERS[MevisWriter.name] = MevisWriter
