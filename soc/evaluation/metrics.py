"""Pure metric functions (numpy) for the four RVOS benchmarks.

DAVIS-2017 region and boundary measures (J, F), their per-object statistics (mean, recall, decay), the
unsupervised DAVIS protocol (Hungarian id matching), the per-expression aggregation of Ref-YouTube-VOS, and
the A2D/JHMDB-Sentences quantities (precision@K, overall and mean IoU, COCO mask AP). Written from the
protocol descriptions in ``docs/formats_and_metrics.md`` §5; numbers agree with the official tools on its
§6 worked examples.

Masks are boolean (any non-zero value is foreground), ``(H, W)`` for one frame or ``(T, H, W)`` for a
sequence.
"""

from __future__ import annotations

import contextlib
import io
import math
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = [
    "db_eval_iou",
    "boundary_radius",
    "disk",
    "seg2bmap",
    "f_measure",
    "db_eval_boundary",
    "db_statistics",
    "split_object_masks",
    "evaluate_unsupervised",
    "jf_aggregate",
    "PRECISION_THRESHOLDS",
    "sample_iou",
    "a2d_summary",
    "coco_mask_ap",
]

ArrayOrFloat = Union[float, np.ndarray]


# ------------------------------------------------------------------------------------------ J: region
def db_eval_iou(
    annotation: np.ndarray, segmentation: np.ndarray, void_pixels: Optional[np.ndarray] = None
) -> ArrayOrFloat:
    """Region similarity J = |P ∧ G ∧ ¬V| / |(P ∨ G) ∧ ¬V| per frame.

    Args:
        annotation: GT mask, ``(H, W)`` or ``(T, H, W)``, non-zero = foreground.
        segmentation: predicted mask of the same shape.
        void_pixels: optional void mask (same shape, or ``(H, W)`` broadcast); void pixels are ignored.

    Returns:
        a float for one frame, else a ``(T,)`` array. A frame whose union is empty (both masks empty, or all
        void) scores 1.
    """
    gt = np.asarray(annotation).astype(bool)
    pred = np.asarray(segmentation).astype(bool)
    if gt.shape != pred.shape:
        raise ValueError(f"GT shape {gt.shape} != prediction shape {pred.shape}")
    inter = gt & pred
    union = gt | pred
    if void_pixels is not None:
        keep = ~np.asarray(void_pixels).astype(bool)
        inter, union = inter & keep, union & keep
    i = inter.sum(axis=(-2, -1)).astype(np.float64)
    u = union.sum(axis=(-2, -1)).astype(np.float64)
    empty = np.isclose(u, 0)
    j = np.divide(i, u, out=np.ones_like(i), where=~empty)
    return float(j) if j.ndim == 0 else j


# ---------------------------------------------------------------------------------------- F: boundary
def boundary_radius(height: int, width: int, bound_th: float = 0.008) -> int:
    """Tolerance radius in pixels: ``ceil(bound_th * diagonal)`` when ``bound_th < 1``, else ``bound_th``.

    480×854 gives 8, 720×1280 gives 12, a 5×5 frame gives 1.
    """
    if bound_th >= 1:
        return int(bound_th)
    return int(math.ceil(bound_th * math.hypot(height, width)))


def disk(radius: int) -> np.ndarray:
    """The DAVIS boundary kernel (``skimage.morphology.disk``): uint8 ``(2r+1, 2r+1)``, 1 at the offsets
    ``(y, x)`` from the centre with ``x² + y² ≤ r²`` (13 pixels at r = 2)."""
    offsets = np.arange(-radius, radius + 1)
    return (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius**2).astype(np.uint8)


def seg2bmap(mask: np.ndarray) -> np.ndarray:
    """Boundary map of a binary mask ``(H, W)``, as DAVIS's ``seg2bmap`` defines it.

    A pixel is a boundary pixel when it differs from its right, lower or lower-right neighbour. Along the last
    row only the right neighbour counts, along the last column only the lower one, and the bottom-right pixel
    is never a boundary; hence the image border is never a boundary and the boundary sits half a pixel towards
    the origin (background pixels just up-left of an object are boundary pixels).

    Returns:
        bool ``(H, W)``.
    """
    m = np.asarray(mask).astype(bool)
    if m.ndim != 2:
        raise ValueError(f"seg2bmap takes one (H, W) mask, got shape {m.shape}")
    right = np.zeros_like(m)
    down = np.zeros_like(m)
    diag = np.zeros_like(m)
    right[:, :-1] = m[:, 1:]
    down[:-1, :] = m[1:, :]
    diag[:-1, :-1] = m[1:, 1:]
    b = (m ^ right) | (m ^ down) | (m ^ diag)
    b[-1, :] = m[-1, :] ^ right[-1, :]
    b[:, -1] = m[:, -1] ^ down[:, -1]
    b[-1, -1] = False
    return b


def f_measure(
    foreground_mask: np.ndarray,
    gt_mask: np.ndarray,
    void_pixels: Optional[np.ndarray] = None,
    bound_th: float = 0.008,
    kernel: Optional[np.ndarray] = None,
) -> float:
    """Boundary F-measure of one frame.

    Args:
        foreground_mask: predicted mask ``(H, W)``.
        gt_mask: GT mask ``(H, W)``.
        void_pixels: optional void mask ``(H, W)``; both masks are cleared there before boundary extraction.
        bound_th: tolerance, a fraction of the diagonal (< 1) or pixels (>= 1).
        kernel: dilation structuring element; default :func:`disk` of :func:`boundary_radius` (DAVIS's).

    Returns:
        F in [0, 1]: 1 when neither mask has a boundary pixel, 0 when exactly one has none.
    """
    fg = np.asarray(foreground_mask).astype(bool)
    gt = np.asarray(gt_mask).astype(bool)
    if fg.shape != gt.shape or fg.ndim != 2:
        raise ValueError(f"f_measure takes two (H, W) masks, got {fg.shape} and {gt.shape}")
    if void_pixels is not None:
        keep = ~np.asarray(void_pixels).astype(bool)
        fg, gt = fg & keep, gt & keep
    if kernel is None:
        kernel = disk(boundary_radius(*gt.shape, bound_th))
    kernel = np.asarray(kernel, dtype=np.uint8)
    fg_b = seg2bmap(fg)
    gt_b = seg2bmap(gt)
    n_fg = int(fg_b.sum())
    n_gt = int(gt_b.sum())
    if n_fg == 0 and n_gt == 0:
        return 1.0
    if n_fg == 0 or n_gt == 0:
        return 0.0  # (P, R) = (1, 0) or (0, 1)
    fg_dil = cv2.dilate(fg_b.astype(np.uint8), kernel).astype(bool)
    gt_dil = cv2.dilate(gt_b.astype(np.uint8), kernel).astype(bool)
    precision = float((fg_b & gt_dil).sum()) / n_fg
    recall = float((gt_b & fg_dil).sum()) / n_gt
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def db_eval_boundary(
    annotation: np.ndarray,
    segmentation: np.ndarray,
    void_pixels: Optional[np.ndarray] = None,
    bound_th: float = 0.008,
) -> ArrayOrFloat:
    """Boundary F-measure per frame.

    Args:
        annotation: GT mask ``(H, W)`` or ``(T, H, W)``.
        segmentation: predicted mask, same shape.
        void_pixels: optional void mask, same shape (or ``(H, W)`` for every frame).
        bound_th: tolerance (see :func:`f_measure`).

    Returns:
        a float for one frame, else a ``(T,)`` array.
    """
    gt = np.asarray(annotation)
    pred = np.asarray(segmentation)
    if gt.shape != pred.shape:
        raise ValueError(f"GT shape {gt.shape} != prediction shape {pred.shape}")
    if gt.ndim == 2:
        return f_measure(pred, gt, void_pixels, bound_th)
    kernel = disk(boundary_radius(*gt.shape[-2:], bound_th))
    void = None if void_pixels is None else np.broadcast_to(np.asarray(void_pixels), gt.shape)
    return np.array(
        [
            f_measure(pred[t], gt[t], None if void is None else void[t], bound_th, kernel)
            for t in range(gt.shape[0])
        ],
        dtype=np.float64,
    )


# ---------------------------------------------------------------------------------------- statistics
def db_statistics(per_frame_values: Sequence[float]) -> Tuple[float, float, float]:
    """DAVIS per-object statistics of per-frame J (or F) values ``(N,)``.

    Returns:
        (M, R, D): M = nanmean; R = fraction of values strictly > 0.5; D (decay) = mean of the first quarter
        minus mean of the last, with the quarter bounds ``round(linspace(1, N, 5)) - 1`` cast to uint8 as the
        official tool does (so D is wrong or NaN for N > 255; M and R are not affected).
    """
    v = np.asarray(per_frame_values, dtype=np.float64)
    with np.errstate(invalid="ignore"), _no_empty_warning():
        m = float(np.nanmean(v))
        r = float(np.nanmean(v > 0.5))
        ids = (np.round(np.linspace(1, len(v), 5) + 1e-10) - 1).astype(np.int64).astype(np.uint8)
        bins = [v[ids[i] : ids[i + 1] + 1] for i in range(4)]
        d = float(np.nanmean(bins[0]) - np.nanmean(bins[3]))
    return m, r, d


@contextlib.contextmanager
def _no_empty_warning():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        yield


# --------------------------------------------------------------------------- unsupervised DAVIS protocol
def split_object_masks(index_maps: np.ndarray, num_objects: Optional[int] = None) -> np.ndarray:
    """Indexed maps ``(T, H, W)`` (value k = object k, 0 = background) to bool ``(K, T, H, W)``.

    ``num_objects`` defaults to the largest id in any frame.
    """
    maps = np.asarray(index_maps)
    k = int(maps.max()) if num_objects is None and maps.size else int(num_objects or 0)
    return maps[None] == np.arange(1, k + 1).reshape(-1, *([1] * maps.ndim))


def evaluate_unsupervised(
    gt_masks: np.ndarray,
    pred_masks: np.ndarray,
    void_pixels: Optional[np.ndarray] = None,
    max_proposals: int = 20,
    bound_th: float = 0.008,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """J and F of one sequence under the DAVIS unsupervised protocol.

    Every predicted object is scored against every GT object over all frames; predicted ids are assigned to GT
    objects by Hungarian matching maximising the mean over frames of (J + F)/2. With fewer predicted than GT
    objects the prediction is padded with empty objects.

    Args:
        gt_masks: bool ``(N_gt, T, H, W)``.
        pred_masks: bool ``(N_pred, T, H, W)``.
        void_pixels: bool ``(T, H, W)`` or None.
        max_proposals: more predicted objects than this is an error (the official tool aborts).

    Returns:
        (J ``(N_gt, T)``, F ``(N_gt, T)``, matched predicted index per row ``(N_gt,)``); rows follow the order
        of the matched predicted ids, as the official tool's per-object rows do.
    """
    gt = np.asarray(gt_masks).astype(bool)
    pred = np.asarray(pred_masks).astype(bool)
    if pred.shape[0] > max_proposals:
        raise ValueError(
            f"{pred.shape[0]} predicted objects; the DAVIS unsupervised protocol allows at most "
            f"{max_proposals} (a 0/255 PNG is read as object id 255)"
        )
    n_gt, t = gt.shape[:2]
    if pred.shape[0] < n_gt:
        pad = np.zeros((n_gt - pred.shape[0],) + gt.shape[1:], dtype=bool)
        pred = np.concatenate([pred, pad], axis=0) if pred.shape[0] else pad
    if pred.shape[1:] != gt.shape[1:]:
        raise ValueError(f"prediction {pred.shape[1:]} and GT {gt.shape[1:]} differ in (T, H, W)")
    n_pred = pred.shape[0]
    j = np.zeros((n_pred, n_gt, t))
    f = np.zeros((n_pred, n_gt, t))
    for g in range(n_gt):
        for p in range(n_pred):
            j[p, g] = db_eval_iou(gt[g], pred[p], void_pixels)
            f[p, g] = db_eval_boundary(gt[g], pred[p], void_pixels, bound_th)
    score = (j.mean(axis=2) + f.mean(axis=2)) / 2 if t else np.zeros((n_pred, n_gt))
    rows, cols = linear_sum_assignment(-score)
    return j[rows, cols], f[rows, cols], rows


# ------------------------------------------------------------------------- per-expression aggregation
def jf_aggregate(per_expression: Mapping[str, Tuple[float, float]]) -> Dict[str, float]:
    """Expression-weighted means: J = mean of the per-expression J, F likewise, J&F = (J + F)/2.

    Args:
        per_expression: ``{key: (J_exp, F_exp)}``, the means over each expression's frames.

    Returns:
        ``{"J&F", "J", "F"}`` as fractions in [0, 1] (NaN when empty).
    """
    if not per_expression:
        return {"J&F": float("nan"), "J": float("nan"), "F": float("nan")}
    arr = np.array(list(per_expression.values()), dtype=np.float64)
    j, f = float(arr[:, 0].mean()), float(arr[:, 1].mean())
    return {"J&F": (j + f) / 2, "J": j, "F": f}


# ---------------------------------------------------------------------------------------- A2D / JHMDB
PRECISION_THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


def sample_iou(pred: np.ndarray, gt: np.ndarray) -> Tuple[float, int, int]:
    """MTTR's per-sample IoU of two masks ``(H, W)``.

    Returns:
        (IoU = (I + 1e-6)/(U + 1e-6), I, U): both-empty gives 1, an exact ratio K is pushed just above K.
    """
    p = np.asarray(pred).astype(bool)
    g = np.asarray(gt).astype(bool)
    if p.shape != g.shape:
        raise ValueError(f"prediction {p.shape} and GT {g.shape} differ")
    i = int((p & g).sum())
    u = int((p | g).sum())
    return (i + 1e-6) / (u + 1e-6), i, u


def a2d_summary(
    ious: Sequence[float], intersections: Sequence[int], unions: Sequence[int]
) -> Dict[str, float]:
    """Dataset-level A2D/JHMDB numbers from per-sample (IoU, I, U).

    Returns:
        ``P@0.5 .. P@0.9`` (fraction of samples with IoU strictly greater than K), ``oIoU`` = ΣI/ΣU and
        ``mIoU`` = mean IoU, all fractions.
    """
    ious = np.asarray(ious, dtype=np.float64)
    out = {f"P@{k}": float((ious > k).mean()) if ious.size else float("nan") for k in PRECISION_THRESHOLDS}
    total_u = float(np.sum(unions))
    out["oIoU"] = float(np.sum(intersections)) / total_u if total_u > 0 else float("nan")
    out["mIoU"] = float(ious.mean()) if ious.size else float("nan")
    return out


_COCO_STAT_NAMES = ("mAP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def coco_mask_ap(gt: Union[dict, "object"], predictions: List[dict]) -> Dict[str, float]:
    """COCO mask AP with ``useCats = 0`` (pycocotools defaults otherwise), as MTTR evaluates A2D/JHMDB.

    Args:
        gt: a COCO-format dict (``images``, ``annotations`` with RLE ``segmentation`` and ``area``,
            ``categories``) or a ``pycocotools.coco.COCO``.
        predictions: ``[{"image_id", "category_id", "segmentation": RLE, "score"}]``, every query of every
            image.

    Returns:
        ``mAP`` (0.5:0.95), ``AP50``, ``AP75``, ``APs``, ``APm``, ``APl``, ``AR1``, ``AR10``, ``AR100``,
        ``ARs``,
        ``ARm``, ``ARl`` as fractions; -1 where no GT falls in an area range (the COCO convention).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if isinstance(gt, COCO):
        coco_gt = gt
    else:
        coco_gt = COCO()
        coco_gt.dataset = gt
        with contextlib.redirect_stdout(io.StringIO()):
            coco_gt.createIndex()
    if not predictions:
        return {name: 0.0 for name in _COCO_STAT_NAMES}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(predictions)
        ev = COCOeval(coco_gt, coco_dt, iouType="segm")
        ev.params.useCats = 0
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {name: float(v) for name, v in zip(_COCO_STAT_NAMES, ev.stats)}
