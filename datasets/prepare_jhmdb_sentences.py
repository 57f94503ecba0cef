#!/usr/bin/env python
"""Draw a JHMDB-Sentences sample list (3 random frames per video) when you have none.

Numbers are only comparable on the same draw: prefer SOC's own ``jhmdb_sentences_samples_metadata.json``
(``datasets/jhmdb_sentences/`` of the authors' repository) or MTTR's, copied to the dataset root. This script
makes a reproducible draw instead (``random.Random(seed)``, videos in ``jhmdb_annotation.txt`` order).

    python datasets/prepare_jhmdb_sentences.py --root $SOC_DATASETS/jhmdb_sentences [--seed 0]
"""

import argparse
import json
import os
import sys
from typing import List, Optional

from soc.data.datasets.jhmdb_sentences import SAMPLES_FILE, jhmdb_samples


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", required=True, help="folder holding Rename_Images/, puppet_mask/ ...")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--force", action="store_true", help="overwrite an existing sample list")
    args = parser.parse_args(argv)
    path = os.path.join(args.root, SAMPLES_FILE)
    if os.path.exists(path) and not args.force:
        print(f"{path} exists (maybe SOC's own draw); use --force to replace it", file=sys.stderr)
        return 1
    samples = jhmdb_samples(args.root, seed=args.seed)
    root = os.path.abspath(args.root)
    rows = [
        [
            v,
            "./jhmdb_sentences/" + os.path.relpath(os.path.abspath(fp), root).replace(os.sep, "/"),
            "./jhmdb_sentences/" + os.path.relpath(os.path.abspath(mp), root).replace(os.sep, "/"),
            n,
            q,
        ]
        for v, fp, mp, n, q in samples
    ]
    with open(path, "w") as f:
        json.dump(rows, f)
    print(f"{len(rows)} samples -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
