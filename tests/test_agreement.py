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
            empty = self.rank == 1 and i == self.at and self.fault.startswith('empty')
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


def _run(rank: int, init: str, out: str, fault: str) -> None:
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
        t = train_epoch(1, Loader(rank, fault, 3), model, criterion, optimizer, torch.device('cpu'),
                        lambda x: x.float(), accumulate_steps=2 if fault == 'accumulate' else 1,
                        stop_requested=(lambda: rank == 1) if fault == 'stop' else None, show_progress=False,
                        forward_collectives=fault.endswith('forward collectives'))
        result = {k: t[k] for k in ('clips', 'interrupted', 'batches_done', 'worker_died')}
    except (NonFiniteLossError, UserError) as e:
        result = {'error': str(e)}
    result.update(seconds=time.monotonic() - started, steps=len(steps), reductions=len(reductions), forwards=len(forwards),
                  weight=float(net[1].weight.double().sum()))
    Path(out, f'rank{rank}.json').write_text(json.dumps(result))
    dist.destroy_process_group()


def run_both(tmp_path: Path, fault: str) -> list:
    mp.spawn(_run, args=(f'file://{tmp_path / "init"}', str(tmp_path), fault), nprocs=2, join=True)
    return [json.loads((tmp_path / f'rank{r}.json').read_text()) for r in range(2)]


@pytest.mark.parametrize('fault', ['empty', 'empty, forward collectives'])
def test_a_batch_that_cannot_train_on_one_rank_is_skipped_by_both(tmp_path, fault):
    zero, one = run_both(tmp_path, fault)
    assert zero['steps'] == one['steps'] == BATCHES - 1  # batch 3 skipped by both: no gradient all-reduce waits
    assert zero['weight'] == one['weight'] and not zero['interrupted'] and zero['clips'] == 2 * (BATCHES - 1)
    # with collectives in the forward pass (SyncBatchNorm) rank 0 does not even enter the skipped batch's
    assert zero['forwards'] == (BATCHES - 1 if 'forward collectives' in fault else BATCHES)
    assert max(zero['seconds'], one['seconds']) < 30


@pytest.mark.parametrize('fault', ['died', 'died, forward collectives'])
def test_a_dead_worker_on_one_rank_stops_both_at_the_same_settled_batch(tmp_path, fault):
    zero, one = run_both(tmp_path, fault)
    assert zero['interrupted'] and one['interrupted'] and zero['batches_done'] == one['batches_done'] == 2
    assert 'killed by signal' in one['worker_died'] and 'another rank' in zero['worker_died']
    assert zero['steps'] == one['steps'] == 2 and zero['weight'] == one['weight']


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


def test_agreement_is_the_identity_in_one_process():
    assert agree(Step(skip=True, save=True), torch.device('cpu')) == Step(skip=True, save=True)
    with pytest.raises(UserError, match='full'):
        on_rank_zero(lambda: (_ for _ in ()).throw(UserError('disk full')), 0)
    assert on_rank_zero(lambda: 7, 0) == 7
