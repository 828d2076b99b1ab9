"""The training sampler: a seeded permutation per epoch, sharded over ranks, resumable mid-epoch.

It yields ``(index, sample_seed, fallbacks)`` items. The dataset draws its augmentation from
``sample_rng(item)``, a ``random.Random(sample_seed)`` of its own, where ``sample_seed`` is a
pure function of (seed, epoch, index), so a clip's random crop, flip and temporal position do
not depend on which worker loads it, how many workers there are, what else used the global
``random``, or whether the run was interrupted and resumed: that is what makes a resumed run
bitwise equal to an uninterrupted one.
"""
import math
import random
from typing import Any, Callable, Dict, Iterator, Optional, Tuple, Union

import torch
from torch.utils.data import Sampler

from common.faults import report_fault

MASK = (1 << 63) - 1
REFETCH = 4  # other videos of the same rank's epoch that may take the place of one that fails
# What a dataset is indexed with: an index; (index, seed); or (index, seed, fallbacks): training
# items carry the indices that may replace theirs, from the same rank's share of the epoch.
Item = Union[int, Tuple[int, int], Tuple[int, int, Tuple[int, ...]]]
Sample = Dict[str, Any]


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A well-mixed 63-bit seed for one sample of one epoch (splitmix64-style)."""
    x = (seed * 0x9E3779B97F4A7C15 + epoch * 0xBF58476D1CE4E5B9 + index * 0x94D049BB133111EB) & MASK
    x ^= x >> 31
    x = (x * 0xD6E8FEB86659FD93) & MASK
    return x ^ (x >> 32)


def sample_rng(item: Item, fixed: bool = False) -> Tuple[int, random.Random]:
    """The index of a dataset ``item`` and the generator all of that sample's random draws come from.

    ``(index, seed)`` (from ``EpochSampler``) gives ``random.Random(seed)``. With ``fixed`` the
    seed depends on the index alone (the same sample every epoch, e.g. validation puzzles).
    A plain index gives a generator seeded by one draw from the global ``random``, so it
    follows ``random.seed`` (``main`` seeds it with ``--manual_seed``; a DataLoader worker's
    global ``random`` is seeded by torch from the loader's base seed and the worker id).
    """
    index, seed = item[:2] if isinstance(item, tuple) else (item, None)
    if fixed:
        seed = sample_seed(0, 0, index)
    elif seed is None:
        seed = random.getrandbits(64)
    return index, random.Random(seed)


def with_fallbacks(get: Callable[[Item], Sample], item: Item) -> Sample:
    """``get(item)``; if that sample failed, the first of the item's fallbacks that does not (a batch stays full).

    The failure is reported (a data fault) and listed in the sample's ``replaced``, so that the
    epoch counts it once, where the video has its own place; a fallback that fails too is passed
    over, as it is counted at its own place. A fallback's augmentation comes from its own seed, a
    pure function of the failed item's, so a resumed run replaces alike. With no fallback left
    (or none given: validation, inference) the failed sample is returned: the video leaves the batch.
    """
    sample = get(item)
    if 'failed' not in sample:
        return sample
    for k, other in enumerate(item[2] if isinstance(item, tuple) and len(item) > 2 else (), 1):
        replacement = get((other, sample_seed(item[1], k, other)))
        if 'failed' not in replacement:
            report_fault(f"{sample['failed']}; another video of this rank's share takes its place")
            return dict(replacement, replaced=[(sample['video_id'], sample['failed'])])
    report_fault(f"{sample['failed']}; the video leaves the batch")
    return sample


def epoch_length(n: int, world: int = 1, batch_size: int = 1) -> int:
    """Samples per rank: ``ceil(n / world)``, plus one repeated sample when the last batch would hold one clip.

    BatchNorm cannot train on a single clip whose features have shrunk to 1x1x1, so with
    ``batch_size`` > 1 no training batch is ever a single clip.
    """
    per_rank = math.ceil(n / world) if n else 0
    return per_rank + 1 if batch_size > 1 and per_rank % batch_size == 1 else per_rank


class EpochSampler(Sampler):
    """Shuffled (or ordered) indices of ``n`` samples for one rank, from ``start`` on.

    Like DistributedSampler, the permutation is padded by repetition so that every rank gets
    the same number of samples, ``epoch_length(n, world, batch_size)``: batches of
    ``batch_size`` never end with a single clip. Rank r takes positions r, r + world, ... of the
    padded order, so after b batches the ranks together have done its first b * batch_size *
    world positions: a preempted epoch is a prefix of its order. ``set_epoch`` picks the epoch's
    permutation; ``set_start`` skips the samples a resumed epoch has already trained on (the same
    world and batch size); ``rest_from`` re-shards what follows a prefix done with another world
    or batch size (each sample of the epoch still trained once). Both reset at the next epoch.
    """

    def __init__(self, n: int, seed: int = 0, rank: int = 0, world: int = 1, shuffle: bool = True,
                 batch_size: int = 1):
        self.n, self.seed, self.rank, self.world, self.shuffle = n, seed, rank, world, shuffle
        self.batch_size = batch_size
        self.epoch = 0
        self.start = 0
        self.offset = 0  # positions of the epoch's order done before this run, by every rank together
        self.rest: Optional[int] = None  # set by rest_from: the order from this position on, re-sharded
        self.per_rank = epoch_length(n, world, batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Use the permutation of ``epoch`` and start from its beginning."""
        self.epoch = epoch
        self.start, self.offset, self.rest = 0, 0, None
        self.per_rank = epoch_length(self.n, self.world, self.batch_size)

    def set_start(self, start: int) -> None:
        """Skip this rank's first ``start`` samples of the current epoch (all ranks skip as many)."""
        self.start = start
        self.offset = start * self.world

    def rest_from(self, done: int) -> None:
        """Train only what follows the first ``done`` positions of the epoch's order, re-sharded over these ranks."""
        self.rest, self.start, self.offset = done, 0, done
        self.per_rank = epoch_length(max(0, self.n - done), self.world, self.batch_size)

    def samples_done(self, batches: int) -> int:
        """Positions of the epoch's order done by all ranks after this run's first ``batches`` batches."""
        return self.offset + batches * self.batch_size * self.world

    def _order(self) -> list:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            return torch.randperm(self.n, generator=g).tolist()
        return list(range(self.n))

    def indices(self) -> list:
        """This rank's sample indices for the current epoch (or for the rest of it)."""
        order = self._order()
        if self.rest is not None:
            order = order[self.rest:]
        total = self.per_rank * self.world
        order = (order * (total // len(order) + 1))[:total] if order else order  # padded by repetition
        return order[self.rank:total:self.world]

    def __iter__(self) -> Iterator[Tuple[int, int, Tuple[int, ...]]]:
        mine = self.indices()
        for p in range(self.start, len(mine)):
            fallbacks = tuple(mine[(p + k) % len(mine)] for k in range(1, min(REFETCH, len(mine) - 1) + 1))
            yield mine[p], sample_seed(self.seed, self.epoch, mine[p]), fallbacks

    def __len__(self) -> int:
        return max(0, self.per_rank - self.start)
