"""Windowed inference over long videos: where the windows lie, and which query continues an object.

Windows of L frames that overlap by V frames start at 0, L − V, 2(L − V), …; the last one ends at the last
frame T (it is shorter than L when the video does not fill it, and it always holds at least one frame that no
earlier window holds). V = 0 gives the authors' consecutive chunks (``TEST.CLIP_LENGTH`` on Ref-DAVIS).
A frame held by two windows belongs to the earlier one: its outputs can be written as soon as that window
is done; the later window only uses the shared frames to recognise its object.

Each window picks one query per expression. ``"independent"`` (the authors' inference) takes the query with
the best mean class probability over the window, so the segmented object may change from one window to the
next. ``"iou_embedding"`` keeps the first window's choice and, in every later window, takes the query that
continues the previous window's object (:func:`associate`), optionally weighing the expression score against
the continuity (``score_weight``: 0 follows the object whatever the scores say, a large weight approaches the
independent choice).
"""

from dataclasses import dataclass
from typing import Iterable, Iterator, List, Tuple, TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["ASSOCIATIONS", "Track", "associate", "check_window", "iter_windows", "window_bounds"]

ASSOCIATIONS = ("independent", "iou_embedding")
# affinities closer than this to the best one count as a tie (broken by the expression score)
TIE_TOLERANCE = 1e-6

Item = TypeVar("Item")


def check_window(length: int, overlap: int) -> None:
    """``ValueError`` unless ``length >= 1`` frame and ``0 <= overlap < length``."""
    if length < 1:
        raise ValueError(f"window length must be >= 1 frame, got {length}")
    if not 0 <= overlap < length:
        raise ValueError(f"window overlap must be >= 0 and < the window length {length}, got {overlap}")


def iter_windows(frames: Iterable[Item], length: int, overlap: int) -> Iterator[Tuple[int, List[Item]]]:
    """
    Cut a stream of frames into windows without holding more than one window.

    Args:
        frames: any iterable (read lazily, one item at a time).
        length: L frames per window. overlap: V frames shared by consecutive windows.

    Yields:
        ``(start, items)``: the index of the window's first frame and its ≤ L items. An empty stream yields
        nothing.
    """
    check_window(length, overlap)
    start, window, fresh = 0, [], 0  # fresh: items no earlier window holds
    for item in frames:
        window.append(item)
        fresh += 1
        if len(window) == length:
            yield start, window
            start += length - overlap
            window, fresh = window[length - overlap :], 0
    if fresh:
        yield start, window


def window_bounds(num_frames: int, length: int, overlap: int) -> List[Tuple[int, int]]:
    """``[(start, end), ...]`` frame ranges (end excluded) of the windows of a ``num_frames``-frame video."""
    if num_frames < 0:
        raise ValueError(f"num_frames must be >= 0, got {num_frames}")
    return [(s, s + len(items)) for s, items in iter_windows(range(num_frames), length, overlap)]


@dataclass
class Track:
    """One expression's object at the end of a window, as the next window sees it.

    Attributes:
        masks: (V, h, w) bool, the chosen query's masks on the window's last V frames (model resolution).
        embedding: (C,) the chosen query's video-query embedding (``pred_video_queries``).
    """

    masks: Tensor
    embedding: Tensor


def associate(
    track: Track, masks: Tensor, embeddings: Tensor, scores: Tensor, score_weight: float = 0.0
) -> int:
    """
    The query of a new window that continues ``track``'s object.

    Affinity of query n = IoU of its masks with the track's over the V shared frames, taken over all their
    pixels at once (0 when both are empty), + cosine similarity of its video-query embedding with the
    track's, + ``score_weight`` × its expression score. The best affinity wins; affinities within
    ``TIE_TOLERANCE`` of it tie, and the tie goes to the higher expression score.

    Args:
        track: the previous window's object.
        masks: (V, N, h, w) bool, the new window's query masks on its first V frames (the shared ones).
        embeddings: (N, C) the new window's video-query embeddings.
        scores: (N,) expression scores (mean class probability over the window).
        score_weight: >= 0, the weight of the score in the affinity (the continuity terms lie in [-1, 2]).

    Returns:
        the chosen query index in [0, N).
    """
    if score_weight < 0:
        raise ValueError(f"score_weight must be >= 0, got {score_weight}")
    V = track.masks.shape[0]
    if masks.shape[0] != V:
        raise ValueError(
            f"the track holds {V} shared frames but the new window's masks cover {masks.shape[0]}"
        )
    prev = track.masks[:, None]  # (V, 1, h, w)
    inter = (masks & prev).sum((0, 2, 3)).double()  # (N,)
    union = (masks | prev).sum((0, 2, 3)).double()
    iou = torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(union))
    cosine = F.cosine_similarity(embeddings.double(), track.embedding.double()[None], dim=-1)  # (N,)
    affinity = iou + cosine + score_weight * scores.double()
    tied = affinity >= affinity.max() - TIE_TOLERANCE
    return int(torch.where(tied, scores.double(), torch.full_like(affinity, -float("inf"))).argmax())
