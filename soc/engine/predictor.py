"""Run a trained SOC model on a raw video for one or several expressions."""

from typing import Callable, List, Optional, Sequence

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data import transforms as T
from detectron2.modeling import build_model

from soc.checkpoint import SOCCheckpointer


class SOCPredictor:
    """Loads ``cfg.MODEL.WEIGHTS`` and segments the object an expression refers to in every frame.

    The video is processed in consecutive windows of ``window`` frames (0 = all at once); as in the authors'
    inference, each window picks its own best query.
    """

    def __init__(self, cfg: CfgNode, window: int = 36):
        self.model = build_model(cfg).eval()
        SOCCheckpointer(self.model).load(cfg.MODEL.WEIGHTS)
        self.resize = T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST)
        self.window = window

    @torch.no_grad()
    def __call__(
        self,
        frames: Sequence[np.ndarray],
        text: str,
        progress: Optional[Callable[[int], None]] = None,
    ) -> np.ndarray:
        """Masks ``(T, H, W)`` bool at the frames' size for RGB uint8 frames ``(H, W, 3)``.

        ``progress`` is called with the number of frames done after each window.
        """
        if not text.strip():
            raise ValueError("the expression is empty")
        if len(frames) == 0:
            raise ValueError("no frames given")
        for t, frame in enumerate(frames):
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                raise ValueError(f"frame {t}: expected RGB uint8 (H, W, 3), got {frame.dtype} {frame.shape}")
            if frame.shape != frames[0].shape:
                raise ValueError(
                    f"frame {t} is {frame.shape} but frame 0 is {frames[0].shape}: one size per video"
                )
        if self.window < 0:
            raise ValueError(f"window must be >= 0 (0 = the whole video), got {self.window}")
        height, width = frames[0].shape[:2]
        tfm = self.resize.get_transform(frames[0])
        step = self.window if self.window > 0 else len(frames)
        masks: List[np.ndarray] = []
        for start in range(0, len(frames), step):
            clip = np.stack([tfm.apply_image(f) for f in frames[start : start + step]])
            inputs = {
                "frames": torch.from_numpy(clip).permute(0, 3, 1, 2).contiguous(),
                "expression": text,
                "height": height,
                "width": width,
            }
            masks.append(self.model([inputs])[0]["pred_masks"].cpu().numpy())
            if progress is not None:
                progress(len(clip))
        return np.concatenate(masks)
