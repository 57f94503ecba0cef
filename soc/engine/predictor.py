"""Run a trained SOC model on a raw video for one or several expressions, window by window.

The video is read lazily (a file through PyAV's decoder, a folder one image at a time, or any iterable of
frames) and cut into the model's windows (:mod:`soc.modeling.windows`: ``MODEL.SOC.TEST.CLIP_LENGTH``
frames, ``DEFAULT_WINDOW`` when that is 0, overlapping by ``MODEL.SOC.TEST.WINDOW_OVERLAP``, each window's
query chosen as ``MODEL.SOC.TEST.ASSOCIATION`` says). The backbone runs once per window for all
expressions. :meth:`SOCPredictor.stream` hands out each window's results as soon as it is done and holds at
most one window of frames, so memory stays flat in the length of the video; :meth:`SOCPredictor.__call__`
collects them into whole-video arrays.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Union

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data import transforms as T
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances

from soc.checkpoint import SOCCheckpointer
from soc.modeling.windows import Track, check_window, iter_windows
from soc.utils.video_io import iter_video

__all__ = ["DEFAULT_WINDOW", "SOCPredictor", "WindowResult", "to_instances"]

# frames per window when MODEL.SOC.TEST.CLIP_LENGTH is 0 ("whole video", which a stream cannot hold): the
# authors' Ref-DAVIS window
DEFAULT_WINDOW = 36

Video = Union[str, Path, np.ndarray, Iterable[np.ndarray]]


@dataclass
class WindowResult:
    """The frames one window owns, and per expression their results.

    Attributes:
        start: index of the first frame (frames are numbered from 0 in the order read).
        frames: the n owned RGB uint8 frames ``(H, W, 3)``.
        results: one dict per expression: ``pred_masks`` bool (n, H, W), ``mask_probs`` float16 (n, H, W),
            ``pred_boxes`` float32 (n, 4) xyxy in pixels, ``scores`` float32 (n,) per-frame presence
            score (sigmoid, max over classes) of the chosen query.
    """

    start: int
    frames: List[np.ndarray]
    results: List[Dict[str, np.ndarray]]


class SOCPredictor:
    """Loads ``cfg.MODEL.WEIGHTS`` and segments the objects that expressions refer to in a video.

    ``SOCPredictor(cfg)(video, expressions)`` → one dict per expression with ``pred_masks`` (T, H, W) bool,
    ``mask_probs`` (T, H, W) float16, ``pred_boxes`` (T, 4) xyxy and ``scores`` (T,);
    ``SOCPredictor(cfg).stream(video, expressions)`` yields the same per window (:class:`WindowResult`).
    """

    def __init__(self, cfg: CfgNode, allow_random_weights: bool = False):
        """
        Args:
            cfg: a config from ``soc.config.setup_cfg``.
            allow_random_weights: accept ``MODEL.WEIGHTS ""`` and run the randomly initialised model (tests,
                benchmarks); otherwise an empty ``MODEL.WEIGHTS`` is an error.
        """
        if not cfg.MODEL.WEIGHTS and not allow_random_weights:
            raise ValueError(
                "MODEL.WEIGHTS is empty: the predictor needs trained weights (--opts MODEL.WEIGHTS model.pth)"
            )
        self.model = build_model(cfg).eval()
        if cfg.MODEL.WEIGHTS:
            SOCCheckpointer(self.model, min_matched=cfg.MODEL.WEIGHTS_MIN_MATCHED).load(cfg.MODEL.WEIGHTS)
        self.resize = T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST)
        self.window = cfg.MODEL.SOC.TEST.CLIP_LENGTH or DEFAULT_WINDOW
        self.overlap = cfg.MODEL.SOC.TEST.WINDOW_OVERLAP
        check_window(self.window, self.overlap)

    @torch.no_grad()
    def stream(self, video: Video, expressions: Union[str, Sequence[str]]) -> Iterator[WindowResult]:
        """
        Segment ``video`` window by window.

        Args:
            video: a video file or a folder of frames (path), a (T, H, W, 3) uint8 array, or an iterable of
                RGB uint8 frames ``(H, W, 3)`` of one size.
            expressions: one string or a list of E strings.

        Yields:
            per window, the results of the frames it owns (:class:`WindowResult`), in order; together they
            cover every frame once. A frame that cannot be read stops the stream with its error after the
            windows before it.
        """
        expressions = _expression_list(expressions)
        frames = _checked_frames(_frame_source(video))
        tracks: Optional[List[Track]] = None
        tfm, size, done = None, None, 0
        for start, clip in iter_windows(frames, self.window, self.overlap):
            if tfm is None:
                tfm, size = self.resize.get_transform(clip[0]), clip[0].shape[:2]
            resized = np.stack([tfm.apply_image(f) for f in clip])
            inputs = torch.from_numpy(resized).permute(0, 3, 1, 2).contiguous()  # (L, 3, h, w)
            outputs, tracks = self.model.inference_window(inputs, expressions, size, tracks, self.overlap)
            yield WindowResult(done, clip[done - start :], [_to_numpy(o) for o in outputs])
            done = start + len(clip)
        if tfm is None:
            raise ValueError("the video has no frames")

    def __call__(self, video: Video, expressions: Union[str, Sequence[str]]) -> List[Dict[str, np.ndarray]]:
        """
        Segment a whole video (see :meth:`stream` for the arguments).

        Returns:
            one dict per expression (a list also for a single string): ``pred_masks`` bool (T, H, W),
            ``mask_probs`` float16 (T, H, W), ``pred_boxes`` float32 (T, 4) xyxy in pixels, ``scores``
            float32 (T,) per-frame presence score of the chosen query, ``score`` float, their mean.
        """
        parts = [w.results for w in self.stream(video, expressions)]
        whole = [
            {k: np.concatenate([p[e][k] for p in parts]) for k in parts[0][e]} for e in range(len(parts[0]))
        ]
        for prediction in whole:
            prediction["score"] = float(prediction["scores"].mean())
        return whole


def to_instances(
    predictions: Union[Dict[str, np.ndarray], Sequence[Dict[str, np.ndarray]]], t: int
) -> Instances:
    """detectron2 :class:`Instances` of frame ``t``: one instance per expression, in order.

    Args:
        predictions: the list :meth:`SOCPredictor.__call__` returns (or one of its dicts).
        t: frame index.

    Returns:
        ``Instances`` of the frame's size with ``pred_masks`` (E, H, W) bool, ``pred_boxes`` (E, 4) xyxy,
        ``scores`` (E,) and ``pred_classes`` (E,) = the expression's index, so that
        ``Visualizer(frame, metadata).draw_instance_predictions(...)`` labels each mask with its expression
        when ``metadata.thing_classes`` holds the expressions.
    """
    preds = [predictions] if isinstance(predictions, dict) else list(predictions)
    if not preds:
        raise ValueError("no predictions given")
    num_frames, height, width = preds[0]["pred_masks"].shape
    if not 0 <= t < num_frames:
        raise IndexError(f"frame {t} is outside the {num_frames} predicted frames")
    instances = Instances((height, width))
    instances.pred_masks = torch.from_numpy(np.stack([p["pred_masks"][t] for p in preds]))
    instances.pred_boxes = Boxes(
        torch.from_numpy(np.stack([p["pred_boxes"][t] for p in preds]).astype(np.float32))
    )
    instances.scores = torch.tensor([float(p["scores"][t]) for p in preds])
    instances.pred_classes = torch.arange(len(preds))
    return instances


def _expression_list(expressions: Union[str, Sequence[str]]) -> List[str]:
    expressions = [expressions] if isinstance(expressions, str) else list(expressions)
    if not expressions:
        raise ValueError("no expressions given")
    for i, text in enumerate(expressions):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"expression {i} ({text!r}) is empty")
    return expressions


def _frame_source(video: Video) -> Iterable[np.ndarray]:
    """The frames of a path (decoded lazily), of a (T, H, W, 3) array, or the iterable itself."""
    if isinstance(video, (str, Path)):
        return iter_video(str(video))
    if isinstance(video, np.ndarray) and video.ndim != 4:
        raise ValueError(f"a video array must be (T, H, W, 3), got shape {video.shape}")
    return video


def _checked_frames(frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
    """The frames, each checked to be RGB uint8 ``(H, W, 3)`` of the first frame's size."""
    first = None
    for t, frame in enumerate(frames):
        if (
            not isinstance(frame, np.ndarray)
            or frame.dtype != np.uint8
            or frame.ndim != 3
            or frame.shape[2] != 3
        ):
            what = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
            raise ValueError(f"frame {t}: expected RGB uint8 (H, W, 3), got {what}")
        if first is None:
            first = frame.shape
        elif frame.shape != first:
            raise ValueError(f"frame {t} is {frame.shape} but frame 0 is {first}: one size per video")
        yield frame


def _to_numpy(output: Dict[str, torch.Tensor]) -> Dict[str, np.ndarray]:
    """The model's output dict of one expression → the predictor's (see :class:`WindowResult`)."""
    scores = output["query_scores"].gather(1, output["query_index"][:, None])[:, 0]
    return {
        "pred_masks": output["pred_masks"].cpu().numpy(),
        "mask_probs": output["mask_probs"].to(torch.float16).cpu().numpy(),
        "pred_boxes": output["pred_boxes"].float().cpu().numpy(),
        "scores": scores.float().cpu().numpy(),
    }
