"""A preempted epoch is a prefix of its order: the same ranks continue it exactly, other ranks re-shard the rest;
a video that fails is replaced from the same rank's share, the same way on every run."""
import itertools

import pytest

from datasets.samplers import EpochSampler, epoch_length, sample_seed, with_fallbacks


def shares(n, world, batch, epoch=3, seed=7):
    samplers = [EpochSampler(n, seed=seed, rank=r, world=world, batch_size=batch) for r in range(world)]
    for s in samplers:
        s.set_epoch(epoch)
    return samplers


@pytest.mark.parametrize('n,world,batch,done_batches,new_world,new_batch', [
    (16, 2, 2, 2, 1, 4), (16, 2, 2, 3, 1, 2), (17, 2, 2, 1, 3, 2), (40, 4, 3, 2, 2, 5), (9, 1, 4, 1, 2, 2),
    (10, 2, 2, 3, 1, 4), (12, 2, 3, 2, 4, 1)])
def test_the_rest_of_an_epoch_on_another_topology_trains_each_sample_once(n, world, batch, done_batches, new_world,
                                                                          new_batch):
    before = shares(n, world, batch)
    done = [i for s in before for i in s.indices()[:done_batches * batch]]
    assert sorted(done) == sorted(s for s in before[0]._order()[:len(done)]) or len(done) > n  # a prefix of the order
    samples_done = before[0].samples_done(done_batches)
    assert samples_done == len(done)
    after = shares(n, new_world, new_batch)
    for s in after:
        s.rest_from(samples_done)
    rest = [i for s in after for i in s.indices()]
    unique_rest = set(rest)
    assert unique_rest.isdisjoint(done) or samples_done >= n
    assert set(done) | unique_rest == set(range(n))  # every sample of the epoch, once before or once after
    remaining = max(0, n - samples_done)  # only the padding repeats, by the rule of a fresh epoch
    assert len(unique_rest) == remaining and len(rest) == epoch_length(remaining, new_world, new_batch) * new_world
    for s in after:  # no rank's last batch is a single clip
        assert new_batch == 1 or len(s) % new_batch != 1
        assert len(s) == epoch_length(max(0, n - samples_done), new_world, new_batch)


def test_the_same_topology_continues_exactly_where_it_stopped():
    for s, fresh in zip(shares(21, 3, 2), shares(21, 3, 2)):
        s.set_start(4)
        assert list(s) == list(fresh)[4:]  # items, seeds and fallbacks alike
        assert s.samples_done(2) == 4 * 3 + 2 * 2 * 3


def test_a_failed_video_takes_the_first_good_fallback_of_its_share_deterministically(recwarn):
    broken = {3, 5}

    def get(item):
        index, seed = item[:2] if isinstance(item, tuple) else (item, None)
        return {'failed': f'v{index}: unreadable', 'video_id': f'v{index}'} if index in broken else \
            {'clip': (index, seed), 'video_id': f'v{index}'}
    sampler = shares(12, 2, 2)[1]
    items = list(sampler)
    mine = sampler.indices()
    assert all(set(fallbacks) <= set(mine) and item not in fallbacks for item, _, fallbacks in items)
    for item in items:
        sample = with_fallbacks(get, item)
        assert 'failed' not in sample
        if item[0] in broken:
            first_good = next(f for f in item[2] if f not in broken)
            k = item[2].index(first_good) + 1
            assert sample['clip'] == (first_good, sample_seed(item[1], k, first_good))
            assert sample['replaced'] == [(f'v{item[0]}', f'v{item[0]}: unreadable')]  # counted once, here
        else:
            assert 'replaced' not in sample
    assert with_fallbacks(get, items[0]) == with_fallbacks(get, items[0])
    faults = [str(w.message) for w in recwarn]
    assert len(faults) == len([i for i, *_ in items if i in broken])
    assert with_fallbacks(get, 3)['failed'] == 'v3: unreadable'  # no fallbacks (validation): it leaves the batch


def test_every_fallback_failing_leaves_the_video_out():
    get = lambda item: {'failed': 'x: unreadable', 'video_id': 'x'}  # noqa: E731
    assert with_fallbacks(get, (1, 5, (2, 3)))['failed'] == 'x: unreadable'


def test_fallbacks_never_name_the_item_itself_and_stay_few():
    for n, world in itertools.product((1, 2, 3, 9), (1, 2)):
        for s in shares(n, world, 2):
            for index, _, fallbacks in s:
                assert len(fallbacks) <= 4 and (index not in fallbacks or len(set(s.indices())) < len(s.indices()))


def test_each_rank_restores_its_own_random_states():
    """Rank 1 of a resumed run continues its own generators (dropout masks), not rank 0's."""
    import torch
    import torch.nn as nn

    from runs.run_state import RunState, rng_state
    model = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    state = RunState(model, {'model': 'resnet', 'model_depth': 10}, optimizer,
                     torch.optim.lr_scheduler.MultiStepLR(optimizer, [5]), None, preprocessing={}, class_names=None,
                     ft_begin_module='', multilabel=False, pretext='')
    torch.manual_seed(0)
    rank0 = rng_state()
    torch.manual_seed(1)
    rank1 = rng_state()
    ckpt = {'state_dict': model.state_dict(), 'epoch': 1, 'rng_state': rank0, 'rank_rng_states': [rank0, rank1]}
    for rank, world, expected in ((1, 2, rank1), (0, 2, rank0), (1, 3, rank0)):  # another world: rank 0's, as before
        torch.manual_seed(99)
        state.restore(ckpt, 'ckpt', training=True, rank=rank, world=world)
        assert torch.equal(torch.get_rng_state(), expected['torch'])
