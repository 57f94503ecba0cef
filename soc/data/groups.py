"""Groups of a dataset's expressions by clip, so that the model encodes each clip once for all of them (at
inference; in training with ``DATALOADER.EXPRESSIONS_PER_CLIP`` ≠ 1).

A *group* is one sample for several records that share a clip (same video, same frames: every key of
:data:`CLIP_KEYS`). It carries those shared keys once, plus three lists in the records' order:
``expressions`` (E str), ``exp_ids`` (E str) and ``per_expression`` (E dicts: each record's other keys, e.g.
``obj_ids``, ``annotations``, ``temporal``, A2D's ``instance_id`` and ``image_id``). The mappers map a group
like a record (the clip once, every expression normalised), the model answers its ``expressions`` with a list
of E outputs, and the evaluators score it expression by expression through :func:`ungroup`; in training, the
mapper samples some of its expressions and the model is trained on each of them, from one backbone pass.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

__all__ = ["group_expressions", "make_group", "ungroup", "CLIP_KEYS", "GROUP_KEYS"]

# Record keys that define the clip the model sees (A2D/JHMDB: the video and the annotated frame, whose window
# the mapper cuts); records equal on all of them can be answered from one encoding of the clip.
CLIP_KEYS = (
    "video_id",
    "file_names",
    "frame_names",
    "height",
    "width",
    "video_file",
    "annotated_frame",
    "frame_idx",
)
# The per-expression lists of a group.
GROUP_KEYS = ("expressions", "exp_ids", "per_expression")


def _clip_key(record: dict) -> Tuple:
    return tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in record.items() if k in CLIP_KEYS)


def make_group(members: List[dict]) -> dict:
    """The group of ``members``, records (or :func:`ungroup` outputs) of one clip, in their order."""
    private = CLIP_KEYS + ("expression", "exp_id")
    return {
        **{k: v for k, v in members[0].items() if k in CLIP_KEYS},
        "expressions": [r["expression"] for r in members],
        "exp_ids": [r["exp_id"] for r in members],
        "per_expression": [{k: v for k, v in r.items() if k not in private} for r in members],
    }


def group_expressions(records: List[dict], max_per_group: int = 0) -> List[dict]:
    """Test samples that each answer several expressions of one clip (see the module docstring).

    Args:
        records: dataset records (``DatasetCatalog.get``), one per expression.
        max_per_group: at most this many expressions per group (a clip with more is split into consecutive
            groups); 0 = all of a clip's expressions in one group; 1 = no grouping.

    Returns:
        with ``max_per_group`` 1 the records themselves; otherwise the groups, ordered by their first
        record, with their expressions in the records' order. ``ungroup`` of every group, concatenated,
        gives back the records (clip by clip).
    """
    if max_per_group < 0:
        raise ValueError(f"max_per_group must be >= 0, got {max_per_group}")
    if max_per_group == 1:
        return list(records)
    by_clip: Dict[Tuple, List[dict]] = {}
    for record in records:
        by_clip.setdefault(_clip_key(record), []).append(record)
    groups = []
    for members in by_clip.values():
        size = max_per_group or len(members)
        groups.extend(make_group(members[i : i + size]) for i in range(0, len(members), size))
    return groups


def ungroup(sample: dict) -> List[dict]:
    """The per-expression dicts of a group (or mapped group), each shaped like an ungrouped record (mapper
    output): the group's shared keys (``frames`` included, not copied) plus that expression's
    ``expression``, ``exp_id`` and ``per_expression`` keys. A sample without ``expressions`` is returned
    alone."""
    if "expressions" not in sample:
        return [sample]
    texts, exp_ids, extras = (sample[k] for k in GROUP_KEYS)
    if not len(texts) == len(exp_ids) == len(extras):
        raise ValueError(
            f"group of video {sample.get('video_id')}: {len(texts)} expressions, {len(exp_ids)} exp_ids, "
            f"{len(extras)} per_expression entries"
        )
    shared = {k: v for k, v in sample.items() if k not in GROUP_KEYS}
    return [
        {**shared, **extra, "exp_id": exp_id, "expression": text}
        for text, exp_id, extra in zip(texts, exp_ids, extras)
    ]
