"""Dataset registration: one loader file per benchmark; ``builtin`` registers the predefined splits."""

from .a2d_sentences import load_a2d_sentences, register_a2d_sentences
from .jhmdb_sentences import load_jhmdb_sentences, register_jhmdb_sentences
from .mevis import load_mevis, register_mevis, register_revos
from .ref_davis import load_ref_davis17, register_ref_davis17
from .ref_ytvos import load_ref_ytvos, register_ref_ytvos
from .refcoco import load_refcoco, register_refcoco
from . import builtin  # noqa: F401  (registers the predefined splits)

__all__ = [
    "load_ref_ytvos",
    "register_ref_ytvos",
    "load_ref_davis17",
    "register_ref_davis17",
    "load_a2d_sentences",
    "register_a2d_sentences",
    "load_jhmdb_sentences",
    "register_jhmdb_sentences",
    "load_refcoco",
    "register_refcoco",
    "load_mevis",
    "register_mevis",
    "register_revos",
]
