#!/usr/bin/env python
"""Lay out Ref-DAVIS17 as ReferFormer's converter does (Ref-YouTube-VOS-like), from the raw downloads.

Optional: SOC's loader reads the raw downloads directly. Use this to share the tree with tools that expect
the converted layout. Unlike ReferFormer's script it links (or copies) instead of moving, so ``DAVIS/`` stays
intact, and it warns when the four annotator files disagree on a sequence's objects.

    python datasets/prepare_ref_davis.py --root $SOC_DATASETS/ref-davis [--copy]

Reads ``<root>/DAVIS/{JPEGImages,Annotations_unsupervised}/480p``,
``<root>/DAVIS/ImageSets/2017/{train,val}.txt``,
``<root>/DAVIS/davis_semantics.json`` and
``<root>/davis_text_annotations/Davis17_annot{1,2}[_full_video].txt``;
writes ``<root>/{train,valid}/{JPEGImages,Annotations,meta.json}`` and
``<root>/meta_expressions/{train,valid}/meta_expressions.json``.
"""

import argparse
import json
import os
import shutil
import sys
from typing import List, Optional

from soc.data.datasets.ref_davis import build_ref_davis_meta


def _place(src: str, dst: str, copy: bool) -> None:
    if os.path.lexists(dst):
        raise FileExistsError(f"{dst} exists; remove the converted folders first")
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if copy:
        shutil.copytree(src, dst)
    else:
        os.symlink(os.path.abspath(src), dst, target_is_directory=True)


def convert(root: str, out: Optional[str] = None, copy: bool = False) -> None:
    """Write the converted layout of ``root`` (raw downloads) into ``out`` (default: ``root``)."""
    out = out or root
    davis = os.path.join(root, "DAVIS")
    for split in ("train", "valid"):
        meta_videos, objects = build_ref_davis_meta(root, split)
        for seq in meta_videos:
            _place(
                os.path.join(davis, "JPEGImages", "480p", seq),
                os.path.join(out, split, "JPEGImages", seq),
                copy,
            )
            _place(
                os.path.join(davis, "Annotations_unsupervised", "480p", seq),
                os.path.join(out, split, "Annotations", seq),
                copy,
            )
        os.makedirs(os.path.join(out, "meta_expressions", split), exist_ok=True)
        with open(os.path.join(out, "meta_expressions", split, "meta_expressions.json"), "w") as f:
            json.dump({"videos": meta_videos}, f)
        os.makedirs(os.path.join(out, split), exist_ok=True)
        with open(os.path.join(out, split, "meta.json"), "w") as f:
            json.dump({"videos": objects}, f)
        print(
            f"{split}: {len(meta_videos)} sequences, "
            f"{sum(len(v['expressions']) for v in meta_videos.values())} expressions"
        )


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", required=True, help="folder holding DAVIS/ and davis_text_annotations/")
    parser.add_argument("--out", default=None, help="output root (default: --root)")
    parser.add_argument("--copy", action="store_true", help="copy the frame folders instead of symlinking")
    args = parser.parse_args(argv)
    convert(args.root, args.out, args.copy)
    return 0


if __name__ == "__main__":
    sys.exit(main())
