#!/usr/bin/env python
"""Segment the objects that one or several expressions refer to in a video, and write the overlays.

    python tools/demo.py --config-file projects/SOC/configs/ref_ytvos/soc_swin_t_scratch.yaml \\
        --video-input video.mp4 --text "the dog on the left" --text "a man in red" --output out/ \\
        --opts MODEL.WEIGHTS model.pth

Writes ``out/overlay.mp4``, ``out/overlay.gif`` and ``out/masks/<k>/<frame>.png`` (one folder per expression).
"""
import argparse
import os
import sys

import tqdm
from detectron2.config import get_cfg
from detectron2.utils.logger import setup_logger

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import soc  # noqa: E402,F401  (registers SOC)
from soc import add_soc_config  # noqa: E402
from soc.engine.predictor import SOCPredictor  # noqa: E402
from soc.utils.video_io import read_video, write_gif, write_masks, write_mp4  # noqa: E402
from soc.utils.visualization import overlay  # noqa: E402


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="SOC demo: referring video object segmentation")
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument("--video-input", required=True, help="a video file or a folder of frames")
    parser.add_argument("--text", action="append", required=True, help="an expression; repeat for several objects")
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument("--every", type=int, default=1, help="keep one frame out of EVERY")
    parser.add_argument("--window", type=int, default=36, help="frames per forward pass (0 = whole video)")
    parser.add_argument("--fps", type=float, default=6.0, help="frame rate of the written overlay")
    parser.add_argument("--opts", default=[], nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    return parser


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    setup_logger(name="soc")
    cfg = get_cfg()
    add_soc_config(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.freeze()

    frames = read_video(args.video_input, every=args.every)
    predictor = SOCPredictor(cfg, window=args.window)
    all_masks = []
    with tqdm.tqdm(total=len(frames) * len(args.text), unit="frame", desc="SOC") as bar:
        for text in args.text:
            all_masks.append(predictor(frames, text, progress=bar.update))

    os.makedirs(args.output, exist_ok=True)
    names = [f"{i:05d}" for i in range(len(frames))]
    for k, masks in enumerate(all_masks):
        write_masks(masks, os.path.join(args.output, "masks", str(k)), names)
    overlays = [overlay(frame, [m[t] for m in all_masks]) for t, frame in enumerate(frames)]
    write_mp4(overlays, os.path.join(args.output, "overlay.mp4"), fps=args.fps)
    write_gif(overlays, os.path.join(args.output, "overlay.gif"), fps=args.fps)
    with open(os.path.join(args.output, "expressions.txt"), "w") as f:
        f.writelines(f"{k}\t{text}\n" for k, text in enumerate(args.text))
    print(f"wrote {len(frames)} frames x {len(args.text)} expression(s) to {args.output}")


if __name__ == "__main__":
    main()
