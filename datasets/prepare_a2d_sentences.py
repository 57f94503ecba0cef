#!/usr/bin/env python
"""Write MTTR's A2D-Sentences sample caches, so that loading does not open every h5 file.

    python datasets/prepare_a2d_sentences.py --root $SOC_DATASETS/a2d_sentences

Writes ``<root>/a2d_sentences_single_frame_{train,test}_annotations.json``: rows
``[query (lower case), video_id, frame_idx (1-based), instance_id]``, one per (sentence, annotated frame in
which the instance appears), in the order of ``a2d_annotation.txt`` (the "1 (copy)" row is skipped).
The files ReferFormer distributes have the same content; either works.
"""

import argparse
import json
import os
import sys
from typing import List, Optional

from soc.data.datasets.a2d_sentences import CACHE_FILE, a2d_samples


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", required=True, help="folder holding Release/ and text_annotations/")
    parser.add_argument("--force", action="store_true", help="overwrite existing cache files")
    args = parser.parse_args(argv)
    for split in ("train", "test"):
        path = os.path.join(args.root, CACHE_FILE.format(split=split))
        if os.path.exists(path) and not args.force:
            print(f"{path} exists; skipping (use --force to rebuild)")
            continue
        samples = a2d_samples(args.root, split)
        with open(path, "w") as f:
            json.dump(samples, f, indent=2)
        print(f"{split}: {len(samples)} samples -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
