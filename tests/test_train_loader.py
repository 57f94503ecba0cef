"""The training stream is a pure function of (seed, position): resuming continues it exactly."""

import itertools
import random

import numpy as np
import pytest

from soc.engine.train_loader import ClipStreamDataset, build_clip_train_loader


def _mapper(record):
    # uses every global RNG a mapper may use, so seeding by position is what makes it reproducible
    return {"id": record["id"], "np": float(np.random.rand()), "py": random.random()}


def _records(n, tag):
    return [{"id": f"{tag}{i}"} for i in range(n)]


def _take(loader, n):
    return [[(d["id"], d["np"], d["py"]) for d in batch] for batch in itertools.islice(iter(loader), n)]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resume_continues_the_stream(num_workers):
    kw = dict(total_batch_size=3, seed=7, num_workers=num_workers)
    full = _take(build_clip_train_loader([_records(5, "a")], [_mapper], **kw), 6)
    resumed = _take(build_clip_train_loader([_records(5, "a")], [_mapper], start_iter=4, **kw), 2)
    assert resumed == full[4:6]


def test_epochs_are_permutations():
    ds = ClipStreamDataset([_records(4, "a"), _records(3, "b")], [_mapper, _mapper], seed=0)
    ids = [ds[p]["id"] for p in range(14)]
    assert (
        sorted(ids[:7])
        == sorted(ids[7:])
        == sorted([f"a{i}" for i in range(4)] + [f"b{i}" for i in range(3)])
    )
    assert ids[:7] != ids[7:]  # a new permutation per epoch (probability 1/5040 of a false failure)


def test_ratios_mix_datasets():
    ds = ClipStreamDataset([_records(2, "a"), _records(50, "b")], [_mapper, _mapper], seed=0, ratios=[3, 1])
    share_a = np.mean([ds[p]["id"].startswith("a") for p in range(2000)])
    assert abs(share_a - 0.75) < 0.04


def test_rejected_clip_is_replaced_deterministically():
    def picky(record):
        return None if record["id"] == "a0" else _mapper(record)

    ds = ClipStreamDataset([_records(3, "a")], [picky], seed=1)
    first = [ds[p]["id"] for p in range(9)]
    assert "a0" not in first
    assert first == [ds[p]["id"] for p in range(9)]


def test_bad_arguments():
    with pytest.raises(ValueError, match="empty"):
        ClipStreamDataset([[]], [_mapper], seed=0)
    with pytest.raises(ValueError, match="TRAIN_RATIOS"):
        ClipStreamDataset([_records(2, "a")], [_mapper], seed=0, ratios=[1, 2])
