"""Helpers shared by the dataset loaders: JSON reading with file-naming errors, the check of names that
become paths, SynthRVOS temporal flags.

The temporal subset (SynthRVOS only) has one source of truth: the loaders set each record's ``temporal`` bool
from :data:`TEMPORAL_FILE`, and evaluators read the flag from the inputs they process. Records of real data
have no ``temporal`` key.
"""

from __future__ import annotations

import json
import os
from typing import Optional, Set

from soc.utils.paths import unsafe_name_reason

from ..io import DataError

__all__ = ["TEMPORAL_FILE", "read_json", "read_temporal_subset", "check_name"]

# SynthRVOS only, next to the expression files: {"temporal": ["<video>/<exp_id>", ...]}. Real data lacks it.
TEMPORAL_FILE = "temporal_expressions.json"


def read_json(path: str):
    """Parse a JSON file; a missing file raises FileNotFoundError, a malformed one DataError, both naming
    it."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"dataset file missing: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise DataError(f"cannot parse {path}: {e}") from e


def check_name(name: object, source: str, key: str) -> str:
    """``name`` when it can be one path component (see :mod:`soc.utils.paths`), else :class:`DataError`
    ``"<source>: <key> '<name>': <reason>"``.

    Args:
        source: the file (or ``file:line``) the name was read from.
        key: what the name is there, e.g. ``"video id"`` or ``"video abc: frame name"``.
    """
    reason = unsafe_name_reason(name)
    if reason is not None:
        raise DataError(f"{source}: {key} {name!r}: {reason}")
    return name


def read_temporal_subset(path: str) -> Optional[Set[str]]:
    """The ``"<video>/<exp_id>"`` keys of a SynthRVOS temporal-subset file, or None when there is no file."""
    if not os.path.isfile(path):
        return None
    return set(read_json(path)["temporal"])
