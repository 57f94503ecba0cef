"""Coloured mask overlays for referring segmentation results."""

import os
from collections import defaultdict
from typing import List, Sequence

import cv2
import numpy as np
import torch
from detectron2.config import CfgNode
from PIL import Image

from soc.data import build_soc_mapper
from soc.data.io import read_image

from .paths import safe_join
from .video_io import write_gif, write_mp4

# Distinct, readable colours (RGB), one per expression.
PALETTE = np.array(
    [
        [230, 25, 75],
        [60, 180, 75],
        [0, 130, 200],
        [255, 225, 25],
        [145, 30, 180],
        [245, 130, 48],
        [70, 240, 240],
    ],
    dtype=np.float32,
)


def overlay(frame: np.ndarray, masks: Sequence[np.ndarray], alpha: float = 0.5) -> np.ndarray:
    """Blend one colour per mask into ``frame`` (RGB uint8 ``(H, W, 3)``) and outline each mask.

    Args:
        masks: bool arrays ``(H, W)``, one per expression, in the order of their colours.
    """
    out = frame.astype(np.float32)
    for k, mask in enumerate(masks):
        colour = PALETTE[k % len(PALETTE)]
        out[mask] = (1 - alpha) * out[mask] + alpha * colour
    out = out.clip(0, 255).astype(np.uint8)
    for k, mask in enumerate(masks):
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, tuple(int(c) for c in PALETTE[k % len(PALETTE)]), 1)
    return out


def draw_legend(frame: np.ndarray, labels: Sequence[str], scale: float = 0.4) -> np.ndarray:
    """A copy of ``frame`` (RGB uint8) with one line per label at the top left: a swatch of the label's
    colour (the colour :func:`overlay` gives mask k) and the text, on a dark band for contrast."""
    out = frame.copy()
    line = max(10, int(round(28 * scale)))
    for k, label in enumerate(labels):
        y = 4 + k * line
        if y + line > out.shape[0]:
            break
        colour = tuple(int(c) for c in PALETTE[k % len(PALETTE)])
        (width, _), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        band = out[y : y + line, : min(out.shape[1], width + line + 8)]
        band[:] = (band * 0.35).astype(np.uint8)
        cv2.rectangle(out, (4, y + 2), (line - 2, y + line - 3), colour, -1)
        cv2.putText(out, label, (line + 2, y + line - 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1)
    return out


@torch.no_grad()
def render_overlays(cfg: CfgNode, model, records: List[dict], out_dir: str, max_videos: int = 3) -> List[str]:
    """Overlay every expression of up to ``max_videos`` videos (temporal ones first) as gif, mp4 and a PNG
    still.

    Returns the written gif paths.
    """
    by_video = defaultdict(list)
    for r in records:
        by_video[r["video_id"]].append(r)
    videos = sorted(by_video, key=lambda v: (not any(r.get("temporal") for r in by_video[v]), v))[:max_videos]
    mapper = build_soc_mapper(cfg, cfg.DATASETS.TEST[0], is_train=False)
    model.eval()
    written = []
    for video in videos:
        exps = sorted(by_video[video], key=lambda r: int(r["exp_id"]))[:7]
        masks = [model([mapper(dict(r))])[0]["pred_masks"].cpu().numpy() for r in exps]
        frames = [read_image(f) for f in exps[0]["file_names"]]
        frames_out = [overlay(frame, [m[t] for m in masks]) for t, frame in enumerate(frames)]
        folder = safe_join(out_dir, video)
        os.makedirs(folder, exist_ok=True)
        write_gif(frames_out, os.path.join(folder, "overlay.gif"))
        write_mp4(frames_out, os.path.join(folder, "overlay.mp4"))
        # a still of the middle frame, with the frames on the left and the legend in a text file
        middle = len(frames) // 2
        strip = np.concatenate([frames[middle], frames_out[middle]], axis=1)
        Image.fromarray(strip).save(os.path.join(folder, "frame.png"))
        with open(os.path.join(folder, "expressions.txt"), "w") as f:
            f.writelines(
                f"{k}\t{'temporal' if r.get('temporal') else 'plain'}\t{r['expression']}\n"
                for k, r in enumerate(exps)
            )
        written.append(os.path.join(folder, "overlay.gif"))
    return written
