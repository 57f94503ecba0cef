#!/usr/bin/env python
"""Segment the objects that one or several expressions refer to in a video, and write the overlays.

    python tools/demo.py --config-file projects/SOC/configs/ref_ytvos/soc_swin_t_scratch.yaml \\
        --video-input video.mp4 --text "the dog on the left" --text "a man in red" --output out/ \\
        --opts MODEL.WEIGHTS model.pth

Writes ``out/expressions.txt`` (``<k>\t<expression>`` per line), ``out/masks/<k>/<frame>.png`` (one folder
per expression, frames numbered from 0 after ``--every``) and ``out/overlay.mp4``. The video is streamed:
frames are decoded as needed and each window's masks and overlay frames are written as soon as the window is
done (see ``soc.engine.predictor``), so memory stays flat however long the video. No GIF is written: a GIF
encoder keeps every frame in memory (convert ``overlay.mp4`` with ffmpeg if one is needed). If a frame cannot
be decoded, the error names it and the outputs of the frames before it stay on disk.
"""

import soc  # noqa: F401  (first: registers SOC; see soc/__init__.py on the import-time warnings)
import argparse
import os
import sys

import tqdm
from detectron2.utils.logger import setup_logger

from soc.config import setup_cfg
from soc.engine import SOCPredictor
from soc.engine.predictor import DEFAULT_WINDOW
from soc.utils.video_io import Mp4Writer, iter_video, write_masks
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
        "--window",
        type=_int_at_least(1),
        default=None,
        help="frames per window: overrides MODEL.SOC.TEST.CLIP_LENGTH (default: the config's, or "
        f"{DEFAULT_WINDOW} when it is 0)",
    )
    parser.add_argument("--fps", type=_positive_float, default=6.0, help="frame rate of the written overlay")
    parser.add_argument("--opts", default=[], nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    return parser


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    setup_logger(name="soc")
    window = [] if args.window is None else ["MODEL.SOC.TEST.CLIP_LENGTH", str(args.window)]
    cfg = setup_cfg(args.config_file, [*args.opts, *window])
    frames = iter_video(args.video_input, every=args.every)
    predictor = SOCPredictor(cfg)

    os.makedirs(args.output, exist_ok=True)
    with open(os.path.join(args.output, "expressions.txt"), "w") as f:
        f.writelines(f"{k}\t{text}\n" for k, text in enumerate(args.text))
    done = written = 0
    try:
        with Mp4Writer(os.path.join(args.output, "overlay.mp4"), fps=args.fps) as mp4, tqdm.tqdm(
            unit="frame", desc="SOC"
        ) as bar:
            for window in predictor.stream(frames, args.text):
                names = [f"{t:05d}" for t in range(window.start, window.start + len(window.frames))]
                on_disk = [
                    write_masks(r["pred_masks"], os.path.join(args.output, "masks", str(k)), names)
                    for k, r in enumerate(window.results)
                ]
                written += min(on_disk)
                for t, frame in enumerate(window.frames):
                    mp4.write(overlay(frame, [r["pred_masks"][t] for r in window.results]))
                done = window.start + len(window.frames)
                bar.update(len(window.frames))
    except (ValueError, OSError) as e:
        kept = (
            f"{args.output} holds the outputs of frames 0-{done - 1} (overlay.mp4, masks/<k>/00000.png to "
            f"{done - 1:05d}.png)"
            if done
            else f"no frame was written to {args.output}"
        )
        raise (OSError if isinstance(e, OSError) else ValueError)(f"{e}; {kept}") from e
    print(f"wrote {written} frames x {len(args.text)} expression(s) to {args.output}")


if __name__ == "__main__":
    try:
        main()
    except (ValueError, OSError) as e:  # bad input named by the message; no traceback to decode
        sys.exit(f"demo.py: error: {e}")
