"""Segment what expressions refer to in one or several videos; also installed as ``soc-demo``.

    soc-demo --config-file projects/SOC/configs/ref_ytvos/soc_swin_t_joint.yaml \\
        --input video.mp4 frames_folder/ "clips/*.mp4" --text "the dog on the left" --text "a man in red" \\
        --output out/ --opts MODEL.WEIGHTS model.pth
    soc-demo ... --input "videos/*" --expressions meta_expressions.json --output out/

The model is built once. Per video (named after the file's stem or the folder), in ``OUTPUT``:

- ``Annotations/<video>/<exp_id>/<frame>.png``: the Ref-YouTube-VOS submission layout (0 / 255 PNGs), which
  ``soc-eval-jf`` scores directly; ``exp_id`` is the expression's key in ``--expressions`` or its index among
  the ``--text`` options; ``frame`` is the frame file's name for a folder, ``%05d`` (after ``--every``) for a
  video file;
- ``overlays/<video>.mp4``: one colour per expression with a legend, at the source's exact frame rate
  divided by ``--every`` (29.97 fps stays 30000/1001; ``--fps`` overrides it; 6 fps for a folder of frames);
  with ``--gif`` also ``overlays/<video>.gif`` (a GIF encoder keeps every frame in memory: short videos);
- ``predictions.json``: ``{video: {exp_id: {"expression", "score", "frames": [{"frame", "score", "box",
  "rle"}]}}}``, per frame the presence score, the box (xyxy pixels, null when the mask is empty) and the
  mask as COCO RLE (pycocotools ``decode`` gives the PNG's mask).

Videos are streamed (frames decoded as needed, each window's outputs written as soon as it is done), so memory
stays flat however long they are. ``--score-threshold`` blanks the masks of frames whose presence score is
below it (objects that leave the frame). ``python tools/demo.py ...`` runs the same.
"""

import argparse
import glob
import json
import logging
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import tqdm
from detectron2.utils.logger import setup_logger

from soc.config import setup_cfg
from soc.engine.predictor import DEFAULT_WINDOW, SOCPredictor
from soc.evaluation.a2d_evaluator import encode_mask
from soc.layers import ms_deform_attn_backend
from soc.utils.paths import safe_join, unsafe_name_reason
from soc.utils.video_io import Mp4Writer, frame_files, iter_video, video_rate, write_gif, write_masks
from soc.utils.precision import PRECISIONS
from soc.utils.visualization import draw_legend, overlay

__all__ = ["get_parser", "main", "run"]

logger = logging.getLogger("soc.demo")
FOLDER_FPS = 6  # overlay rate for a folder of frames, which carries no rate of its own


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


def _probability(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be a probability in [0, 1], got {text}")
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
    """The arguments of ``soc-demo``."""
    parser = argparse.ArgumentParser(
        description="SOC demo: referring video object segmentation",
        epilog="Outputs: Annotations/<video>/<exp_id>/<frame>.png, overlays/<video>.mp4, predictions.json",
    )
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument(
        "--input",
        "--video-input",
        dest="input",
        nargs="+",
        required=True,
        help="video files, frame folders or glob patterns (quote them)",
    )
    texts = parser.add_mutually_exclusive_group(required=True)
    texts.add_argument(
        "--text", action="append", type=_expression, help="an expression, for every video; repeat for several"
    )
    texts.add_argument(
        "--expressions",
        metavar="JSON",
        help="per-video expressions in the meta_expressions.json format: "
        '{"videos": {video: {"expressions": {exp_id: {"exp": text}}}}}',
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
    parser.add_argument(
        "--fps", type=_positive_float, default=None, help="overlay frame rate (default: the source's / EVERY)"
    )
    parser.add_argument(
        "--score-threshold",
        type=_probability,
        default=0.0,
        help="blank the mask of frames whose presence score is below this (default 0: keep all)",
    )
    parser.add_argument("--gif", action="store_true", help="also write overlays/<video>.gif (held in memory)")
    parser.add_argument(
        "--random-weights", action="store_true", help="run without MODEL.WEIGHTS (smoke tests only)"
    )
    parser.add_argument("--opts", default=[], nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    return parser


def expand_inputs(patterns: Sequence[str]) -> Dict[str, str]:
    """``{video name: path}`` for files, folders and glob patterns; names must be distinct and safe."""
    videos: Dict[str, str] = {}
    for pattern in patterns:
        paths = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not paths:
            raise FileNotFoundError(f"--input {pattern!r} matches nothing")
        for path in paths:
            if not os.path.exists(path):
                raise FileNotFoundError(f"--input {path}: no such file or folder")
            p = Path(path)
            name = p.name if p.is_dir() else p.stem
            reason = unsafe_name_reason(name)
            if reason is not None:
                raise ValueError(f"--input {path}: the video name {name!r} {reason}")
            if name in videos:
                raise ValueError(f"--input: {videos[name]} and {path} are both named {name!r}")
            videos[name] = path
    return videos


def read_expressions(path: str, videos: Sequence[str]) -> Dict[str, Dict[str, str]]:
    """``{video: {exp_id: text}}`` from a meta_expressions.json for every video of ``videos``."""
    try:
        with open(path) as f:
            meta = json.load(f)
        entries = meta["videos"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(f"--expressions {path}: not a meta_expressions.json ({e!r})") from e
    out = {}
    for video in videos:
        if video not in entries:
            raise ValueError(f"--expressions {path}: no entry for video {video!r}")
        exps = entries[video].get("expressions") or {}
        if not exps:
            raise ValueError(f"--expressions {path}: video {video!r} has no expressions")
        out[video] = {}
        for exp_id, e in exps.items():
            reason = unsafe_name_reason(exp_id)
            if reason is not None:
                raise ValueError(f"--expressions {path}: expression id {exp_id!r} of {video!r} {reason}")
            try:
                out[video][exp_id] = _expression(str(e["exp"]))
            except (KeyError, TypeError, argparse.ArgumentTypeError) as err:
                raise ValueError(f"--expressions {path}: {video}/{exp_id}: {err}") from err
    return out


def _frame_names(path: str, every: int) -> Optional[List[str]]:
    """The frame files' stems of a folder (after ``every``), or None for a video file (numbered)."""
    return [f.stem for f in frame_files(path)[::every]] if os.path.isdir(path) else None


def segment_video(
    predictor: SOCPredictor,
    name: str,
    path: str,
    expressions: Dict[str, str],
    args: argparse.Namespace,
) -> Dict[str, dict]:
    """Stream one video through the predictor and write its outputs; returns its ``predictions.json``
    entry."""
    exp_ids, texts = list(expressions), list(expressions.values())
    names = _frame_names(path, args.every)
    source_rate = video_rate(path)
    fps = args.fps or (source_rate / args.every if source_rate else FOLDER_FPS)
    record = {e: {"expression": t, "frames": []} for e, t in expressions.items()}
    overlays_dir = safe_join(args.output, "overlays")
    os.makedirs(overlays_dir, exist_ok=True)
    gif_frames: List[np.ndarray] = []
    done = 0
    try:
        with Mp4Writer(safe_join(overlays_dir, f"{name}.mp4"), fps=fps) as mp4, tqdm.tqdm(
            unit="frame", desc=name
        ) as bar:
            for window in predictor.stream(iter_video(path, every=args.every), texts):
                n = len(window.frames)
                frame_names = (
                    names[window.start : window.start + n]
                    if names is not None
                    else [f"{t:05d}" for t in range(window.start, window.start + n)]
                )
                masks = []
                for exp_id, r in zip(exp_ids, window.results):
                    m = r["pred_masks"] & (r["scores"] >= args.score_threshold)[:, None, None]
                    write_masks(m, safe_join(args.output, "Annotations", name, exp_id), frame_names)
                    for t, frame_name in enumerate(frame_names):
                        record[exp_id]["frames"].append(
                            {
                                "frame": frame_name,
                                "score": round(float(r["scores"][t]), 6),
                                "box": (
                                    [round(float(v), 2) for v in r["pred_boxes"][t]] if m[t].any() else None
                                ),
                                "rle": encode_mask(m[t]),
                            }
                        )
                    masks.append(m)
                for t, frame in enumerate(window.frames):
                    shown = draw_legend(overlay(frame, [m[t] for m in masks]), texts)
                    mp4.write(shown)
                    if args.gif:
                        gif_frames.append(shown)
                done = window.start + n
                bar.update(n)
    except (ValueError, OSError) as e:
        kept = (
            f"{args.output} holds the outputs of {name}'s frames 0-{done - 1} (overlays/{name}.mp4, "
            f"Annotations/{name}/<exp_id>/)"
            if done
            else f"no frame of {name} was written"
        )
        raise (OSError if isinstance(e, OSError) else ValueError)(f"{e}; {kept}") from e
    if args.gif:
        write_gif(gif_frames, safe_join(overlays_dir, f"{name}.gif"), fps=fps)
    for entry in record.values():
        scores = [f["score"] for f in entry["frames"]]
        entry["score"] = round(float(np.mean(scores)), 6)
    logger.info("%s: %d frames x %d expression(s), overlay at %s fps", name, done, len(texts), fps)
    return record


def _precision_name(precision: str) -> str:
    """``MODEL.SOC.TEST.PRECISION`` as the startup log line says it: "float32", "bfloat16 autocast", ..."""
    dtype = PRECISIONS[precision]
    return "float32" if dtype is None else f"{str(dtype).removeprefix('torch.')} autocast"


def run(args: argparse.Namespace) -> Dict[str, Dict[str, dict]]:
    """Build the model once, segment every video, write ``predictions.json``; returns its content."""
    setup_logger(name="fvcore")
    setup_logger(name="detectron2")
    setup_logger(name="soc")
    window = [] if args.window is None else ["MODEL.SOC.TEST.CLIP_LENGTH", str(args.window)]
    cfg = setup_cfg(args.config_file, [*args.opts, *window])
    videos = expand_inputs(args.input)
    if args.expressions:
        expressions = read_expressions(args.expressions, list(videos))
    else:
        expressions = {v: {str(k): t for k, t in enumerate(args.text)} for v in videos}
    predictor = SOCPredictor(cfg, allow_random_weights=args.random_weights)
    logger.info(
        "weights %s; text encoder %s; %s on %s; deformable attention: %s; windows of %d, overlap %d",
        cfg.MODEL.WEIGHTS or "(random: --random-weights)",
        cfg.MODEL.SOC.TEXT_ENCODER.NAME,
        _precision_name(predictor.model.precision),
        cfg.MODEL.DEVICE,
        ms_deform_attn_backend(predictor.model.device),
        predictor.window,
        predictor.overlap,
    )
    os.makedirs(args.output, exist_ok=True)
    predictions = {}
    for name, path in videos.items():
        predictions[name] = segment_video(predictor, name, path, expressions[name], args)
        with open(safe_join(args.output, "predictions.json"), "w") as f:
            json.dump(predictions, f)
    total = sum(len(e["frames"]) for v in predictions.values() for e in v.values())
    print(f"wrote {len(predictions)} video(s), {total} masks (frames x expressions) to {args.output}")
    return predictions


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``soc-demo``: 0 on success; bad input exits with ``soc-demo: error: <message>`` (status 1)."""
    args = get_parser().parse_args(argv)
    try:
        run(args)
    except (ValueError, OSError) as e:  # the message names the culprit; no traceback to decode
        sys.exit(f"soc-demo: error: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
