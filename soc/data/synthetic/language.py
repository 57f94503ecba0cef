"""SynthRVOS referring expressions: templates in four families, kept only when they single out their object.

An expression is a template plus the attribute values it names (shape, colour, size, side, motion); it is
valid for an object when no other object of the video has all those values (motion by the set of phrases that
truthfully describe it, so "moves left" also matches an object that leaves the frame to the left).
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np

from .scene import Scene, SceneObject

__all__ = [
    "FAMILIES",
    "Expression",
    "object_attributes",
    "candidate_expressions",
    "pick_expressions",
    "multi_object_expressions",
    "no_target_expressions",
]

FAMILIES = ("appearance", "spatial", "motion", "combination")
_ING = {
    "moves left": "moving left",
    "moves right": "moving right",
    "moves up": "moving up",
    "moves down": "moving down",
    "stays still": "staying still",
    "turns around": "turning around",
    "appears later": "appearing later",
    "leaves the frame": "leaving the frame",
}
# (family, template, attribute keys it names)
_TEMPLATES = (
    ("appearance", "the {colour} {shape}", ("colour", "shape")),
    ("appearance", "the {size} {shape}", ("size", "shape")),
    ("appearance", "the {size} {colour} {shape}", ("size", "colour", "shape")),
    ("appearance", "the {colour} object", ("colour",)),
    ("appearance", "the {shape}", ("shape",)),
    ("spatial", "the {shape} on the {hside}", ("shape", "hside")),
    ("spatial", "the {colour} {shape} on the {hside}", ("colour", "shape", "hside")),
    ("spatial", "the {shape} at the {vside}", ("shape", "vside")),
    ("spatial", "the {colour} object on the {hside}", ("colour", "hside")),
    ("motion", "the {shape} that {motion}", ("shape", "motion")),
    ("motion", "the {colour} {shape} that {motion}", ("colour", "shape", "motion")),
    ("motion", "the object that {motion}", ("motion",)),
    ("motion", "the shape that {motion}", ("motion",)),
    ("combination", "the {colour} {shape} {motion_ing}", ("colour", "shape", "motion")),
    ("combination", "the {size} {shape} {motion_ing}", ("size", "shape", "motion")),
)

Expression = Tuple[str, str]  # (family, text)


def object_attributes(scene: Scene, obj: SceneObject) -> Dict[str, object]:
    """Attributes an expression may name. Sides come from the mean visible centre (None near the middle)."""
    mask = scene.mask(obj.obj_id)
    t, h, w = mask.shape
    ys, xs = np.nonzero(mask.reshape(t * h, w))
    attrs: Dict[str, object] = {
        "shape": obj.shape,
        "colour": obj.colour,
        "size": obj.size,
        "motion": obj.motion_set,
        "hside": None,
        "vside": None,
    }
    if len(xs):
        mx, my = xs.mean() / w, (ys % h).mean() / h
        attrs["hside"] = "left" if mx < 0.4 else "right" if mx > 0.6 else None
        attrs["vside"] = "top" if my < 0.4 else "bottom" if my > 0.6 else None
    return attrs


def _matches(attrs: Dict[str, object], values: Dict[str, object]) -> bool:
    for key, value in values.items():
        if key == "motion":
            if value not in attrs["motion"]:
                return False
        elif attrs[key] != value:
            return False
    return True


def candidate_expressions(
    scene: Scene, obj: SceneObject, families: Optional[Tuple[str, ...]] = None
) -> List[Expression]:
    """All template expressions that name ``obj`` and no other object of the scene."""
    attrs = {o.obj_id: object_attributes(scene, o) for o in scene.objects}
    mine = attrs[obj.obj_id]
    out = []
    for family, template, keys in _TEMPLATES:
        if families is not None and family not in families:
            continue
        values = {k: (obj.motion if k == "motion" else mine[k]) for k in keys}
        if any(v is None for v in values.values()):
            continue
        if any(_matches(a, values) for oid, a in attrs.items() if oid != obj.obj_id):
            continue
        fill = {k: v for k, v in values.items()}
        if "motion" in values:
            fill["motion_ing"] = _ING[obj.motion]
        out.append((family, template.format(**fill)))
    return out


def pick_expressions(rng: np.random.Generator, candidates: List[Expression], n: int) -> List[Expression]:
    """Up to ``n`` distinct expressions: a family drawn uniformly among those available, then a template."""
    pool = list(candidates)
    picked: List[Expression] = []
    while pool and len(picked) < n:
        families = sorted({f for f, _ in pool})
        family = families[int(rng.integers(len(families)))]
        options = [c for c in pool if c[0] == family]
        choice = options[int(rng.integers(len(options)))]
        picked.append(choice)
        pool.remove(choice)
    return picked


_NUMBERS = {2: "two", 3: "three", 4: "four"}
_PLURAL_MOTION = {
    m: m.replace("moves", "move").replace("stays", "stay").replace("turns", "turn") for m in _ING
}
_PLURAL_MOTION.update({"appears later": "appear later", "leaves the frame": "leave the frame"})
# (template, attribute keys it names) of expressions that refer to a group of objects (MeViS-style)
_GROUP_TEMPLATES = (
    ("the {n} {shape}s", ("shape",)),
    ("the {n} {colour} {shape}s", ("colour", "shape")),
    ("the {n} {colour} objects", ("colour",)),
    ("the {n} {shape}s that {motion}", ("shape", "motion")),
)


def multi_object_expressions(scene: Scene) -> List[Tuple[str, Tuple[int, ...]]]:
    """Expressions that name a group of 2-4 objects exactly ("the two stars that move left"): every member
    has the named values (the motion as drawn) and no other object of the scene has them all.

    Returns:
        (text, sorted object ids) pairs, in template order, then by group.
    """
    attrs = {o.obj_id: object_attributes(scene, o) for o in scene.objects}
    out = []
    for template, keys in _GROUP_TEMPLATES:
        groups: Dict[tuple, List[int]] = {}
        for o in scene.objects:
            values = tuple(o.motion if k == "motion" else attrs[o.obj_id][k] for k in keys)
            groups.setdefault(values, []).append(o.obj_id)
        for values, members in groups.items():
            named = dict(zip(keys, values))
            others = [a for oid, a in attrs.items() if oid not in members]
            if len(members) not in _NUMBERS or any(_matches(a, named) for a in others):
                continue
            fill = dict(named, n=_NUMBERS[len(members)])
            if "motion" in named:
                fill["motion"] = _PLURAL_MOTION[named["motion"]]
            out.append((template.format(**fill), tuple(sorted(members))))
    return out


def no_target_expressions(scene: Scene, shapes: Tuple[str, ...], colours: Tuple[str, ...]) -> List[str]:
    """ "the {colour} {shape}" for every pair of ``colours`` x ``shapes`` that no object of the scene has (an
    expression that refers to nothing, as in MeViS v2)."""
    present = {(o.colour, o.shape) for o in scene.objects}
    return [f"the {c} {s}" for c in colours for s in shapes if (c, s) not in present]
