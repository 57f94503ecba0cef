"""One SynthRVOS video: scene plus expressions, resampled until every constraint holds (deterministically)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

from .language import candidate_expressions, pick_expressions
from .scene import Scene, render_scene, sample_scene

__all__ = ["VideoExpression", "SynthVideo", "draw_video"]

_MOTION_FAMILIES = ("motion", "combination")
_FIRST_FRAME_FAMILIES = ("appearance", "spatial")


@dataclass
class VideoExpression:
    obj_id: int  # scene object id (1..K)
    family: str
    text: str
    temporal: bool


@dataclass
class SynthVideo:
    scene: Scene
    expressions: List[VideoExpression]  # grouped by object, in object order
    actor: Optional[int] = None  # JHMDB: the one annotated object


def _expressions_for(rng, scene: Scene, obj, style: str, temporal: bool) -> List[VideoExpression]:
    fams = _MOTION_FAMILIES if temporal else None
    cands = candidate_expressions(scene, obj, fams)
    if not cands:
        return []
    if style in ("ytvos", "long_rvos", "mevis"):
        picked = pick_expressions(rng, cands, int(rng.integers(1, 4)))
    elif style in ("a2d", "jhmdb"):
        picked = pick_expressions(rng, cands, 1)
    elif style == "davis":  # runs a = 0..3: first-frame, full-video, first-frame, full-video
        first = [c for c in cands if c[0] in _FIRST_FRAME_FAMILIES] or cands
        full = [c for c in cands if c[0] in _MOTION_FAMILIES] or cands
        firsts = pick_expressions(rng, first, 2)
        fulls = pick_expressions(rng, full, 2)
        firsts, fulls = (firsts * 2)[:2], (fulls * 2)[:2]  # one distinct phrase: both annotators wrote it
        picked = [firsts[0], fulls[0], firsts[1], fulls[1]]
    else:
        raise ValueError(style)
    return [VideoExpression(obj.obj_id, f, text, temporal) for f, text in picked]


def draw_video(
    rng: np.random.Generator,
    h: int,
    w: int,
    t: int,
    *,
    temporal: bool,
    style: str,
    annotated: Optional[Sequence[int]] = None,
    long_videos: bool = False,
    max_tries: int = 200,
) -> SynthVideo:
    """Draw a video whose every object is visible in at least ``max(2, T//4)`` frames and has at least one
    unique expression; with ``annotated`` (A2D), every object is visible in one of those frames and every one
    of those frames shows an object.

    Args:
        temporal: include a look-alike pair differing only in motion, described by motion expressions.
        style: expression plan, ``ytvos``, ``long_rvos`` or ``mevis`` (1-3 per object), ``davis`` (4
            annotator runs per object), ``a2d`` (1 per object) or ``jhmdb`` (1, for a single actor).
        long_videos: looping motions that stay true over hundreds of frames (see :mod:`.scene`).
    """
    min_visible = max(2, t // 4)
    for _ in range(max_tries):
        objects, depth, pair = sample_scene(rng, h, w, t, temporal, long_videos)
        scene = render_scene(rng, objects, depth, h, w, t, pair)
        visible = {o.obj_id: (scene.mask(o.obj_id).sum(axis=(1, 2)) >= 4) for o in objects}
        if any(v.sum() < min_visible for v in visible.values()):
            continue
        if annotated is not None and (
            any(not v[list(annotated)].any() for v in visible.values())
            or not np.any([v[list(annotated)] for v in visible.values()], axis=0).all()
        ):
            continue  # A2D: every object in some annotated frame, and some object in every annotated frame
        targets = objects
        actor = None
        if style == "jhmdb":
            actor = pair[int(rng.integers(2))] if pair else int(rng.integers(1, len(objects) + 1))
            targets = [o for o in objects if o.obj_id == actor]
        expressions: List[VideoExpression] = []
        for obj in targets:
            exps = _expressions_for(rng, scene, obj, style, obj.obj_id in pair)
            if not exps:
                break
            expressions += exps
        else:
            return SynthVideo(scene, expressions, actor)
    raise RuntimeError(f"could not draw a valid {h}x{w}x{t} video in {max_tries} tries")
