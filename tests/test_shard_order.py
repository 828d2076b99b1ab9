"""The epoch's order over sharded data (datasets.shards.order): every sample once per epoch on any layout, each rank
reading its own shards, exact continuation on the same topology, the rest once on another, checked records."""
import json

import numpy as np
import pytest

from common.errors import UserError
from datasets.samplers import epoch_length
from datasets.shards.order import ShardSampler, epoch_order, validation_share
from runs.position import continue_epoch, sampler_record

COUNTS = np.array([7, 9, 3, 11, 8, 5])  # 43 samples in 6 shards


@pytest.mark.parametrize('world,lanes,batch', [(1, 1, 4), (2, 2, 3), (3, 2, 2), (4, 1, 5)])
def test_every_sample_once_per_epoch_each_rank_reading_its_own_shards(world, lanes, batch):
    samplers = [ShardSampler(COUNTS, seed=3, rank=r, world=world, batch_size=batch, lanes=lanes, block=4)
                for r in range(world)]
    for s in samplers:
        s.set_epoch(2)
    mine = [s.indices() for s in samplers]
    assert all(len(m) == epoch_length(43, world, batch) for m in mine)
    assert sorted(set().union(*map(set, mine))) == list(range(43))  # padding repeats, nothing is left out
    starts = np.cumsum(np.r_[0, COUNTS])
    shard_of = lambda k: int(np.searchsorted(starts, k, side='right')) - 1  # noqa: E731
    n_real = [len(range(r, 43, world)) for r in range(world)]
    for r, m in enumerate(mine):  # a rank reads a run of consecutive shards in the epoch's shard order
        touched = {shard_of(k) for k in m[:n_real[r]]}
        assert len(touched) <= -(-n_real[r] // min(COUNTS)) + 1
    other = ShardSampler(COUNTS, seed=3, world=world, batch_size=batch, lanes=lanes, block=4)
    other.set_epoch(3)
    assert other.indices() != ShardSampler(COUNTS, seed=3, world=world, batch_size=batch, lanes=lanes,
                                           block=4).indices()  # another epoch, another order


@pytest.mark.parametrize('world,batch,new_world,new_batch', [(2, 2, 3, 2), (2, 3, 1, 4), (3, 2, 2, 2)])
def test_a_preempted_epoch_continues_on_another_topology_each_sample_once(world, batch, new_world, new_batch):
    done_batches = 3
    trained = []
    for r in range(world):
        s = ShardSampler(COUNTS, seed=5, rank=r, world=world, batch_size=batch, lanes=2, block=4)
        s.set_epoch(1)
        trained += [i for b in list(s.batches())[:done_batches] for i, *_ in b]
    record = sampler_record(s, 5, 1, world, batch, done_batches)
    position = {'epoch': 1, 'batch': done_batches, 'sampler': json.loads(json.dumps(record))}
    rest = []
    for r in range(new_world):
        s = ShardSampler(COUNTS, seed=5, rank=r, world=new_world, batch_size=new_batch, lanes=1, block=4)
        s.set_epoch(1)
        continue_epoch(position, s, world=new_world, per_rank_batch=new_batch, seed=5, source='ckpt', per_epoch=9)
        rest += [i for b in s.batches() for i, *_ in b]
    assert set(trained) | set(rest) == set(range(43))
    assert len(set(trained) & set(rest)) <= new_world + 1  # only the padding of the rest repeats a sample


def test_the_same_topology_continues_exactly_and_validation_shares_cover_each_video_once():
    s = ShardSampler(COUNTS, seed=5, rank=1, world=2, batch_size=3, lanes=2)
    s.set_epoch(4)
    full = list(s.batches())
    record = json.loads(json.dumps(sampler_record(s, 5, 4, 2, 3, 4)))
    again = ShardSampler(COUNTS, seed=5, rank=1, world=2, batch_size=3, lanes=2)
    again.set_epoch(4)
    batch, say = continue_epoch({'epoch': 4, 'batch': 4, 'sampler': record}, again, world=2, per_rank_batch=3,
                                seed=5, source='ckpt', per_epoch=len(full))
    assert say.startswith('epoch 4: resuming after batch 4') and list(again.batches()) == full[4:]
    for world, lanes in ((1, 1), (2, 3), (4, 2)):
        shares = [validation_share(COUNTS, r, world, 2, lanes) for r in range(world)]
        assert sorted(k for share in shares for k in share) == list(range(43))
    assert sorted(epoch_order(COUNTS, 0, 1, False, 2, 2, [3], 4).tolist()) == list(range(43))


@pytest.mark.parametrize('layout', [[1, 2], {'order': 'shards', 'world': 'x'}, {'order': 'files'}])
def test_a_bad_recorded_layout_is_a_one_line_error(layout):
    s = ShardSampler(COUNTS, seed=5, world=2, batch_size=3, lanes=2)
    s.set_epoch(1)
    record = dict(sampler_record(s, 5, 1, 2, 3, 2), layout=layout)
    with pytest.raises(UserError, match='ckpt: epoch 1 '):
        continue_epoch({'epoch': 1, 'batch': 2, 'sampler': record}, s, world=2, per_rank_batch=3, seed=5,
                       source='ckpt', per_epoch=8)
