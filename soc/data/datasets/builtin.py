"""Registers every benchmark split and the SynthRVOS splits under the dataset root ``$SOC_DATASETS``
(default ``datasets``, like ``DETECTRON2_DATASETS``). Lazy: no file is read until ``DatasetCatalog.get``.

Expected trees under the root are in ``datasets/README.md``.
"""

import os

from .a2d_sentences import register_a2d_sentences
from .jhmdb_sentences import register_jhmdb_sentences
from .long_rvos import register_long_rvos
from .mevis import register_mevis, register_revos
from .ref_davis import register_ref_davis17
from .ref_ytvos import register_ref_ytvos
from .refcoco import register_refcoco

# name -> (folder under the root, split)
_PREDEFINED_SPLITS_REF_YTVOS = {
    "ref_ytvos_train": ("ref-youtube-vos", "train"),
    "ref_ytvos_valid": ("ref-youtube-vos", "valid"),  # valid minus test: the submission split, no masks
    "synthrvos_ytvos_train": ("synthrvos/ytvos", "train"),
    "synthrvos_ytvos_valid": ("synthrvos/ytvos", "valid"),
}
# name -> (folder, split, annotator run or None for all four)
_PREDEFINED_SPLITS_REF_DAVIS = {
    "ref_davis17_val": ("ref-davis", "valid", None),
    **{f"ref_davis17_val_anno{a}": ("ref-davis", "valid", a) for a in range(4)},
    "synthrvos_davis_val": ("synthrvos/davis", "valid", None),
    **{f"synthrvos_davis_val_anno{a}": ("synthrvos/davis", "valid", a) for a in range(4)},
}
_PREDEFINED_SPLITS_A2D = {
    "a2d_sentences_train": ("a2d_sentences", "train"),
    "a2d_sentences_test": ("a2d_sentences", "test"),
    "synthrvos_a2d_train": ("synthrvos/a2d", "train"),
    "synthrvos_a2d_test": ("synthrvos/a2d", "test"),
}
_PREDEFINED_SPLITS_JHMDB = {
    "jhmdb_sentences_test": "jhmdb_sentences",
    "synthrvos_jhmdb_test": "synthrvos/jhmdb",
}
# name -> (folder, split)
_PREDEFINED_SPLITS_LONG_RVOS = {
    "long_rvos_train": ("long_rvos", "train"),
    "long_rvos_valid": ("long_rvos", "valid"),
    "long_rvos_test": ("long_rvos", "test"),
    "synthrvos_long_valid": ("synthrvos/long_rvos", "valid"),  # python -m soc.data.synthetic ... --long
}
# name -> (folder, split); MeViS: valid_u has masks, valid (the server's split) has none
_PREDEFINED_SPLITS_MEVIS = {
    **{f"mevis_{s}": ("mevis", s) for s in ("train", "valid_u", "valid")},
    **{f"mevis2_{s}": ("mevis_v2", s) for s in ("train", "valid_u", "valid")},
    **{f"synthrvos_mevis_{s}": ("synthrvos/mevis", s) for s in ("train", "valid_u", "valid")},
}
_PREDEFINED_SPLITS_REVOS = {
    "revos_train": ("revos", "train"),
    "revos_valid": ("revos", "valid"),
}
# name -> (dataset, split); all under <root>/coco
_PREDEFINED_SPLITS_REFCOCO = {
    f"{prefix}_{split}": (dataset, split)
    for prefix, dataset in (("refcoco", "refcoco"), ("refcocop", "refcoco+"), ("refcocog", "refcocog"))
    for split in ("train", "val")
}


def register_all(root: str) -> None:
    """Register every predefined split under ``root``."""
    for name, (folder, split) in _PREDEFINED_SPLITS_REF_YTVOS.items():
        register_ref_ytvos(name, os.path.join(root, folder), split)
    for name, (folder, split, annotator) in _PREDEFINED_SPLITS_REF_DAVIS.items():
        register_ref_davis17(name, os.path.join(root, folder), split, annotator)
    for name, (folder, split) in _PREDEFINED_SPLITS_A2D.items():
        register_a2d_sentences(name, os.path.join(root, folder), split)
    for name, folder in _PREDEFINED_SPLITS_JHMDB.items():
        register_jhmdb_sentences(name, os.path.join(root, folder))
    for name, (folder, split) in _PREDEFINED_SPLITS_LONG_RVOS.items():
        register_long_rvos(name, os.path.join(root, folder), split)
    for name, (folder, split) in _PREDEFINED_SPLITS_MEVIS.items():
        register_mevis(name, os.path.join(root, folder), split)
    for name, (folder, split) in _PREDEFINED_SPLITS_REVOS.items():
        register_revos(name, os.path.join(root, folder), split)
    for name, (dataset, split) in _PREDEFINED_SPLITS_REFCOCO.items():
        register_refcoco(name, os.path.join(root, "coco"), dataset, split)


if __name__.endswith(".builtin"):
    register_all(os.path.expanduser(os.getenv("SOC_DATASETS", "datasets")))
