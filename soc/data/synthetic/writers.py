"""Write SynthRVOS videos in the on-disk formats of the real benchmarks (formats_metrics.md §1-§4).

Each writer is fed one video at a time (``add(item)``: a dict with ``vid``, ``video`` (SynthVideo),
``frame_names`` and format extras) and ``finish()`` writes the index files and returns the ground truth,
per video: ``frames`` (the drawn RGB arrays), ``frame_names``,
``masks`` ({object id in the format's id space: bool (T, H, W)}), ``objects``, ``expressions``
({exp_id: {"exp", "obj_id", "temporal", "family"}}) and ``split``.
"""

from __future__ import annotations

import os
import shutil
from typing import Dict, List

import numpy as np

from ..datasets.common import TEMPORAL_FILE
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

__all__ = ["YtvosWriter", "DavisWriter", "A2DWriter", "JHMDBWriter", "A2D_ACTOR_ACTIONS", "JHMDB_ACTIONS"]

# the 43 valid actor-action codes of A2D (10 * actor + action)
A2D_ACTOR_ACTIONS = (
    11,
    12,
    13,
    15,
    16,
    17,
    18,
    19,
    21,
    22,
    26,
    28,
    29,
    34,
    35,
    36,
    39,
    41,
    43,
    44,
    45,
    46,
    48,
    49,
    54,
    55,
    56,
    57,
    59,
    61,
    63,
    65,
    66,
    67,
    68,
    69,
    72,
    73,
    75,
    76,
    77,
    78,
    79,
)
JHMDB_ACTIONS = (
    "brush_hair",
    "catch",
    "clap",
    "climb_stairs",
    "golf",
    "jump",
    "kick_ball",
    "pick",
    "pour",
    "pullup",
    "push",
    "run",
    "shoot_ball",
    "shoot_bow",
    "shoot_gun",
    "sit",
    "stand",
    "swing_baseball",
    "throw",
    "walk",
    "wave",
)


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


# ------------------------------------------------------------------------------------------ ytvos / davis
class YtvosWriter:
    """Ref-YouTube-VOS layout, one video at a time. For ``valid``, ``extra`` videos are the test videos:
    frames in ``test/JPEGImages``, listed in ``meta_expressions/test`` and ``meta_expressions/valid`` (as
    in the
    real data), no masks. ``davis=True`` writes the converted Ref-DAVIS17 flavour (``meta.json`` without
    frames).
    """

    def __init__(self, root: str, split: str, davis: bool = False):
        self.root, self.split, self.davis = root, split, davis
        self.meta_exp: Dict[str, dict] = {}
        self.test_exp: Dict[str, dict] = {}
        self.meta_obj: Dict[str, dict] = {}
        self.truth: Dict[str, dict] = {}
        self.temporal: List[str] = []

    def add(self, item: dict, extra: bool = False) -> None:
        vid, video, names = item["vid"], item["video"], item["frame_names"]
        scene = video.scene
        split = "test" if extra else self.split
        for i, name in enumerate(names):
            write_jpeg(os.path.join(self.root, split, "JPEGImages", vid, name + ".jpg"), scene.frames[i])
            if not extra:
                write_palette_png(
                    os.path.join(self.root, split, "Annotations", vid, name + ".png"), scene.index[i]
                )
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
                if not self.davis:  # YouTube-VOS lists where each object is annotated
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
        mdir = os.path.join(self.root, "meta_expressions")
        write_json(os.path.join(mdir, self.split, "meta_expressions.json"), {"videos": self.meta_exp})
        if self.split == "valid" and not self.davis:
            write_json(os.path.join(mdir, "test", "meta_expressions.json"), {"videos": self.test_exp})
        write_json(os.path.join(self.root, self.split, "meta.json"), {"videos": self.meta_obj})
        write_json(os.path.join(mdir, self.split, TEMPORAL_FILE), {"temporal": self.temporal})
        return {"videos": self.truth, "temporal": set(self.temporal)}


class DavisWriter(YtvosWriter):
    """Ref-DAVIS17, both as ReferFormer's converter leaves it (``<split>/``, ``meta_expressions/``) and as the
    raw downloads it is made from (``DAVIS/`` with Annotations_unsupervised, ImageSets and
    davis_semantics.json,
    plus the four Khoreva files). Expression ``4k+a`` is annotator run ``a`` of object ``k``."""

    def __init__(self, root: str, split: str):
        super().__init__(root, split, davis=True)
        self.lines: List[List[str]] = [[] for _ in range(4)]
        self.sequences: List[str] = []

    def add(self, item: dict, extra: bool = False) -> None:
        super().add(item)
        vid = item["vid"]
        raw = os.path.join(self.root, "DAVIS")
        for name in item["frame_names"]:
            for sub, src, ext in (
                ("JPEGImages", "JPEGImages", ".jpg"),
                ("Annotations_unsupervised", "Annotations", ".png"),
            ):
                dst = os.path.join(raw, sub, "480p", vid, name + ext)
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.copyfile(os.path.join(self.root, self.split, src, vid, name + ext), dst)
        for k, e in enumerate(item["video"].expressions):
            self.lines[k % 4].append(f'{vid} {e.obj_id} "{e.text}"\n')
        self.sequences.append(vid)

    def finish(self) -> dict:
        truth = super().finish()
        raw = os.path.join(self.root, "DAVIS")
        sets = {"train": [], "val": []}
        sets["val" if self.split == "valid" else "train"] = self.sequences
        for name, vids in sets.items():
            write_text(os.path.join(raw, "ImageSets", "2017", name + ".txt"), "".join(v + "\n" for v in vids))
        write_json(
            os.path.join(raw, "davis_semantics.json"),
            {vid: {k: v["category"] for k, v in m["objects"].items()} for vid, m in self.meta_obj.items()},
        )
        for a, (name, enc) in enumerate(KHOREVA_FILES):
            write_text(
                os.path.join(self.root, "davis_text_annotations", name), "".join(self.lines[a]), encoding=enc
            )
        return truth


# ------------------------------------------------------------------------------------------------ a2d
class A2DWriter:
    """A2D-Sentences layout. Instance ids are 0-based (object k -> instance k-1); one sentence per instance;
    one h5 per annotated frame (1-based name) holding the instances visible in that frame."""

    def __init__(self, root: str):
        self.root = root
        self.videoset: List[str] = []
        self.text_rows = ["video_id,instance_id,query\n"]
        self.truth: Dict[str, dict] = {}
        self.temporal: List[str] = []

    def add(self, item: dict) -> None:
        vid, video, subset, codes = item["vid"], item["video"], item["subset"], item["codes"]
        scene = video.scene
        t, h, w = scene.index.shape
        write_mp4(os.path.join(self.root, "Release", "clips320H", vid + ".mp4"), scene.frames)
        for fidx in item["annotated"]:  # 0-based
            inst = [o.obj_id for o in scene.objects if scene.mask(o.obj_id)[fidx].any()]
            masks = np.stack([scene.mask(k)[fidx].T for k in inst]).astype(np.uint8)  # (N, W, H)
            boxes = []
            for k in inst:
                ys, xs = np.nonzero(scene.mask(k)[fidx])
                boxes.append([xs.min(), ys.min(), xs.max(), ys.max()])
            write_h5(
                os.path.join(
                    self.root, "text_annotations", "a2d_annotation_with_instances", vid, f"{fidx + 1:05d}.h5"
                ),
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

    def finish(self, missed: List[str]) -> dict:
        """``missed``: ids listed in the video set without sentences (real A2D has 3782 - 3754 such
        videos)."""
        rows = self.videoset + [f"{vid},11,0,1,320,480,24,3,0\n" for vid in missed]
        ta = os.path.join(self.root, "text_annotations")
        write_text(os.path.join(self.root, "Release", "videoset.csv"), "".join(rows))
        write_text(os.path.join(ta, "a2d_annotation.txt"), "".join(self.text_rows))
        write_text(os.path.join(ta, "a2d_missed_videos.txt"), "".join(v + "\n" for v in missed))
        write_json(os.path.join(ta, TEMPORAL_FILE), {"temporal": self.temporal})
        return {"videos": self.truth, "temporal": set(self.temporal)}


# ---------------------------------------------------------------------------------------------- jhmdb
class JHMDBWriter:
    """JHMDB-Sentences layout: PNG frames (1-based), ``puppet_mask.mat`` of the actor (sometimes fewer masks
    than frames), ``jhmdb_annotation.txt`` and the sample list (3 frames per video, drawn by the generator).
    """

    def __init__(self, root: str):
        self.root = root
        self.text_rows = ["video_id,query\n"]
        self.samples: List[list] = []
        self.truth: Dict[str, dict] = {}
        self.temporal: List[str] = []

    def add(self, item: dict) -> None:
        vid, video, action = item["vid"], item["video"], item["action"]
        scene = video.scene
        for i, name in enumerate(item["frame_names"]):
            write_png_rgb(
                os.path.join(self.root, "Rename_Images", action, vid, name + ".png"), scene.frames[i]
            )
        n_masks = item["mask_frames"]
        actor_mask = scene.mask(video.actor)[:n_masks].transpose(1, 2, 0).astype(np.uint8)  # (H, W, T)
        write_mat(
            os.path.join(self.root, "puppet_mask", action, vid, "puppet_mask.mat"), {"part_mask": actor_mask}
        )
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
        write_text(os.path.join(self.root, "jhmdb_annotation.txt"), "".join(self.text_rows))
        write_json(os.path.join(self.root, "jhmdb_sentences_samples_metadata.json"), self.samples)
        write_json(os.path.join(self.root, TEMPORAL_FILE), {"temporal": self.temporal})
        return {"videos": self.truth, "temporal": set(self.temporal)}
