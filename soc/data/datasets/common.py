"""Helpers shared by the dataset loaders: JSON reading with file-naming errors, SynthRVOS temporal flags."""

from __future__ import annotations

import json
import os
from typing import Callable, List, Optional, Set

from detectron2.data import MetadataCatalog

from ..io import DataError

__all__ = ["TEMPORAL_FILE", "read_json", "read_temporal_subset", "load_and_mark"]

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


def read_temporal_subset(path: str) -> Optional[Set[str]]:
    """The ``"<video>/<exp_id>"`` keys of a SynthRVOS temporal-subset file, or None when there is no file."""
    if not os.path.isfile(path):
        return None
    return set(read_json(path)["temporal"])


def load_and_mark(name: str, loader: Callable[..., List[dict]], *args, **kwargs) -> List[dict]:
    """Run ``loader(*args, **kwargs)``; when its records carry ``temporal`` flags (SynthRVOS), publish the
    flagged keys as ``MetadataCatalog.get(name).temporal_subset`` (a set of ``"<video>/<exp_id>"``)."""
    records = loader(*args, **kwargs)
    if records and "temporal" in records[0]:
        subset = {f"{r['video_id']}/{r['exp_id']}" for r in records if r["temporal"]}
        # bypass Metadata's write-once check: regenerated data may legitimately change the subset
        vars(MetadataCatalog.get(name))["temporal_subset"] = subset
    return records
