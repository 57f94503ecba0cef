#!/usr/bin/env python
"""Segment the objects that one or several expressions refer to in a video, and write the overlays.

    python tools/demo.py --config-file projects/SOC/configs/ref_ytvos/soc_swin_t_scratch.yaml \\
        --video-input video.mp4 --text "the dog on the left" --text "a man in red" --output out/ \\
        --opts MODEL.WEIGHTS model.pth

Writes ``out/overlay.mp4``, ``out/overlay.gif`` and ``out/masks/<k>/<frame>.png`` (one folder per expression).
"""

import soc  # noqa: F401  (first: registers SOC; see soc/__init__.py on the import-time warnings)
import argparse
import os
import sys

import tqdm
from detectron2.utils.logger import setup_logger

from soc.config import setup_cfg
from soc.engine import SOCPredictor
from soc.utils.video_io import read_video, write_gif, write_masks, write_mp4
from soc.utils.visualization import overlay


def _int_at_least(low: int):
    def parse(text: str) -> int:
        value = int(text)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {value}")
        return value

    return parse


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _expression(text: str) -> str:
    """An expression on one line: control characters (newline, NUL, ...) are refused, spaces trimmed."""
    bad = sorted({repr(c) for c in text if not c.isprintable()})
    if bad:
        raise argparse.ArgumentTypeError(f"{text!r} contains control characters ({', '.join(bad)})")
    if not text.strip():
        raise argparse.ArgumentTypeError("the expression is empty")
    return text.strip()


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="SOC demo: referring video object segmentation")
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--video-input", required=True, help="a video file or a folder of frames")
    parser.add_argument(
        "--text",
        action="append",
        required=True,
        type=_expression,
        help="an expression; repeat for several objects",
    )
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument("--every", type=_int_at_least(1), default=1, help="keep one frame out of EVERY")
    parser.add_argument(
        "--window", type=_int_at_least(0), default=36, help="frames per forward pass (0 = whole video)"
    )
    parser.add_argument("--fps", type=_positive_float, default=6.0, help="frame rate of the written overlay")
    parser.add_argument("--opts", default=[], nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    return parser


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    setup_logger(name="soc")
    cfg = setup_cfg(args.config_file, args.opts)

    frames = read_video(args.video_input, every=args.every)
    predictor = SOCPredictor(cfg, window=args.window)
    all_masks = []
    with tqdm.tqdm(total=len(frames) * len(args.text), unit="frame", desc="SOC") as bar:
        for text in args.text:
            all_masks.append(predictor(frames, text, progress=bar.update))

    os.makedirs(args.output, exist_ok=True)
    names = [f"{i:05d}" for i in range(len(frames))]
    written = [
        write_masks(m, os.path.join(args.output, "masks", str(k)), names) for k, m in enumerate(all_masks)
    ]
    overlays = [overlay(frame, [m[t] for m in all_masks]) for t, frame in enumerate(frames)]
    write_mp4(overlays, os.path.join(args.output, "overlay.mp4"), fps=args.fps)
    write_gif(overlays, os.path.join(args.output, "overlay.gif"), fps=args.fps)
    with open(os.path.join(args.output, "expressions.txt"), "w") as f:
        f.writelines(f"{k}\t{text}\n" for k, text in enumerate(args.text))
    print(f"wrote {min(written)} frames x {len(args.text)} expression(s) to {args.output}")


if __name__ == "__main__":
    try:
        main()
    except (ValueError, OSError) as e:  # bad input named by the message; no traceback to decode
        sys.exit(f"demo.py: error: {e}")
