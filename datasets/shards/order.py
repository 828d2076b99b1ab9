"""The order an epoch reads shards in: shard order, contiguous shares, lanes, block shuffle.

The training order of a sharded subset is ``EpochSampler``'s, with another permutation: the
shards in a seeded order per epoch make one stream of samples; each rank's share is a contiguous
part of that stream (so a rank reads its own shards); inside a share, batch b comes from lane
``b % lanes`` (one lane per DataLoader worker, which gets every lanes-th batch), each lane a
contiguous part of the share with its samples shuffled in blocks of ``block`` (what a worker
holds at once). Ranks' shares interleave in the epoch's order (position ``k * world + r`` is rank
r's k-th sample), so ``EpochSampler``'s padding, batches, fallbacks and resume apply unchanged:
after b batches the ranks together have done a prefix of the order. The order is a pure function
of the seed, the epoch, the shard sizes and the layout (world, lanes, batches, block), which a
checkpoint records: the same layout continues bitwise; another one continues the rest of the
recorded order, re-sharded, each sample still once.
"""
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from datasets.samplers import EpochSampler


def _batch_numbers(m: int, sizes: Sequence[int]) -> np.ndarray:
    """The batch (from 0) of each of a share's first ``m`` positions when batches hold ``sizes`` in turn."""
    cycle = np.cumsum(sizes)
    p = np.arange(m)
    return (p // cycle[-1]) * len(sizes) + np.searchsorted(cycle, p % cycle[-1], side='right')


def _block_shuffled(piece: np.ndarray, block: int, rng: np.random.Generator) -> np.ndarray:
    out = piece.copy()
    for lo in range(0, len(out), block):
        rng.shuffle(out[lo:lo + block])
    return out


def share_order(region: np.ndarray, sizes: Sequence[int], lanes: int, block: int,
                rng: Optional[np.random.Generator]) -> np.ndarray:
    """A rank's share in the order its batches take it: lane by lane, each lane block-shuffled (``rng``)."""
    lane = _batch_numbers(len(region), sizes) % max(1, lanes)
    out, lo = np.empty_like(region), 0
    for w in range(max(1, lanes)):
        where = np.flatnonzero(lane == w)
        piece = region[lo:lo + len(where)]
        out[where] = piece if rng is None else _block_shuffled(piece, block, rng)
        lo += len(where)
    return out


def stream(counts: np.ndarray, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
    """Sample numbers in the order the epoch reads the shards (a seeded shard order when ``shuffle``)."""
    starts = np.concatenate([[0], np.cumsum(counts)])
    shards = np.random.default_rng([seed, epoch, 1]).permutation(len(counts)) if shuffle else range(len(counts))
    parts = [np.arange(starts[s], starts[s] + counts[s]) for s in shards]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _share(n: int, world: int, r: int) -> range:
    """Rank r's contiguous part of a stream of ``n``: as many samples as positions r, r + world, ... below n."""
    lo = sum(len(range(q, n, world)) for q in range(r))
    return range(lo, lo + len(range(r, n, world)))


def epoch_order(counts: np.ndarray, seed: int, epoch: int, shuffle: bool, world: int, lanes: int,
                sizes: Sequence[int], block: int) -> np.ndarray:
    """The epoch's order: rank r's share at positions r, r + world, ... (see the module docstring)."""
    s = stream(counts, seed, epoch, shuffle)
    out = np.empty_like(s)
    for r in range(world):
        part = _share(len(s), world, r)
        rng = np.random.default_rng([seed, epoch, 2, r]) if shuffle else None
        out[r::world] = share_order(s[part.start:part.stop], sizes, lanes, block, rng)
    return out


def validation_share(counts: np.ndarray, rank: int, world: int, batch: int, lanes: int) -> List[int]:
    """A rank's share of an unshuffled pass (validation, inference): contiguous, in lanes; each sample once."""
    part = _share(int(np.sum(counts)), world, rank)
    return share_order(np.arange(part.start, part.stop), [max(1, batch)], lanes, 1, None).tolist()


class ShardSampler(EpochSampler):
    """``EpochSampler`` over a sharded subset: its order is ``epoch_order``'s (``lanes``: DataLoader workers)."""

    def __init__(self, counts: Sequence[int], seed: int = 0, rank: int = 0, world: int = 1, shuffle: bool = True,
                 batch_size: int = 1, lanes: int = 1, block: int = 64):
        self.counts = np.asarray(counts, dtype=np.int64)
        super().__init__(int(self.counts.sum()), seed, rank, world, shuffle, batch_size)
        self.lanes, self.block = max(1, lanes), max(1, block)
        self.was: Optional[Dict[str, Any]] = None  # the layout of the order a resumed epoch's prefix is of

    def layout(self) -> Dict[str, Any]:
        """Everything the epoch's order depends on besides seed and epoch (a mid-epoch checkpoint records it)."""
        if self.was is not None:
            return dict(self.was)
        return {'order': 'shards', 'shards': len(self.counts), 'world': self.world, 'batches': list(self.sizes),
                'lanes': self.lanes, 'block': self.block}

    def set_epoch(self, epoch: int, cycle: Optional[Sequence] = None) -> None:
        super().set_epoch(epoch, cycle)
        self.was = None

    def rest_from(self, done: int, phase: int = 0, was: Optional[Mapping[str, Any]] = None) -> None:
        super().rest_from(done, phase)
        self.was = checked_layout((was or {}).get('layout'), len(self.counts))

    def _order(self) -> list:
        o = self.layout()
        return epoch_order(self.counts, self.seed, self.epoch, self.shuffle, o['world'], o['lanes'], o['batches'],
                           o['block']).tolist()


def checked_layout(layout: Any, shards: int) -> Dict[str, Any]:
    """A recorded shard order's layout, range-checked (``ValueError`` naming what is wrong)."""
    if not isinstance(layout, Mapping) or layout.get('order') != 'shards':
        raise ValueError('the checkpoint records no shard order')
    if layout.get('shards') != shards:
        raise ValueError(f"the epoch was read from {layout.get('shards')} shards, not {shards}")
    for key in ('world', 'lanes', 'block'):
        value = layout.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1 << 20:
            raise ValueError(f'its recorded {key} is {value!r}')
    batches = layout.get('batches')
    if not isinstance(batches, list) or not batches or not all(
            isinstance(b, int) and not isinstance(b, bool) and 1 <= b <= 1 << 20 for b in batches):
        raise ValueError(f'its recorded batches are {batches!r}')
    return dict(layout)
