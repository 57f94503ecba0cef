"""Write SynthRVOS videos in the on-disk formats of the real benchmarks (``docs/formats_and_metrics.md``
§1-§4), one :class:`SynthWriter` per format, chosen by name from :data:`WRITERS`.

``generate`` drives every writer alike. Per video it draws the frame count, asks the writer which frames must
show every object (``annotated_frames``; A2D only), draws the video, lets the writer draw the format's ids and
names from the video's generator (``describe``: a dict with ``vid``, ``video`` (SynthVideo), ``frame_names``
and format extras) and writes it (``add(item)``); ``finish()`` then writes the index files and returns the
ground truth, per video: ``frames`` (the drawn RGB arrays), ``frame_names``, ``masks`` ({object id in the
format's id space: bool (T, H, W)}), ``objects``, ``expressions`` ({exp_id: {"exp", "obj_id", "temporal",
"family"}}) and ``split``.
"""

from __future__ import annotations

import os
import shutil
from abc import ABC, abstractmethod
from typing import Any, Dict, FrozenSet, List, Optional, Tuple, Type

import numpy as np

from soc.utils.paths import safe_join

from ..datasets.a2d_sentences import CACHE_FILE
from ..datasets.common import TEMPORAL_FILE
from ..datasets.jhmdb_sentences import SAMPLES_FILE
from ..datasets.ref_davis import KHOREVA_FILES
from .files import (
    write_h5,
    write_jpeg,
    write_json,
    write_mat,
    write_mp4,
    write_palette_png,
    write_png_rgb,
    write_text,
)
from .videos import SynthVideo

__all__ = [
    "SynthWriter",
    "YtvosWriter",
    "DavisWriter",
    "A2DWriter",
    "JHMDBWriter",
    "WRITERS",
    "A2D_ACTOR_ACTIONS",
    "JHMDB_ACTIONS",
]

# the 43 valid actor-action codes of A2D (10 * actor + action)
A2D_ACTOR_ACTIONS = tuple(
    int(code)
    for code in (
        "11 12 13 15 16 17 18 19 21 22 26 28 29 34 35 36 39 41 43 44 45 46 48 49 54 55 56 57 59 61 63 65 66 "
        "67 68 69 72 73 75 76 77 78 79"
    ).split()
)
# the 21 action folders of JHMDB
JHMDB_ACTIONS = tuple(
    "brush_hair catch clap climb_stairs golf jump kick_ball pick pour pullup push run shoot_ball shoot_bow "
    "shoot_gun sit stand swing_baseball throw walk wave".split()
)
_HEX = np.array(list("0123456789abcdef"))  # YouTube-VOS video ids
_YT = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"))  # YouTube ids (A2D)


def _unique_id(rng: np.random.Generator, alphabet: np.ndarray, n: int, taken: set) -> str:
    while True:
        vid = "".join(rng.choice(alphabet, size=n))
        if vid not in taken:
            taken.add(vid)
            return vid


def _objects(video) -> Dict[int, dict]:
    return {
        o.obj_id: {"shape": o.shape, "colour": o.colour, "size": o.size, "motion": o.motion}
        for o in video.scene.objects
    }


def _truth(item: dict, split: str, expressions: Dict[str, dict], id_map=None) -> dict:
    scene = item["video"].scene
    id_map = id_map or {o.obj_id: o.obj_id for o in scene.objects}
    return {
        "frames": scene.frames,
        "frame_names": list(item["frame_names"]),
        "masks": {id_map[o.obj_id]: scene.mask(o.obj_id) for o in scene.objects},
        "objects": {id_map[k]: v for k, v in _objects(item["video"]).items()},
        "expressions": expressions,
        "split": split,
    }


class SynthWriter(ABC):
    """The interface between ``generate`` and one format (see the module docstring for the call order).

    Class attributes describe the format: ``name`` (also the expression plan of ``draw_video``), its
    ``splits``, ``default_split``, ``default_size`` (H, W) and ``layout`` (the top-level entries it may have
    under its root). The constructor takes every ``generate`` option a format may use; each format reads its
    own (``test_videos``: Ref-YouTube-VOS valid; ``test_fraction`` and ``seed``: A2D).
    """

    name: str
    splits: Tuple[str, ...]
    default_split: str
    default_size: Tuple[int, int]
    layout: FrozenSet[str]

    def __init__(
        self,
        root: str,
        split: str,
        *,
        seed: int,
        test_videos: Optional[int] = None,
        test_fraction: float = 0.25,
    ):
        self.root, self.split, self.seed = root, split, seed
        self.test_videos, self.test_fraction = test_videos, test_fraction
        self.truth: Dict[str, dict] = {}
        self.temporal: List[str] = []  # "<video>/<exp_id>" of the temporal expressions
        self.taken: set = set()  # video ids drawn so far

    @classmethod
    def check_size(cls, height: int, width: int) -> None:
        """Raise ValueError when the format cannot store frames of this size."""
        if height < 1 or width < 1:
            raise ValueError(f"frames need positive sides, got {height}x{width}")

    def path(self, *names: str) -> str:
        """``<root>/<name>/...`` for single, safe path components (``ValueError`` otherwise; see
        :func:`~soc.utils.paths.safe_join`): ids and names never leave the root."""
        return safe_join(self.root, *names)

    def owned_paths(self) -> List[str]:
        """Paths under the root that this split writes (replaced with ``force``, else a clash)."""
        return sorted(self.layout)

    def num_extra(self, videos: int) -> int:
        """Videos drawn after the ``videos`` of the split and written as ``extra`` (without masks)."""
        return 0

    def annotated_frames(self, num_frames: int) -> Optional[List[int]]:
        """0-based frames in which ``draw_video`` must show every object, or None."""
        return None

    @abstractmethod
    def describe(self, rng: np.random.Generator, index: int, video: SynthVideo, extra: bool) -> dict:
        """Draw the format's ids and names of video ``index`` from its generator ``rng``; returns the item."""

    @abstractmethod
    def add(self, item: dict) -> None:
        """Write one described video."""

    def finish(self) -> dict:
        """Write the index files; returns ``{"videos": ground truth per video, "temporal": set of keys}``."""
        return {"videos": self.truth, "temporal": set(self.temporal)}


# ------------------------------------------------------------------------------------------ ytvos / davis
def _ytvos_names(rng: np.random.Generator, t: int) -> List[str]:
    """5-step frame names; some videos start later, some have one 10-step gap (as in the real valid set)."""
    start = 5 * int(rng.integers(1, 30)) if rng.random() < 0.3 else 0
    steps = [5] * (t - 1)
    if t > 2 and rng.random() < 0.15:
        steps[int(rng.integers(t - 1))] = 10
    names = [start]
    for s in steps:
        names.append(names[-1] + s)
    return [f"{n:05d}" for n in names]


class YtvosWriter(SynthWriter):
    """Ref-YouTube-VOS layout, one video at a time. For ``valid``, the ``extra`` videos are the test videos:
    frames in ``test/JPEGImages``, listed in ``meta_expressions/test`` and ``meta_expressions/valid`` (as in
    the real data), no masks. Video ids are 10 hex characters; frame names step by 5."""

    name = "ytvos"
    splits = ("train", "valid")
    default_split = "train"
    default_size = (96, 160)
    layout = frozenset({"train", "valid", "test", "meta_expressions"})
    has_test_split = True  # valid comes with test videos
    object_frames = True  # meta.json lists the frames in which each object is annotated

    def __init__(self, root: str, split: str, **options: Any):
        super().__init__(root, split, **options)
        self.meta_exp: Dict[str, dict] = {}
        self.test_exp: Dict[str, dict] = {}
        self.meta_obj: Dict[str, dict] = {}

    def owned_paths(self) -> List[str]:
        """The split's folders; ``valid`` also owns ``test`` (its test videos), so train and valid can share
        a root."""
        own = [self.split, os.path.join("meta_expressions", self.split)]
        if self.split == "valid":
            own += ["test", os.path.join("meta_expressions", "test")]
        return own

    def num_extra(self, videos: int) -> int:
        if not (self.has_test_split and self.split == "valid"):
            return 0
        return max(1, videos // 4) if self.test_videos is None else self.test_videos

    def describe(self, rng: np.random.Generator, index: int, video: SynthVideo, extra: bool) -> dict:
        vid = _unique_id(rng, _HEX, 10, self.taken)
        names = _ytvos_names(rng, len(video.scene.frames))
        return {"video": video, "vid": vid, "frame_names": names, "extra": extra}

    def add(self, item: dict) -> None:
        vid, video, names, extra = item["vid"], item["video"], item["frame_names"], item["extra"]
        scene = video.scene
        split = "test" if extra else self.split
        for i, name in enumerate(names):
            write_jpeg(self.path(split, "JPEGImages", vid, name + ".jpg"), scene.frames[i])
            if not extra:
                write_palette_png(self.path(split, "Annotations", vid, name + ".png"), scene.index[i])
        expressions = {}
        for k, e in enumerate(video.expressions):
            expressions[str(k)] = {"exp": e.text} if extra else {"exp": e.text, "obj_id": str(e.obj_id)}
            if e.temporal and not extra:
                self.temporal.append(f"{vid}/{k}")
        entry = {"expressions": expressions, "frames": list(names)}
        self.meta_exp[vid] = entry
        if extra:
            self.test_exp[vid] = entry
        else:
            objects = {}
            for o in scene.objects:
                objects[str(o.obj_id)] = {"category": o.shape}
                if self.object_frames:
                    vis = scene.mask(o.obj_id).any(axis=(1, 2))
                    objects[str(o.obj_id)]["frames"] = [n for n, v in zip(names, vis) if v]
            self.meta_obj[vid] = {"objects": objects}
        self.truth[vid] = _truth(
            item,
            split,
            {
                str(k): {
                    "exp": e.text,
                    "obj_id": e.obj_id,
                    "temporal": e.temporal and not extra,
                    "family": e.family,
                }
                for k, e in enumerate(video.expressions)
            },
        )

    def finish(self) -> dict:
        mdir = "meta_expressions"
        write_json(self.path(mdir, self.split, "meta_expressions.json"), {"videos": self.meta_exp})
        if self.has_test_split and self.split == "valid":
            write_json(self.path(mdir, "test", "meta_expressions.json"), {"videos": self.test_exp})
        write_json(self.path(self.split, "meta.json"), {"videos": self.meta_obj})
        write_json(self.path(mdir, self.split, TEMPORAL_FILE), {"temporal": self.temporal})
        return super().finish()


class DavisWriter(YtvosWriter):
    """Ref-DAVIS17, both as ReferFormer's converter leaves it (``<split>/``, ``meta_expressions/``, a
    ``meta.json`` without frames) and as the raw downloads it is made from (``DAVIS/`` with
    Annotations_unsupervised, ImageSets and davis_semantics.json, plus the four Khoreva files). Expression
    ``4k+a`` is annotator run ``a`` of object ``k``; sequences are named after their first object."""

    name = "davis"
    default_split = "valid"
    layout = frozenset({"train", "valid", "meta_expressions", "DAVIS", "davis_text_annotations"})
    has_test_split = False
    object_frames = False

    def __init__(self, root: str, split: str, **options: Any):
        super().__init__(root, split, **options)
        self.lines: List[List[str]] = [[] for _ in range(4)]
        self.sequences: List[str] = []

    def owned_paths(self) -> List[str]:
        """Everything: the raw files list the sequences of both splits."""
        return sorted(self.layout)

    def describe(self, rng: np.random.Generator, index: int, video: SynthVideo, extra: bool) -> dict:
        first = video.scene.objects[0]
        names = [f"{k:05d}" for k in range(len(video.scene.frames))]
        return {
            "video": video,
            "vid": f"{first.colour}-{first.shape}-{index:03d}",
            "frame_names": names,
            "extra": extra,
        }

    def add(self, item: dict) -> None:
        super().add(item)
        vid = item["vid"]
        for name in item["frame_names"]:
            for sub, src, ext in (
                ("JPEGImages", "JPEGImages", ".jpg"),
                ("Annotations_unsupervised", "Annotations", ".png"),
            ):
                dst = self.path("DAVIS", sub, "480p", vid, name + ext)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copyfile(self.path(self.split, src, vid, name + ext), dst)
        for k, e in enumerate(item["video"].expressions):
            self.lines[k % 4].append(f'{vid} {e.obj_id} "{e.text}"\n')
        self.sequences.append(vid)

    def finish(self) -> dict:
        truth = super().finish()
        sets = {"train": [], "val": []}
        sets["val" if self.split == "valid" else "train"] = self.sequences
        for name, vids in sets.items():
            write_text(
                self.path("DAVIS", "ImageSets", "2017", name + ".txt"), "".join(v + "\n" for v in vids)
            )
        write_json(
            self.path("DAVIS", "davis_semantics.json"),
            {vid: {k: v["category"] for k, v in m["objects"].items()} for vid, m in self.meta_obj.items()},
        )
        for a, (name, enc) in enumerate(KHOREVA_FILES):
            write_text(self.path("davis_text_annotations", name), "".join(self.lines[a]), encoding=enc)
        return truth


# ------------------------------------------------------------------------------------------------ a2d
class A2DWriter(SynthWriter):
    """A2D-Sentences layout. Instance ids are 0-based (object k -> instance k-1); one sentence per instance;
    one h5 per annotated frame (1-based name) holding the instances visible in that frame. Split ``all``
    writes both subsets in one root, a ``test_fraction`` of the videos flagged test; the video set also lists
    one video without sentences (as real A2D lists 28)."""

    name = "a2d"
    splits = ("train", "test", "all")
    default_split = "all"
    default_size = (320, 426)
    layout = frozenset(
        {"Release", "text_annotations", *(CACHE_FILE.format(split=s) for s in ("train", "test"))}
    )
    _SUBSETS = {"train": 0, "test": 1}  # videoset.csv's subset column

    def __init__(self, root: str, split: str, **options: Any):
        super().__init__(root, split, **options)
        self.videoset: List[str] = []
        self.text_rows = ["video_id,instance_id,query\n"]

    @classmethod
    def check_size(cls, height: int, width: int) -> None:
        super().check_size(height, width)
        if height % 2 or width % 2:
            raise ValueError(
                f"a2d frames are encoded as yuv420p mp4 and need even sides, got {height}x{width}"
            )

    def annotated_frames(self, num_frames: int) -> List[int]:
        """Evenly spaced annotated frames, 0-based (3, or 2 in very short videos)."""
        n = 3 if num_frames >= 6 else 2
        return sorted(
            {min(num_frames - 1, max(0, int(round(k * num_frames / (n + 1))) - 1)) for k in range(1, n + 1)}
        )

    def describe(self, rng: np.random.Generator, index: int, video: SynthVideo, extra: bool) -> dict:
        t = len(video.scene.frames)
        in_test = int(rng.random() < self.test_fraction)  # drawn for every split: the same stream of draws
        return {
            "video": video,
            "subset": self._SUBSETS.get(self.split, in_test),
            "codes": {o.obj_id: int(rng.choice(A2D_ACTOR_ACTIONS)) for o in video.scene.objects},
            "vid": _unique_id(rng, _YT, 11, self.taken),
            "frame_names": [f"{k + 1:05d}" for k in range(t)],
            "annotated": self.annotated_frames(t),
        }

    def add(self, item: dict) -> None:
        vid, video, subset, codes = item["vid"], item["video"], item["subset"], item["codes"]
        scene = video.scene
        t, h, w = scene.index.shape
        write_mp4(self.path("Release", "clips320H", vid + ".mp4"), scene.frames)
        for fidx in item["annotated"]:  # 0-based
            inst = [o.obj_id for o in scene.objects if scene.mask(o.obj_id)[fidx].any()]
            masks = np.stack([scene.mask(k)[fidx].T for k in inst]).astype(np.uint8)  # (N, W, H)
            boxes = []
            for k in inst:
                ys, xs = np.nonzero(scene.mask(k)[fidx])
                boxes.append([xs.min(), ys.min(), xs.max(), ys.max()])
            write_h5(
                self.path("text_annotations", "a2d_annotation_with_instances", vid, f"{fidx + 1:05d}.h5"),
                {
                    "instance": np.array([k - 1 for k in inst], dtype=np.float64),
                    "reMask": masks[0] if len(inst) == 1 else masks,
                    "reBBox": np.array(boxes, dtype=np.float64).T.reshape(4, len(inst)),
                    "id": np.array([[codes[k] for k in inst]], dtype=np.float64),
                },
            )
        expressions = {}
        for e in video.expressions:
            self.text_rows.append(f"{vid},{e.obj_id - 1},{e.text}\n")
            expressions[str(e.obj_id - 1)] = {
                "exp": e.text,
                "obj_id": e.obj_id - 1,
                "temporal": e.temporal,
                "family": e.family,
            }
            if e.temporal:
                self.temporal.append(f"{vid}/{e.obj_id - 1}")
        self.videoset.append(
            f"{vid},{codes[1]},0,{int(np.ceil(t / 24))},{h},{w},{t},{len(item['annotated'])}," f"{subset}\n"
        )
        self.truth[vid] = _truth(
            item,
            "test" if subset else "train",
            expressions,
            id_map={o.obj_id: o.obj_id - 1 for o in scene.objects},
        )
        self.truth[vid]["annotated_frames"] = list(item["annotated"])

    def finish(self) -> dict:
        missed = [_unique_id(np.random.default_rng([self.seed, 2**32 - 1]), _YT, 11, self.taken)]
        rows = self.videoset + [f"{vid},11,0,1,320,480,24,3,0\n" for vid in missed]
        ta = "text_annotations"
        write_text(self.path("Release", "videoset.csv"), "".join(rows))
        write_text(self.path(ta, "a2d_annotation.txt"), "".join(self.text_rows))
        write_text(self.path(ta, "a2d_missed_videos.txt"), "".join(v + "\n" for v in missed))
        write_json(self.path(ta, TEMPORAL_FILE), {"temporal": self.temporal})
        return super().finish()


# ---------------------------------------------------------------------------------------------- jhmdb
class JHMDBWriter(SynthWriter):
    """JHMDB-Sentences layout: PNG frames (1-based), ``puppet_mask.mat`` of the actor (sometimes fewer masks
    than frames), ``jhmdb_annotation.txt`` and the sample list (3 frames per video with masks, drawn here).
    """

    name = "jhmdb"
    splits = ("test",)
    default_split = "test"
    default_size = (240, 320)
    layout = frozenset({"Rename_Images", "puppet_mask", "jhmdb_annotation.txt", SAMPLES_FILE, TEMPORAL_FILE})

    def __init__(self, root: str, split: str, **options: Any):
        super().__init__(root, split, **options)
        self.text_rows = ["video_id,query\n"]
        self.samples: List[list] = []

    def describe(self, rng: np.random.Generator, index: int, video: SynthVideo, extra: bool) -> dict:
        t = len(video.scene.frames)
        action = str(rng.choice(JHMDB_ACTIONS))
        n_masks = t - 1 if (t > 3 and rng.random() < 0.3) else t  # JHMDB: masks may stop before the frames
        drawn = sorted(rng.choice(n_masks, size=min(3, n_masks), replace=False).tolist())
        return {
            "video": video,
            "vid": f"Synth_clip_{index:04d}_{action}_f_cm_np1_fr_med_0",
            "action": action,
            "frame_names": [f"{k + 1:05d}" for k in range(t)],
            "mask_frames": n_masks,
            "annotated": drawn,
        }

    def add(self, item: dict) -> None:
        vid, video, action = item["vid"], item["video"], item["action"]
        scene = video.scene
        for i, name in enumerate(item["frame_names"]):
            write_png_rgb(self.path("Rename_Images", action, vid, name + ".png"), scene.frames[i])
        n_masks = item["mask_frames"]
        actor_mask = scene.mask(video.actor)[:n_masks].transpose(1, 2, 0).astype(np.uint8)  # (H, W, T)
        write_mat(self.path("puppet_mask", action, vid, "puppet_mask.mat"), {"part_mask": actor_mask})
        (e,) = video.expressions
        self.text_rows.append(f"{vid},{e.text}\n")
        if e.temporal:
            self.temporal.append(f"{vid}/0")
        for fidx in item["annotated"]:
            self.samples.append(
                [
                    vid,
                    f"./jhmdb_sentences/Rename_Images/{action}/{vid}/{fidx + 1:05d}.png",
                    f"./jhmdb_sentences/puppet_mask/{action}/{vid}/puppet_mask.mat",
                    n_masks,
                    e.text,
                ]
            )
        self.truth[vid] = _truth(
            item,
            "test",
            {"0": {"exp": e.text, "obj_id": video.actor, "temporal": e.temporal, "family": e.family}},
        )
        self.truth[vid].update(
            annotated_frames=list(item["annotated"]), mask_frames=n_masks, action=action, actor=video.actor
        )

    def finish(self) -> dict:
        write_text(self.path("jhmdb_annotation.txt"), "".join(self.text_rows))
        write_json(self.path(SAMPLES_FILE), self.samples)
        write_json(self.path(TEMPORAL_FILE), {"temporal": self.temporal})
        return super().finish()


# format name -> writer, in the order the command line lists them; writers kept in their own module add
# themselves on import (``long_rvos_writer``)
WRITERS: Dict[str, Type[SynthWriter]] = {
    w.name: w for w in (YtvosWriter, DavisWriter, A2DWriter, JHMDBWriter)
}
