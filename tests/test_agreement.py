"""One agreement per step: what one rank knows, every rank acts on at the same batch, and no rank waits out a timeout.

Two real processes (torch.multiprocessing + gloo) run ``training.train_epoch`` on a DDP model, and one of them
meets a fault the other does not: a batch that cannot train, a dead DataLoader worker, a non-finite loss, a
failed save on rank 0. Each must end the same way on both ranks within seconds (the collective timeout is 60 s).
"""
import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

from common.errors import UserError
from distributed.agreement import Step, agree, on_rank_zero
from distributed.launch import end_process_group
from runs.stopping import WorkerDied
from training import NonFiniteLossError, train_epoch

BATCHES = 6


def batch(n: int, seed: int) -> dict:
    """A batch of ``n`` random clips (None: every video failed)."""
    g = torch.Generator().manual_seed(seed)
    return {'clip': torch.randint(0, 255, (n, 3, 2, 4, 4), dtype=torch.uint8, generator=g) if n else None,
            'label': torch.arange(n) % 3, 'bad_frames': 0, 'failed': [] if n else [('v', 'unreadable')]}


class Loader:
    """Batches of one rank; ``fault`` at batch ``at``: 'empty' (no clip), 'died' (a worker died before it)."""

    def __init__(self, rank: int, fault: str, at: int):
        self.rank, self.fault, self.at = rank, fault, at

    def __len__(self) -> int:
        return BATCHES

    def __iter__(self):
        for i in range(1, BATCHES + 1):
            if self.rank == 1 and i == self.at and self.fault.startswith('died'):
                raise WorkerDied('DataLoader worker (pid 1234) is killed by signal: Killed.')
            empty = self.rank == 1 and i == self.at and 'empty' in self.fault
            yield batch(0 if empty else 2, 10 * self.rank + i)


class NanOnRank1(nn.Module):
    """Cross-entropy, NaN on rank 1's batch ``at``."""

    def __init__(self, rank: int, at: int):
        super().__init__()
        self.rank, self.at, self.calls = rank, at, 0

    def forward(self, logits, y):
        self.calls += 1
        loss = nn.functional.cross_entropy(logits, y)
        return loss * float('nan') if self.rank == 1 and self.calls == self.at else loss


def _run(rank: int, init: str, out: str, fault: str, at: int) -> None:
    dist.init_process_group('gloo', init_method=init, rank=rank, world_size=2, timeout=timedelta(seconds=60))
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 2 * 4 * 4, 3))
    model = nn.parallel.DistributedDataParallel(net, broadcast_buffers=False)
    reductions, forwards = [], []
    net.register_forward_hook(lambda *_: forwards.append(1))

    def counted(state, bucket):  # DDP's gradient all-reduce, counted
        reductions.append(1)
        return allreduce_hook(None, bucket)
    model.register_comm_hook(None, counted)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    steps = []
    step = optimizer.step
    optimizer.step = lambda *a, **k: (steps.append(1), step(*a, **k))[1]
    criterion = NanOnRank1(rank, 3) if fault == 'nan' else nn.CrossEntropyLoss()
    started, result = time.monotonic(), {}
    try:
        if fault == 'save':
            def save():
                raise UserError('/results/save_latest.pth: not written (No space left on device)')
            on_rank_zero(save, rank)
        t = train_epoch(1, Loader(rank, fault, at), model, criterion, optimizer, torch.device('cpu'),
                        lambda x: x.float(), accumulate_steps=2 if fault.startswith('accumulate') else 1,
                        stop_requested=(lambda: rank == 1) if fault == 'stop' else None, show_progress=False)
        result = {k: t[k] for k in ('clips', 'interrupted', 'batches_done', 'worker_died')}
    except (NonFiniteLossError, UserError) as e:
        result = {'error': str(e)}
    result.update(seconds=time.monotonic() - started, steps=len(steps), reductions=len(reductions), forwards=len(forwards),
                  weight=float(net[1].weight.double().sum()))
    Path(out, f'rank{rank}.json').write_text(json.dumps(result))
    del model  # the DDP model goes before the process group, as main.py's does (distributed.launch)
    end_process_group()


def run_both(tmp_path: Path, fault: str, at: int = 3) -> list:
    mp.spawn(_run, args=(f'file://{tmp_path / "init"}', str(tmp_path), fault, at), nprocs=2, join=True)
    return [json.loads((tmp_path / f'rank{r}.json').read_text()) for r in range(2)]


@pytest.mark.parametrize('at', [2, 3])  # 2: the forward in which DDP rebuilds its buckets (a broadcast)
def test_a_batch_that_cannot_train_on_one_rank_is_skipped_by_both(tmp_path, at):
    zero, one = run_both(tmp_path, 'empty', at)
    assert zero['steps'] == one['steps'] == BATCHES - 1  # batch 3 skipped by both: no gradient all-reduce waits
    assert zero['weight'] == one['weight'] and not zero['interrupted'] and zero['clips'] == 2 * (BATCHES - 1)
    # DDP's forward may hold a collective (its bucket rebuild, SyncBatchNorm): rank 0 does not enter the skipped one
    assert zero['forwards'] == BATCHES - 1
    assert max(zero['seconds'], one['seconds']) < 30


@pytest.mark.parametrize('at', [2, 3])
def test_a_dead_worker_on_one_rank_stops_both_at_the_same_settled_batch(tmp_path, at):
    zero, one = run_both(tmp_path, 'died', at)
    assert zero['interrupted'] and one['interrupted'] and zero['batches_done'] == one['batches_done'] == at - 1
    assert 'killed by signal' in one['worker_died'] and 'another rank' in zero['worker_died']
    assert zero['steps'] == one['steps'] == at - 1 and zero['weight'] == one['weight']
    assert zero['forwards'] == at - 1  # nobody forwards the batch the dead worker never delivered


def test_a_non_finite_loss_on_one_rank_stops_both_with_the_same_error(tmp_path):
    zero, one = run_both(tmp_path, 'nan')
    assert 'batch 3: the loss is nan' in one['error']
    assert 'batch 3: the loss is not finite on another rank' in zero['error']
    assert zero['steps'] == one['steps'] == 2 and zero['weight'] == one['weight']


def test_a_stop_signal_on_one_rank_stops_both(tmp_path):
    zero, one = run_both(tmp_path, 'stop')
    assert zero['interrupted'] and one['interrupted'] and zero['batches_done'] == one['batches_done'] == 1


def test_a_failed_save_on_rank_zero_ends_every_rank_with_its_line(tmp_path):
    zero, one = run_both(tmp_path, 'save')
    assert zero['error'] == one['error'] == '/results/save_latest.pth: not written (No space left on device)'


def test_gradient_accumulation_syncs_on_step_boundaries_only(tmp_path):
    zero, one = run_both(tmp_path, 'accumulate')
    assert zero['steps'] == one['steps'] == BATCHES // 2 and zero['weight'] == one['weight']
    assert zero['reductions'] == one['reductions'] == BATCHES // 2  # micro-steps under no_sync: no all-reduce


def test_a_skipped_step_boundary_still_averages_what_the_micro_steps_accumulated(tmp_path):
    """accumulate 2, rank 1's batch 4 (a boundary) has no clip: both skip it, and step batch 3's gradients
    averaged over the ranks, not each rank's own (the replicas would part for good)."""
    zero, one = run_both(tmp_path, 'accumulate, empty', 4)
    assert zero['steps'] == one['steps'] == BATCHES // 2 and zero['weight'] == one['weight']


def test_agreement_is_the_identity_in_one_process():
    assert agree(Step(skip=True, save=True), torch.device('cpu')) == Step(skip=True, save=True)
    with pytest.raises(UserError, match='full'):
        on_rank_zero(lambda: (_ for _ in ()).throw(UserError('disk full')), 0)
    assert on_rank_zero(lambda: 7, 0) == 7


class ValLoader(Loader):
    """A rank's validation batches: rank 0 has one more than rank 1 (shards of unequal size)."""

    def __len__(self) -> int:
        return BATCHES + (1 if self.rank == 0 else 0)

    def __iter__(self):
        for i in range(1, len(self) + 1):
            if self.rank == 1 and i == self.at and self.fault == 'died':
                raise WorkerDied('DataLoader worker (pid 1234) is killed by signal: Killed.')
            yield dict(batch(2, 10 * self.rank + i), video_id=[f'r{self.rank}b{i}c{j}' for j in range(2)])


def _validate(rank: int, init: str, out: str, fault: str) -> None:
    from distributed.collectives import max_over_ranks
    from runs.stopping import StopSignals
    from validation import val_epoch
    dist.init_process_group('gloo', init_method=init, rank=rank, world_size=2, timeout=timedelta(seconds=60))
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 2 * 4 * 4, 3))
    loader = ValLoader(rank, fault, 2)
    started = time.monotonic()
    with StopSignals() as stop:
        steps = int(max_over_ranks(len(loader), torch.device('cpu')))
        v = val_epoch(1, loader, net, nn.CrossEntropyLoss(), torch.device('cpu'), lambda x: x.float(),
                      show_progress=False, should_stop=stop, steps=steps)
        both = stop(v['interrupted'])  # main.py's next collective
    result = {k: v[k] for k in ('clips', 'interrupted', 'worker_died')}
    result.update(both=both, seconds=time.monotonic() - started)
    Path(out, f'rank{rank}.json').write_text(json.dumps(result))
    dist.destroy_process_group()


@pytest.mark.parametrize('fault', ['none', 'died'])
def test_validation_shards_of_unequal_length_and_a_dead_worker_on_one_rank(tmp_path, fault):
    mp.spawn(_validate, args=(f'file://{tmp_path / "init"}', str(tmp_path), fault), nprocs=2, join=True)
    zero, one = [json.loads((tmp_path / f'rank{r}.json').read_text()) for r in range(2)]
    if fault == 'none':  # the shorter shard's rank keeps agreeing until the longer one is done: no hang
        assert (zero['clips'], one['clips']) == (2 * (BATCHES + 1), 2 * BATCHES) and not zero['both']
    else:  # both stop at the step the worker died, not at the end of rank 0's pass or a timeout
        assert zero['interrupted'] and one['interrupted'] and zero['both'] and one['both']
        assert (zero['clips'], one['clips']) == (4, 2) and 'killed' in one['worker_died'] and not zero['worker_died']
    assert max(zero['seconds'], one['seconds']) < 30


def test_inference_stops_on_a_dead_worker_and_says_how():
    import inference
    batches = ({**b, 'segment': [(0, 4)] * 2} for b in ValLoader(1, 'died', 2))  # a worker dies before batch 2
    with pytest.raises(inference.Interrupted) as stopped:
        inference.infer(batches, nn.Sequential(nn.Flatten(), nn.Linear(3 * 2 * 4 * 4, 3)), torch.device('cpu'),
                        lambda x: x.float(), show_progress=False, should_stop=lambda died_here: died_here, steps=7)
    assert 'killed by signal' in stopped.value.died
