"""Ref-DAVIS17: ``load_ref_davis17(root, ...)`` and ``register_ref_davis17(name, root, ...)``.

Two layouts are read (``docs/formats_and_metrics.md`` §2):

- the raw downloads, unchanged: ``DAVIS/{JPEGImages,Annotations_unsupervised}/480p/<seq>/%05d.*``,
  ``DAVIS/ImageSets/2017/{train,val}.txt``, ``DAVIS/davis_semantics.json`` and the four Khoreva files in
  ``davis_text_annotations/``;
- the Ref-YouTube-VOS-like layout of ReferFormer's converter (``datasets/prepare_ref_davis.py`` writes it):
  ``meta_expressions/<split>/meta_expressions.json``, ``<split>/{JPEGImages,Annotations}``,
  ``<split>/meta.json``.

The converted layout wins when both exist. Expression ids follow the converter: per sequence, objects in
(string) order of ``obj_id``, and for object k the ids ``4k+a`` with annotator run a = 0 (annot1 first-frame),
1 (annot1 full-video), 2 (annot2 first-frame), 3 (annot2 full-video). Evaluation averages the four runs.
"""

from __future__ import annotations

import logging
import os
from typing import Dict, List, Optional, Tuple

from detectron2.data import DatasetCatalog, MetadataCatalog

from ..io import DataError
from .common import check_name, read_json
from .ref_ytvos import load_ytvos_layout

__all__ = ["load_ref_davis17", "register_ref_davis17", "read_khoreva_file", "build_ref_davis_meta"]

logger = logging.getLogger(__name__)

KHOREVA_FILES = (  # (file name, encoding), in annotator-run order a = 0..3
    ("Davis17_annot1.txt", "utf-8"),
    ("Davis17_annot1_full_video.txt", "utf-8"),
    ("Davis17_annot2.txt", "latin-1"),
    ("Davis17_annot2_full_video.txt", "latin-1"),
)
SEQUENCE_TYPOS = {"clasic-car": "classic-car", "dog-scale": "dogs-scale", "motor-bike": "motorbike"}
_IMAGE_SET = {"train": "train", "valid": "val", "val": "val"}


def read_khoreva_file(path: str, encoding: str) -> Dict[str, List[Tuple[str, str]]]:
    """Parse one Khoreva file (lines ``<seq> <obj_id> "<expression>"``) into ``{seq: [(obj_id, exp), ...]}``.

    Sequence-name typos are fixed and each list is sorted by ``obj_id`` as a string, as ReferFormer does.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Ref-DAVIS17 expression file missing: {path}")
    videos: Dict[str, List[Tuple[str, str]]] = {}
    with open(path, encoding=encoding) as f:
        for lineno, line in enumerate(f, 1):
            tokens = line.split()
            if not tokens:
                continue
            if len(tokens) < 3:
                raise DataError(f"{path}:{lineno}: expected '<seq> <obj_id> \"<expression>\"', got {line!r}")
            seq, obj_id = SEQUENCE_TYPOS.get(tokens[0], tokens[0]), tokens[1]
            exp = " ".join(tokens[2:])[1:-1]  # drop the quotes
            videos.setdefault(seq, []).append((obj_id, exp))
    return {seq: sorted(items, key=lambda t: t[0]) for seq, items in videos.items()}


def build_ref_davis_meta(raw_root: str, split: str) -> Tuple[Dict[str, dict], Dict[str, dict]]:
    """Build, from the raw downloads, the ``videos`` dicts of ``meta_expressions.json`` and ``meta.json``.

    Returns:
        (meta_expressions videos, meta.json videos) for the sequences of ``split`` (``train`` or ``valid``).
    """
    davis = os.path.join(raw_root, "DAVIS")
    set_file = os.path.join(davis, "ImageSets", "2017", _IMAGE_SET[split] + ".txt")
    if not os.path.isfile(set_file):
        raise FileNotFoundError(f"DAVIS image set missing: {set_file}")
    with open(set_file) as f:
        sequences = [check_name(line.strip(), set_file, "sequence") for line in f if line.strip()]
    runs = [
        read_khoreva_file(os.path.join(raw_root, "davis_text_annotations", n), e) for n, e in KHOREVA_FILES
    ]
    semantics_file = os.path.join(davis, "davis_semantics.json")
    semantics = read_json(semantics_file)
    meta_videos, objects = {}, {}
    for seq in sequences:
        frame_dir = os.path.join(davis, "JPEGImages", "480p", seq)
        if not os.path.isdir(frame_dir):
            raise FileNotFoundError(f"DAVIS frames missing: {frame_dir}")
        frames = sorted(os.path.splitext(n)[0] for n in os.listdir(frame_dir) if n.endswith(".jpg"))
        lists = [run.get(seq, []) for run in runs]
        if len({len(items) for items in lists}) > 1:  # ReferFormer's zip drops the extra objects silently
            logger.warning(
                "Ref-DAVIS17 %s: the four annotator files list %s objects; keeping %d",
                seq,
                [len(items) for items in lists],
                min(len(items) for items in lists),
            )
        expressions = {}
        for k, per_run in enumerate(zip(*lists)):
            for a, (obj_id, exp) in enumerate(per_run):
                expressions[str(4 * k + a)] = {"exp": exp, "obj_id": obj_id}
        meta_videos[seq] = {"expressions": expressions, "frames": frames}
        if seq not in semantics:
            raise DataError(f"{semantics_file}: sequence {seq} is missing")
        objects[seq] = {
            "objects": {
                str(i): {"category": semantics[seq][str(i)]} for i in range(1, len(semantics[seq]) + 1)
            }
        }
    return meta_videos, objects


def load_ref_davis17(root: str, split: str = "valid", annotator: Optional[int] = None) -> List[dict]:
    """Load Ref-DAVIS17 ``split`` (``valid`` or ``train``) under ``root``, from either layout.

    Args:
        annotator: keep only annotator run ``a`` (``int(exp_id) % 4 == a``); None keeps all four.

    Records are those of Ref-YouTube-VOS plus ``annotator`` (0..3); masks come from the
    unsupervised annotations (palette PNGs, 255 = void).
    """
    converted = os.path.join(root, "meta_expressions", split, "meta_expressions.json")
    if os.path.isfile(converted):
        records = load_ytvos_layout(root, split, require_masks=True)
    else:
        raw_set = os.path.join(root, "DAVIS", "ImageSets", "2017", _IMAGE_SET[split] + ".txt")
        if not os.path.isfile(raw_set):
            raise FileNotFoundError(f"Ref-DAVIS17 not found under {root}: neither {converted} nor {raw_set}")
        meta_videos, objects = build_ref_davis_meta(root, split)
        davis = os.path.join(root, "DAVIS")
        records = load_ytvos_layout(
            root,
            split,
            require_masks=True,
            meta_videos=meta_videos,
            meta_file=os.path.join(root, "davis_text_annotations"),
            img_root=os.path.join(davis, "JPEGImages", "480p"),
            ann_root=os.path.join(davis, "Annotations_unsupervised", "480p"),
            objects=objects,
            objects_file=os.path.join(davis, "davis_semantics.json"),
        )
    for r in records:
        r["annotator"] = int(r["exp_id"]) % 4
    if annotator is not None:
        records = [r for r in records if r["annotator"] == annotator]
    return records


def register_ref_davis17(name: str, root: str, split: str = "valid", annotator: Optional[int] = None) -> None:
    """Register Ref-DAVIS17 under ``root`` as ``name`` (all four annotator runs, or only ``annotator``)."""
    DatasetCatalog.register(name, lambda: load_ref_davis17(root, split, annotator))
    MetadataCatalog.get(name).set(
        evaluator_type="ref_davis",
        root=root,
        split=split,
        annotator=-1 if annotator is None else annotator,  # -1: the four runs, averaged by the evaluator
    )
