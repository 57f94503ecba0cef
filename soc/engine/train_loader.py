"""A training data loader whose stream of samples is a pure function of (seed, position).

Resuming at iteration ``i`` continues the stream at position ``i * IMS_PER_BATCH`` and every sample's
augmentation is seeded by its position, so a resumed run sees exactly the clips an uninterrupted run would
have seen. Several datasets can be mixed with sampling ratios (joint image + video training).
"""

import logging
from typing import Callable, Dict, Iterator, List, Optional, Sequence

import numpy as np
from detectron2.data import build_detection_train_loader
from detectron2.utils import comm
from detectron2.utils.env import seed_all_rng
from torch.utils.data import Dataset, Sampler

logger = logging.getLogger(__name__)

Mapper = Callable[[dict], Optional[dict]]


def _position_seed(seed: int, position: int) -> int:
    """A 31-bit seed that depends on both numbers (positions of different seeds do not collide)."""
    return int(np.random.SeedSequence([seed, position]).generate_state(1)[0] & 0x7FFFFFFF)


class ClipStreamDataset(Dataset):
    """Maps a global sample position to a mapped clip.

    Without ``ratios``, positions walk through a fresh permutation of all records every epoch; with
    ``ratios`` (one per dataset), each position first draws a dataset with those probabilities, then a record
    of it uniformly. The mapper runs with numpy, ``random`` and torch seeded by the position. A mapper that
    returns ``None`` (a clip it cannot use) is retried on the next position's record.
    """

    def __init__(
        self,
        datasets: Sequence[List[dict]],
        mappers: Sequence[Mapper],
        *,
        seed: int,
        ratios: Sequence[float] = (),
        max_retries: int = 100,
    ):
        if len(datasets) != len(mappers):
            raise ValueError(f"{len(datasets)} datasets but {len(mappers)} mappers")
        if any(len(d) == 0 for d in datasets):
            raise ValueError("a training dataset is empty: check DATASETS.TRAIN and the dataset root")
        if ratios and len(ratios) != len(datasets):
            raise ValueError(f"DATASETS.TRAIN_RATIOS has {len(ratios)} entries for {len(datasets)} datasets")
        self._datasets = list(datasets)
        self._mappers = list(mappers)
        self._seed = seed
        self._max_retries = max_retries
        self._sizes = np.array([len(d) for d in datasets])
        self._offsets = np.concatenate([[0], np.cumsum(self._sizes)])
        self._ratios = np.asarray(ratios, dtype=np.float64) / np.sum(ratios) if ratios else None
        self._epoch_perm: Dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def _locate(self, position: int) -> "tuple[int, int]":
        """(dataset index, record index) of a global position."""
        if self._ratios is not None:
            rng = np.random.default_rng([self._seed, position, 1])
            d = int(rng.choice(len(self._sizes), p=self._ratios))
            return d, int(rng.integers(self._sizes[d]))
        epoch, k = divmod(position, len(self))
        if epoch not in self._epoch_perm:
            self._epoch_perm = {epoch: np.random.default_rng([self._seed, epoch, 0]).permutation(len(self))}
        flat = int(self._epoch_perm[epoch][k])
        d = int(np.searchsorted(self._offsets, flat, side="right") - 1)
        return d, flat - int(self._offsets[d])

    def __getitem__(self, position: int) -> dict:
        for attempt in range(self._max_retries):
            d, i = self._locate(position + attempt * len(self))
            seed_all_rng(_position_seed(self._seed, position + attempt * len(self)))
            out = self._mappers[d](dict(self._datasets[d][i]))
            if out is not None:
                return out
        raise RuntimeError(f"the mapper rejected {self._max_retries} clips in a row at position {position}")


class ResumableSampler(Sampler):
    """Infinite stream of global positions ``start, start+1, ...``, sharded across processes."""

    def __init__(self, start: int = 0):
        self._start = start
        self._rank = comm.get_rank()
        self._world = comm.get_world_size()

    def __iter__(self) -> Iterator[int]:
        position = self._start + self._rank
        while True:
            yield position
            position += self._world


def build_clip_train_loader(
    datasets: Sequence[List[dict]],
    mappers: Sequence[Mapper],
    *,
    total_batch_size: int,
    seed: int,
    start_iter: int = 0,
    ratios: Sequence[float] = (),
    num_workers: int = 0,
):
    """The training loader: lists of clip dicts, ``total_batch_size`` clips per iteration over all processes.

    Resuming at ``start_iter`` continues exactly where iteration ``start_iter`` of a fresh run would be.
    """
    dataset = ClipStreamDataset(datasets, mappers, seed=seed, ratios=ratios)
    logger.info(
        "Training stream over %d clips from %d dataset(s), starting at iteration %d",
        len(dataset),
        len(datasets),
        start_iter,
    )
    # Process r takes positions r, r + world, ...; a global batch is total_batch_size consecutive positions.
    sampler = ResumableSampler(start=start_iter * total_batch_size)
    return build_detection_train_loader(
        dataset,
        mapper=None,
        sampler=sampler,
        total_batch_size=total_batch_size,
        aspect_ratio_grouping=False,
        num_workers=num_workers,
    )


def step_seed(seed: int, iteration: int, rank: int) -> int:
    """Seed for the model's randomness (dropout, drop path) at one iteration of one process."""
    return _position_seed(seed, iteration * 65536 + rank)
