"""Command line of the SynthRVOS generator: ``python -m soc.data.synthetic --help``."""

import argparse
import sys
from typing import List, Optional, Tuple

from .generate import DEFAULT_FRAMES, DEFAULT_SIZES, DEFAULT_SPLITS, FORMATS, LONG_FRAMES, generate


def _pair(text: str, sep: str) -> Tuple[int, int]:
    a, b = text.lower().split(sep)
    return int(a), int(b)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m soc.data.synthetic",
        description="Generate SynthRVOS videos in the on-disk format of a real RVOS benchmark.",
    )
    parser.add_argument("--out", required=True, help="dataset root, e.g. $SOC_DATASETS/synthrvos/ytvos")
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--videos", type=int, required=True, help="number of videos")
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument(
        "--frames",
        default=None,
        help="MIN:MAX frames per video (default %d:%d, with --long %d:%d)" % (DEFAULT_FRAMES + LONG_FRAMES),
    )
    parser.add_argument(
        "--long",
        action="store_true",
        help="long videos: looping motions, a look-alike pair in every video whose first object leaves the "
        "frame and comes back",
    )
    parser.add_argument(
        "--size",
        default=None,
        help="HxW; default " + ", ".join(f"{k} {h}x{w}" for k, (h, w) in DEFAULT_SIZES.items()),
    )
    parser.add_argument(
        "--split",
        default=None,
        choices=("train", "valid", "valid_u", "test", "all"),
        help="default " + ", ".join(f"{k} {v}" for k, v in DEFAULT_SPLITS.items()),
    )
    parser.add_argument(
        "--force", action="store_true", help="replace previously generated files of this split"
    )
    args = parser.parse_args(argv)
    try:
        truth = generate(
            args.out,
            args.format,
            args.videos,
            args.seed,
            frames=_pair(args.frames, ":") if args.frames else None,
            size=_pair(args.size, "x") if args.size else None,
            split=args.split,
            force=args.force,
            long_videos=args.long,
        )
    except (FileExistsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    n_exp = sum(len(v["expressions"]) for v in truth["videos"].values())
    print(
        f"wrote {len(truth['videos'])} videos, {n_exp} expressions ({len(truth['temporal'])} temporal) "
        f"to {args.out} [{args.format}/{truth['split']}]"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
