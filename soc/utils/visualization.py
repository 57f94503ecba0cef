"""Coloured mask overlays for referring segmentation results."""
from typing import Sequence

import cv2
import numpy as np

# Distinct, readable colours (RGB), one per expression.
PALETTE = np.array(
    [[230, 25, 75], [60, 180, 75], [0, 130, 200], [255, 225, 25], [145, 30, 180], [245, 130, 48], [70, 240, 240]],
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
