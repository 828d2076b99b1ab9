"""The training sampler: a seeded permutation per epoch, sharded over ranks, resumable mid-epoch.

It yields ``(index, sample_seed)`` pairs. The dataset draws its augmentation from
``sample_rng(item)``, a ``random.Random(sample_seed)`` of its own, where ``sample_seed`` is a
pure function of (seed, epoch, index), so a clip's random crop, flip and temporal position do
not depend on which worker loads it, how many workers there are, what else used the global
``random``, or whether the run was interrupted and resumed: that is what makes a resumed run
bitwise equal to an uninterrupted one.
"""
import math
import random
from typing import Iterator, Tuple, Union

import torch
from torch.utils.data import Sampler

MASK = (1 << 63) - 1
Item = Union[int, Tuple[int, int]]  # what a dataset is indexed with: an index, or (index, seed)


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
    index, seed = item if isinstance(item, tuple) else (item, None)
    if fixed:
        seed = sample_seed(0, 0, index)
    elif seed is None:
        seed = random.getrandbits(64)
    return index, random.Random(seed)


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
    ``batch_size`` never end with a single clip. ``set_epoch`` picks the epoch's permutation;
    ``set_start`` skips the samples a resumed epoch has already trained on (reset at the next epoch).
    """

    def __init__(self, n: int, seed: int = 0, rank: int = 0, world: int = 1, shuffle: bool = True,
                 batch_size: int = 1):
        self.n, self.seed, self.rank, self.world, self.shuffle = n, seed, rank, world, shuffle
        self.epoch = 0
        self.start = 0
        self.per_rank = epoch_length(n, world, batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Use the permutation of ``epoch`` and start from its beginning."""
        self.epoch = epoch
        self.start = 0

    def set_start(self, start: int) -> None:
        """Skip this rank's first ``start`` samples of the current epoch."""
        self.start = start

    def indices(self) -> list:
        """This rank's sample indices for the current epoch."""
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        total = self.per_rank * self.world
        order = (order * (total // len(order) + 1))[:total] if order else order  # padded by repetition
        return order[self.rank:total:self.world]

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        for i in self.indices()[self.start:]:
            yield i, sample_seed(self.seed, self.epoch, i)

    def __len__(self) -> int:
        return max(0, self.per_rank - self.start)
