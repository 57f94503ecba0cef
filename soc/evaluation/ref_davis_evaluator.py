"""Ref-DAVIS17 evaluation with the protocol that the published numbers use (``docs/formats_and_metrics.md``
§2.3–§2.4).

For each annotator run a (expressions ``4k + a``; object k gets label k + 1):

1. merge the objects of a sequence frame by frame: probabilities below 0.5 are set to 0, a constant
   background plane 0.1 is prepended, and the argmax gives an indexed map (ties go to the lower index, as
   ``argmax`` does);
2. score the indexed maps with the DAVIS *unsupervised* protocol: GT objects = ids of the first GT frame,
   255 = void, all frames, Hungarian matching of predicted ids to GT objects on mean (J + F)/2;
3. J-Mean, F-Mean = means over all matched objects of all sequences; J&F = (J + F)/2.

The reported J, F, J&F are the means of the runs' values (plus ``anno_<a>/...`` per run). The identity-matched
per-expression score of the referred object (Ref-YouTube-VOS protocol) is reported as ``identity/...``: it
measures grounding, while the unsupervised score forgives swapped objects.

Memory: a (run, sequence) keeps one label map and one probability map per frame until all its expressions are
seen, then is reduced to per-object statistics. Runs whose expressions are split over processes are finished
on rank 0 from compressed partial maps.
"""

from __future__ import annotations

import logging
import os
import zlib
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
from detectron2.data import DatasetCatalog

from soc.utils.paths import safe_join

from .metrics import db_statistics, evaluate_unsupervised, split_object_masks
from .refvos_evaluator import (
    GTReader,
    RefVOSEvaluator,
    RefVOSState,
    as_numpy,
    check_pred_masks,
    expression_pairs,
)
from .ytvos_submission import write_index_png

__all__ = ["RefDAVISEvaluator", "RefDAVISState", "merge_object_probs", "read_index_maps", "NUM_RUNS"]

logger = logging.getLogger(__name__)

NUM_RUNS = 4
BACKGROUND_SCORE = 0.1
PROB_THRESHOLD = 0.5

RunKey = Tuple[int, str]  # (annotator run, sequence)
# frame -> (label uint8 (H, W), best prob float32 (H, W))
FrameState = Dict[str, Tuple[np.ndarray, np.ndarray]]
ObjectStats = Tuple[float, float, float, float, float, float]  # (J_M, J_R, J_D, F_M, F_R, F_D) of one object


@dataclass
class RefDAVISState(RefVOSState):
    """What one process of :class:`RefDAVISEvaluator` sends to rank 0: the identity scores of
    :class:`RefVOSState` plus its share of the unsupervised protocol."""

    # (run, sequence) -> compressed partial label maps (see ``_pack``) of runs not finished on this process
    pending: Dict[RunKey, dict] = field(default_factory=dict)
    # sequence -> the keys of an input that locate its GT and frames (see ``_gt_record``)
    records: Dict[str, dict] = field(default_factory=dict)
    # (run, sequence) -> per-object statistics of the runs finished on this process
    objects: Dict[RunKey, List[ObjectStats]] = field(default_factory=dict)


def merge_object_probs(state: FrameState, frame_names: List[str], probs: np.ndarray, label: int) -> None:
    """Fold object ``label``'s probabilities ``(T, H, W)`` into the per-frame argmax state, in place.

    Equivalent to ``argmax([0.1, p_1 * (p_1 >= 0.5), ..., p_K * (p_K >= 0.5)])`` over all objects, in any
    arrival order: a pixel takes ``label`` when ``p >= 0.5`` and ``p`` beats the current best, or ties it with
    a higher current label.
    """
    for name, p in zip(frame_names, probs):
        p = np.asarray(p, dtype=np.float32)
        if name not in state:
            state[name] = (np.zeros(p.shape, np.uint8), np.full(p.shape, BACKGROUND_SCORE, np.float32))
        cur_label, best = state[name]
        take = (p >= PROB_THRESHOLD) & ((p > best) | ((p == best) & (label < cur_label)))
        cur_label[take] = label
        best[take] = p[take]


def _merge_states(dst: FrameState, src: FrameState) -> None:
    for name, (label, best) in src.items():
        if name not in dst:
            dst[name] = (label.copy(), best.copy())
            continue
        cur_label, cur_best = dst[name]
        take = (label > 0) & ((best > cur_best) | ((best == cur_best) & (label < cur_label)))
        cur_label[take] = label[take]
        cur_best[take] = best[take]


def _pack(state: FrameState) -> dict:
    """Compress a partial state for the gather: labels zlib'ed, probabilities kept only under labels."""
    return {
        n: (lab.shape, zlib.compress(lab.tobytes(), 1), best[lab > 0]) for n, (lab, best) in state.items()
    }


def _unpack(packed: dict) -> FrameState:
    state = {}
    for n, (shape, data, values) in packed.items():
        lab = np.frombuffer(zlib.decompress(data), np.uint8).reshape(shape).copy()
        best = np.full(shape, BACKGROUND_SCORE, np.float32)
        best[lab > 0] = values
        state[n] = (lab, best)
    return state


def read_index_maps(record: dict) -> Tuple[List[str], np.ndarray]:
    """The sequence's GT index maps (value = object id, 255 = void) from its annotation PNGs.

    Returns:
        (frame names in order, uint8 ``(T, H, W)``); PNGs of different sizes raise ``DataError``.
    """
    from soc.data.io import check_same_size, read_palette_png

    files = record["annotations"]["files"]
    names = [os.path.splitext(os.path.basename(p))[0] for p in files]
    maps = [read_palette_png(p) for p in files]
    check_same_size(maps, files, "annotation")
    return names, np.stack(maps)


def score_sequence(gt_maps: np.ndarray, pred_maps: np.ndarray, max_proposals: int = 20) -> List[ObjectStats]:
    """Per-object ``(J_M, J_R, J_D, F_M, F_R, F_D)`` of one sequence under the DAVIS unsupervised protocol.

    Args:
        gt_maps: uint8 ``(T, H, W)``, 255 = void; the GT objects are ``1..max(first frame)``.
        pred_maps: uint8 ``(T, H, W)`` indexed prediction; the predicted objects are ``1..max(all frames)``.
    """
    gt_maps = np.array(gt_maps, dtype=np.uint8)
    void = gt_maps == 255
    gt_maps[void] = 0
    n_gt = int(gt_maps[0].max()) if gt_maps.size else 0
    gt = split_object_masks(gt_maps, n_gt)
    pred = split_object_masks(pred_maps)
    j, f, _ = evaluate_unsupervised(gt, pred, void, max_proposals=max_proposals)
    return [db_statistics(j[i]) + db_statistics(f[i]) for i in range(j.shape[0])]


class RefDAVISEvaluator(RefVOSEvaluator):
    """Ref-DAVIS17: the four annotator runs scored with the DAVIS unsupervised protocol and averaged.

    Inputs and outputs as for :class:`RefVOSEvaluator`; outputs also need ``mask_probs`` float ``(T, H, W)``
    (``pred_masks`` is used, with a warning, when absent). Results on rank 0: ``{"refvos": {"J&F", "J", "F",
    "J-Recall", "J-Decay", "F-Recall", "F-Decay", "anno_<a>/J&F", "anno_<a>/J", "anno_<a>/F",
    "identity/J&F", "identity/J", "identity/F"}}`` as fractions. With an output folder, the merged maps are
    written as palette PNGs ``<output_dir>/anno_<a>/<seq>/%05d.png`` (frame index), the layout the DAVIS tool
    reads.
    """

    def __init__(
        self,
        dataset_name: Optional[str] = None,
        output_dir: Optional[str] = None,
        *,
        expected_expressions: Optional[Dict[RunKey, set]] = None,
        gt_reader: Optional[GTReader] = None,
        index_reader: Optional[Callable[[dict], Tuple[List[str], np.ndarray]]] = None,
        write_pngs: bool = True,
        max_proposals: int = 20,
        distributed: bool = True,
    ):
        """
        Args:
            dataset_name: registered dataset; its records tell which expressions complete a (run, sequence).
            output_dir: folder for the palette PNGs and the per-expression json (None: write nothing).
            expected_expressions: ``{(run, seq): {exp_id, ...}}``; default from the dataset's records. Without
                either, every sequence is merged and scored in ``evaluate`` (more memory).
            gt_reader: the referred object's masks for the identity score (see :class:`RefVOSEvaluator`).
            index_reader: ``record -> (frame names, uint8 (T, H, W) GT index maps)``; default
                :func:`read_index_maps` on the record's annotation PNGs.
            write_pngs: write ``anno_<a>/<seq>/%05d.png``.
            max_proposals: more predicted objects in a sequence is an error (the DAVIS tool aborts).
        """
        super().__init__(
            dataset_name, output_dir, gt_reader=gt_reader, write_submission=False, distributed=distributed
        )
        self._expected = expected_expressions
        self._index_reader = index_reader or read_index_maps
        self._write_pngs = write_pngs and output_dir is not None
        self._max_proposals = max_proposals
        self._warned_probs = False

    def reset(self) -> None:
        super().reset()
        self._pending: Dict[RunKey, FrameState] = {}
        self._covered: Dict[RunKey, Dict[str, set]] = {}  # exp_id -> frames seen
        self._records: Dict[str, dict] = {}  # seq -> a record carrying the GT source and frame list
        self._objects: Dict[RunKey, List[ObjectStats]] = {}  # finished: per-object statistics

    def _expected_map(self) -> Optional[Dict[RunKey, set]]:
        if self._expected is None and self._dataset_name is not None:
            self._expected = {}
            for r in DatasetCatalog.get(self._dataset_name):
                self._expected.setdefault((int(r["exp_id"]) % NUM_RUNS, r["video_id"]), set()).add(
                    str(r["exp_id"])
                )
        return self._expected

    def process(self, inputs: List[dict], outputs: List[dict]) -> None:
        """Inputs and outputs as for :meth:`RefVOSEvaluator.process` (ungrouped or grouped); outputs also
        carry ``mask_probs`` float ``(T, H, W)``."""
        super().process(inputs, outputs)  # identity per-expression J/F
        for inp, out in expression_pairs(inputs, outputs):
            seq, exp_id = inp["video_id"], str(inp["exp_id"])
            run, label = int(exp_id) % NUM_RUNS, int(exp_id) // NUM_RUNS + 1
            if "mask_probs" in out:
                probs = as_numpy(out["mask_probs"]).astype(np.float32)
            else:
                if not self._warned_probs:
                    logger.warning(
                        "outputs carry no 'mask_probs': merging objects from the binary pred_masks"
                    )
                    self._warned_probs = True
                probs = as_numpy(out["pred_masks"]).astype(np.float32)
            probs = check_pred_masks(inp, probs)
            key = (run, seq)
            self._records.setdefault(seq, _gt_record(inp))
            merge_object_probs(
                self._pending.setdefault(key, {}), [str(n) for n in inp["frame_names"]], probs, label
            )
            self._covered.setdefault(key, {}).setdefault(exp_id, set()).update(
                str(n) for n in inp["frame_names"]
            )
            if self._is_complete(key):
                self._finish(key, self._pending.pop(key))
                self._covered.pop(key)

    def _is_complete(self, key: RunKey) -> bool:
        expected = self._expected_map()
        if not expected or key not in expected:
            return False
        n_frames = len(self._sequence_frames(key[1]))
        covered = self._covered[key]
        return expected[key] <= set(covered) and all(len(covered[e]) >= n_frames for e in expected[key])

    def _sequence_frames(self, seq: str) -> List[str]:
        rec = self._records[seq]
        ann = rec.get("annotations")
        if ann and ann.get("type") == "png":
            return [os.path.splitext(os.path.basename(p))[0] for p in ann["files"]]
        return [str(n) for n in rec["frame_names"]]

    def _finish(self, key: RunKey, state: FrameState) -> None:
        """Write the run's PNGs for a sequence and reduce it to per-object statistics."""
        run, seq = key
        names = self._sequence_frames(seq)
        missing = [n for n in names if n not in state]
        if missing:
            raise ValueError(f"Ref-DAVIS17 run {run}, sequence {seq}: no prediction for frames {missing[:5]}")
        pred = np.stack([state[n][0] for n in names])
        if self._write_pngs:
            for t, index_map in enumerate(pred):
                write_index_png(safe_join(self._output_dir, f"anno_{run}", seq, f"{t:05d}.png"), index_map)
        rec = self._records[seq]
        if not rec.get("annotations"):
            return
        gt_names, gt_maps = self._index_reader(rec)
        if list(gt_names) != names:
            raise ValueError(f"Ref-DAVIS17 {seq}: GT frames {gt_names[:3]}... differ from {names[:3]}...")
        if gt_maps.shape != pred.shape:
            raise ValueError(f"Ref-DAVIS17 {seq}: GT maps {gt_maps.shape} vs predicted maps {pred.shape}")
        self._objects[key] = score_sequence(gt_maps, pred, self._max_proposals)

    def _state(self) -> RefDAVISState:
        scores = super()._state()
        return RefDAVISState(
            frames=scores.frames,
            no_gt=scores.no_gt,
            temporal=scores.temporal,
            pending={k: _pack(v) for k, v in self._pending.items()},
            records=self._records,
            objects=self._objects,
        )

    def _summarize(self, gathered: List[RefDAVISState]) -> Dict[str, float]:
        identity = super()._summarize(gathered)
        pending: Dict[RunKey, FrameState] = {}
        for part in gathered:
            for seq, rec in part.records.items():
                self._records.setdefault(seq, rec)
            self._objects.update(part.objects)
            for key, packed in part.pending.items():
                _merge_states(pending.setdefault(key, {}), _unpack(packed))
        for key in sorted(pending):
            self._finish(key, pending[key])
        self._pending, self._covered = {}, {}

        results: Dict[str, float] = {}
        runs = sorted({run for run, _ in self._objects})
        per_run = {}
        for run in runs:
            stats = np.array([s for (r, _), objs in sorted(self._objects.items()) if r == run for s in objs])
            if stats.size == 0:
                continue
            j_m, f_m = float(stats[:, 0].mean()), float(stats[:, 3].mean())
            per_run[run] = {
                "J&F": (j_m + f_m) / 2,
                "J": j_m,
                "F": f_m,
                "J-Recall": float(stats[:, 1].mean()),
                "J-Decay": float(stats[:, 2].mean()),
                "F-Recall": float(stats[:, 4].mean()),
                "F-Decay": float(stats[:, 5].mean()),
            }
            logger.info(
                "Ref-DAVIS17 anno_%d: J&F %.4f (J %.4f, F %.4f) over %d objects",
                run,
                per_run[run]["J&F"],
                j_m,
                f_m,
                len(stats),
            )
        if per_run:
            for name in ("J&F", "J", "F", "J-Recall", "J-Decay", "F-Recall", "F-Decay"):
                results[name] = float(np.mean([v[name] for v in per_run.values()]))
            for run, v in per_run.items():
                results.update({f"anno_{run}/{m}": v[m] for m in ("J&F", "J", "F")})
        results.update({f"identity/{k}": v for k, v in identity.items()})
        return results


def _gt_record(inp: dict) -> dict:
    """The few keys of an input that locate its sequence's GT and frames (kept for the whole evaluation)."""
    return {k: inp[k] for k in ("video_id", "frame_names", "annotations") if k in inp}
