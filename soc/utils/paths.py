"""Turning names that come from data files (video ids, expression ids, frame names) into paths safely.

A name is one path component: no separator, not ``.`` or ``..``, not absolute, no NUL or other control
character. Loaders reject unsafe names where they read them (naming the file and the key); every writer joins
through :func:`safe_join`, which also checks that the result stays under its root.
"""

import os
from typing import Optional

__all__ = ["unsafe_name_reason", "safe_join"]


def unsafe_name_reason(name: object) -> Optional[str]:
    """Why ``name`` cannot be used as one path component, or None when it can."""
    if not isinstance(name, str):
        return f"is a {type(name).__name__}, not a string"
    if not name:
        return "is empty"
    if name in (".", ".."):
        return f"is {name!r}"
    if "/" in name or "\\" in name or os.sep in name or (os.altsep and os.altsep in name):
        return "contains a path separator"
    if any(not c.isprintable() for c in name):
        return "contains a NUL or control character"
    return None


def safe_join(root: str, *names: str) -> str:
    """``root/name1/name2/...`` for names that are single, safe path components (``ValueError`` otherwise),
    checked to resolve under ``root`` (symbolic links included)."""
    for name in names:
        reason = unsafe_name_reason(name)
        if reason is not None:
            raise ValueError(f"refusing to write under {root}: the name {name!r} {reason}")
    path = os.path.join(root, *names)
    real_root = os.path.realpath(root)
    if os.path.commonpath([real_root, os.path.realpath(path)]) != real_root:
        raise ValueError(f"refusing to write {path}: it resolves outside {root}")
    return path
