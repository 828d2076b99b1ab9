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
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import torch
from torch.utils.data import Sampler

from common.faults import report_fault

MASK = (1 << 63) - 1
REFETCH = 4  # other videos of the same rank's epoch that may take the place of one that fails
# What a dataset is indexed with: an index; (index, seed); or (index, seed, fallbacks[, shape]): training
# items carry the indices that may replace theirs, from the same rank's share of the epoch, and the
# clip shape of their batch where it is not the dataset's own (datasets.multigrid).
Item = Union[int, Tuple[int, int], Tuple[int, int, Tuple[int, ...]], Tuple[int, int, Tuple[int, ...], Tuple]]
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


def item_shape(item: Item) -> Optional[Tuple]:
    """The clip shape an item carries (``datasets.multigrid``), None for the dataset's own."""
    return item[3] if isinstance(item, tuple) and len(item) > 3 else None


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
    shape = item_shape(item)
    for k, other in enumerate(item[2] if isinstance(item, tuple) and len(item) > 2 else (), 1):
        replacement = get((other, sample_seed(item[1], k, other)) + (() if shape is None else ((), shape)))
        if 'failed' not in replacement:
            report_fault(f"{sample['failed']}; another video of this rank's share takes its place")
            return dict(replacement, replaced=[(sample['video_id'], sample['failed'])])
    report_fault(f"{sample['failed']}; the video leaves the batch")
    return sample


def count_batches(samples: int, sizes: Sequence[int], phase: int = 0) -> int:
    """Batches that ``samples`` items make when batch k (from ``phase`` on) holds ``sizes[k % len(sizes)]``."""
    per_cycle, k = sum(sizes), 0
    full = max(0, samples // per_cycle - 1)  # whole cycles, counted at once; the rest walked
    samples -= full * per_cycle
    while samples > 0:
        samples -= sizes[(phase + k) % len(sizes)]
        k += 1
    return full * len(sizes) + k


def epoch_length(n: int, world: int = 1, batch_size: int = 1, sizes: Sequence[int] = (), phase: int = 0) -> int:
    """Samples per rank: ``ceil(n / world)``, plus one repeated sample when the last batch would hold one clip.

    BatchNorm cannot train on a single clip whose features have shrunk to 1x1x1, so with
    batches of more than one clip no training batch is ever a single clip. The batches are
    ``batch_size`` clips, or ``sizes`` in turn from the epoch's batch ``phase`` (``datasets.multigrid``).
    """
    per_rank = math.ceil(n / world) if n else 0
    sizes = tuple(sizes) or (batch_size,)
    left, k = per_rank - max(0, per_rank // sum(sizes) - 1) * sum(sizes), phase  # whole cycles at once
    while left > sizes[k % len(sizes)]:
        left -= sizes[k % len(sizes)]
        k += 1
    return per_rank + 1 if sizes[k % len(sizes)] > 1 and left == 1 else per_rank


Shape = Tuple[int, ...]  # one iteration's clip shape (datasets.multigrid), carried by its items


class EpochSampler(Sampler):
    """Shuffled (or ordered) indices of ``n`` samples for one rank, from ``start`` on.

    Like DistributedSampler, the permutation is padded by repetition so that every rank gets
    the same number of samples, ``epoch_length``: batches never end with a single clip. Rank r
    takes positions r, r + world, ... of the padded order, so after b batches the ranks together
    have done a prefix of its order: a preempted epoch is a prefix of its order. ``set_epoch``
    picks the epoch's permutation and its batches: ``batch_size`` items, or a ``cycle`` of
    (items, clip shape) taken in turn, batch by batch (``datasets.multigrid``; the shape rides on
    each item: ``(index, seed, fallbacks, shape)``); ``skip_batches`` skips the batches a resumed
    epoch has already trained on (the same world and batches); ``rest_from`` re-shards what
    follows a prefix done with another world or batches (each sample of the epoch still trained
    once). Both reset at the next epoch. ``EpochBatches`` makes the DataLoader's batches of it.
    """

    def __init__(self, n: int, seed: int = 0, rank: int = 0, world: int = 1, shuffle: bool = True,
                 batch_size: int = 1):
        self.n, self.seed, self.rank, self.world, self.shuffle = n, seed, rank, world, shuffle
        self.batch_size = batch_size
        self.cycle: Tuple[Tuple[int, Optional[Shape]], ...] = ((batch_size, None),)
        self.epoch = 0
        self.start = 0
        self.phase = 0  # the epoch's batch at which this run's batches begin (their place in the cycle)
        self.offset = 0  # positions of the epoch's order done before this run, by every rank together
        self.rest: Optional[int] = None  # set by rest_from: the order from this position on, re-sharded
        self.per_rank = epoch_length(n, world, batch_size)

    @property
    def sizes(self) -> Tuple[int, ...]:
        """Items per batch, batch by batch of the cycle."""
        return tuple(size for size, _ in self.cycle)

    def set_epoch(self, epoch: int, cycle: Optional[Sequence[Tuple[int, Optional[Shape]]]] = None) -> None:
        """Use the permutation of ``epoch`` (and its batches' ``cycle``: default, ``batch_size`` items) from its start."""
        self.epoch = epoch
        self.cycle = tuple(cycle) if cycle else ((self.batch_size, None),)
        self.start, self.offset, self.rest, self.phase = 0, 0, None, 0
        self.per_rank = epoch_length(self.n, self.world, sizes=self.sizes)

    def set_start(self, start: int) -> None:
        """Skip this rank's first ``start`` samples of the current epoch (all ranks skip as many)."""
        self.start = start
        self.offset = start * self.world

    def skip_batches(self, batches: int) -> None:
        """Skip the epoch's first ``batches`` batches (every rank as many): the cycle goes on from there."""
        self.set_start(self._items(0, batches, self.per_rank))
        self.phase = batches

    def layout(self) -> Dict[str, Any]:
        """What besides the world size and the batches this order depends on ({}: nothing; shards: lanes...)."""
        return {}

    def rest_from(self, done: int, phase: int = 0, was: Optional[Dict[str, Any]] = None) -> None:
        """Train only what follows the first ``done`` positions of the epoch's order, re-sharded over these
        ranks, in batches from the cycle's ``phase`` (the epoch's batches done before). ``was``: the record of
        the run that did them (an order that depends on its layout needs it; this one does not)."""
        self.rest, self.start, self.offset, self.phase = done, 0, done, phase
        self.per_rank = epoch_length(max(0, self.n - done), self.world, sizes=self.sizes, phase=phase)

    def _items(self, phase: int, batches: int, limit: int) -> int:
        """Items in ``batches`` batches from the cycle's ``phase`` on, at most ``limit``."""
        sizes = self.sizes
        return min(limit, sum(sizes[(phase + k) % len(sizes)] for k in range(batches)))

    def samples_done(self, batches: int) -> int:
        """Positions of the epoch's order done by all ranks after this run's first ``batches`` batches."""
        return self.offset + self._items(self.phase, batches, len(self)) * self.world

    def n_batches(self) -> int:
        """This run's batches of the epoch (from ``start`` on)."""
        return count_batches(len(self), self.sizes, self.phase)

    def grid(self, batch: int) -> Tuple[int, Optional[Shape]]:
        """(items, shape) of the epoch's batch number ``batch`` (from 0)."""
        return self.cycle[batch % len(self.cycle)]

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

    def batches(self) -> Iterator[List[Item]]:
        """This run's batches of items, each item with its batch's shape where the cycle gives one."""
        mine = self.indices()
        p, k = self.start, self.phase
        while p < len(mine):
            size, shape = self.grid(k)
            batch = []
            for q in range(p, min(p + size, len(mine))):
                fallbacks = tuple(mine[(q + j) % len(mine)] for j in range(1, min(REFETCH, len(mine) - 1) + 1))
                item = (mine[q], sample_seed(self.seed, self.epoch, mine[q]), fallbacks)
                batch.append(item if shape is None else item + (shape,))
            yield batch
            p, k = p + size, k + 1

    def __iter__(self) -> Iterator[Item]:
        for batch in self.batches():
            yield from batch

    def __len__(self) -> int:
        return max(0, self.per_rank - self.start)


class EpochBatches:
    """The DataLoader's ``batch_sampler`` of an ``EpochSampler``: its batches, each of its cycle's size."""

    def __init__(self, sampler: EpochSampler):
        self.sampler = sampler

    def __iter__(self) -> Iterator[List[Item]]:
        return self.sampler.batches()

    def __len__(self) -> int:
        return self.sampler.n_batches()
