"""SynthRVOS in the Long-RVOS layout (``docs/formats_and_metrics.md`` §8): one folder per split with
``JPEGImages/<video>/<frame>.jpg``, ``Annotations/<video>/<obj_id>/<frame>.png`` (0/255 greyscale, written
only for the frames in which the object is visible: a missing PNG means absent) and ``meta_expressions.json``
whose expressions carry a ``type``. Registers itself in :data:`~.writers.WRITERS` as ``long_rvos``.

Expression types follow the SynthRVOS families: appearance and spatial expressions are ``static``, motion
expressions ``dynamic``, combinations (appearance + motion) ``hybrid``. Combined with ``long_videos`` (the
``--long`` option) this gives the long SynthRVOS split: 300-400 frames, a look-alike pair in every video, and
a referred object that leaves the frame and comes back.
"""

from __future__ import annotations

from typing import Any, Dict

import numpy as np

from ..datasets.common import TEMPORAL_FILE
from ..datasets.long_rvos import META_FILE
from .files import write_binary_png, write_jpeg, write_json
from .videos import SynthVideo
from .writers import _HEX, WRITERS, SynthWriter, _truth, _unique_id

__all__ = ["LongRVOSWriter", "EXPRESSION_TYPE_OF_FAMILY"]

# SynthRVOS expression family -> Long-RVOS expression type
EXPRESSION_TYPE_OF_FAMILY = {
    "appearance": "static",
    "spatial": "static",
    "motion": "dynamic",
    "combination": "hybrid",
}


class LongRVOSWriter(SynthWriter):
    """Long-RVOS layout. Video ids are 10 hex characters; frame names are ``00000``, ``00001``, ...; every
    split ships masks (so that the synthetic ``test`` split can be scored offline too)."""

    name = "long_rvos"
    splits = ("train", "valid", "test")
    default_split = "valid"
    default_size = (96, 160)
    layout = frozenset(splits)

    def __init__(self, root: str, split: str, **options: Any):
        super().__init__(root, split, **options)
        self.meta_exp: Dict[str, dict] = {}

    def owned_paths(self) -> list:
        """The split's folder only, so that several splits can share a root."""
        return [self.split]

    def describe(self, rng: np.random.Generator, index: int, video: SynthVideo, extra: bool) -> dict:
        names = [f"{k:05d}" for k in range(len(video.scene.frames))]
        return {"video": video, "vid": _unique_id(rng, _HEX, 10, self.taken), "frame_names": names}

    def add(self, item: dict) -> None:
        vid, video, names = item["vid"], item["video"], item["frame_names"]
        scene = video.scene
        for i, name in enumerate(names):
            write_jpeg(self.path(self.split, "JPEGImages", vid, name + ".jpg"), scene.frames[i])
        for o in scene.objects:
            mask = scene.mask(o.obj_id)
            for i in np.flatnonzero(mask.any(axis=(1, 2))):
                write_binary_png(
                    self.path(self.split, "Annotations", vid, str(o.obj_id), names[i] + ".png"), mask[i]
                )
        expressions, truth = {}, {}
        for k, e in enumerate(video.expressions):
            kind = EXPRESSION_TYPE_OF_FAMILY[e.family]
            expressions[str(k)] = {"exp": e.text, "obj_id": str(e.obj_id), "type": kind}
            truth[str(k)] = {
                "exp": e.text,
                "obj_id": e.obj_id,
                "temporal": e.temporal,
                "family": e.family,
                "type": kind,
            }
            if e.temporal:
                self.temporal.append(f"{vid}/{k}")
        self.meta_exp[vid] = {"expressions": expressions, "frames": list(names)}
        self.truth[vid] = _truth(item, self.split, truth)

    def finish(self) -> dict:
        write_json(self.path(self.split, META_FILE), {"videos": self.meta_exp})
        write_json(self.path(self.split, TEMPORAL_FILE), {"temporal": self.temporal})
        return super().finish()


WRITERS[LongRVOSWriter.name] = LongRVOSWriter
