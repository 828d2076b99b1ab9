"""CPU threads beside the DataLoader workers: measured from the workers' CPU seconds, not assumed."""
import os

import pytest
import torch

from runs import thread_split
from runs.thread_split import ThreadSplit, cpu_seconds, model_threads, worker_pids
from training import cpu_threads


@pytest.mark.parametrize('share,cores,threads', [(2, 0.12, 2), (2, 0.49, 2), (2, 0.6, 1), (2, 1.7, 1), (2, 3.0, 1),
                                                  (8, 2.4, 6), (8, 0.0, 8), (1, 0.9, 1)])
def test_the_model_gets_the_share_less_the_cores_the_workers_used(share, cores, threads):
    assert model_threads(share, cores) == threads


class Worker:
    def __init__(self, pid):
        self.pid = pid


class FakeIterator:
    """A multi-process DataLoader iterator as far as the split looks: ``_workers`` with pids."""

    def __init__(self, n, pids):
        self._workers = [Worker(p) for p in pids]
        self.items = iter(range(n))

    def __iter__(self):
        return self

    def __next__(self):
        return next(self.items)


class FakeLoader:
    def __init__(self, n, workers):
        self.n, self.num_workers = n, workers

    def __iter__(self):
        return FakeIterator(self.n, range(100, 100 + self.num_workers))

    def __len__(self):
        return self.n


class Machine:
    """A clock that moves 0.1 s per batch and workers that use ``load`` cores meanwhile."""

    def __init__(self, load):
        self.load, self.now, self.reads = load, 0.0, []

    def clock(self):
        return self.now

    def cpu(self, pids):
        self.reads.append(list(pids))
        return self.now * self.load


def walk(loader, machine, threads_seen):
    for _ in loader:
        threads_seen.append(torch.get_num_threads())
        machine.now += 0.1


def test_the_first_batches_of_the_first_epoch_measure_the_workers_and_settle_the_threads(capsys):
    before = torch.get_num_threads()
    machine = Machine(load=1.3)
    split = ThreadSplit(3, read_cpu=machine.cpu, clock=machine.clock)
    loader = split.watch(FakeLoader(30, workers=2))
    assert len(loader) == 30 and loader.num_workers == 2
    seen = []
    try:
        walk(loader, machine, seen)
        # the whole share until the workers are as far ahead as they may run (2 workers x prefetch 2 = 4
        # batches, so from the 6th batch) and for the 20 after, then 3 - round(1.3) = 2
        assert seen[:25] == [3] * 25 and seen[25:] == [2] * 5
        assert machine.reads[0] == [100, 101]
        out = capsys.readouterr().out
        assert out == 'CPU threads: 2 for the model (the 2 DataLoader workers used 1.30 of a core over 20 batches)\n'
        machine.load = 0.2
        seen = []
        walk(loader, machine, seen)  # settled: the next epoch keeps the count and measures nothing
        assert seen == [2] * 30 and split.fixed == 2 and capsys.readouterr().out == ''
        assert len(machine.reads) == 3  # the epoch's start, the window's opening and its end
    finally:
        torch.set_num_threads(before)


def test_a_window_ends_after_ten_seconds_or_with_a_short_epoch(capsys, monkeypatch):
    before = torch.get_num_threads()
    machine = Machine(load=0.9)
    split = ThreadSplit(2, read_cpu=machine.cpu, clock=machine.clock)
    try:
        monkeypatch.setattr(thread_split, 'SECONDS', 0.45)
        seen = []
        walk(split.watch(FakeLoader(10, workers=1)), machine, seen)
        assert seen == [2] * 8 + [1] * 2  # the window opens at the 4th batch (1 worker, 2 ahead), ends 0.45 s on
        assert 'the 1 DataLoader worker used 0.90 of a core over 5 batches' in capsys.readouterr().out
        monkeypatch.setattr(thread_split, 'SECONDS', 10.0)
        machine.load = 0.1
        split = ThreadSplit(2, read_cpu=machine.cpu, clock=machine.clock)
        capsys.readouterr()
        walk(split.watch(FakeLoader(4, workers=1)), machine, [])  # shorter than the window: the whole epoch
        assert torch.get_num_threads() == 2
        assert 'used 0.10 of a core over 4 batches' in capsys.readouterr().out
        split = ThreadSplit(2, read_cpu=machine.cpu, clock=machine.clock)
        capsys.readouterr()
        walk(split.watch(FakeLoader(1, workers=1)), machine, [])  # one batch: nothing to measure, nothing said
        assert capsys.readouterr().out == '' and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_no_workers_or_no_proc_keeps_the_whole_share(capsys):
    before = torch.get_num_threads()
    try:
        split = ThreadSplit(2, read_cpu=lambda pids: None)
        walk(split.watch(FakeLoader(4, workers=0)), Machine(0), [])
        assert torch.get_num_threads() == 2
        assert capsys.readouterr().out == 'CPU threads: 2 for the model (no DataLoader workers)\n'
        walk(split.watch(FakeLoader(4, workers=2)), Machine(0), [])
        assert torch.get_num_threads() == 2
        assert capsys.readouterr().out == ''  # the same count: said once
        split = ThreadSplit(2, read_cpu=lambda pids: None)
        walk(split.watch(FakeLoader(4, workers=2)), Machine(0), [])
        assert "workers' CPU use cannot be read here" in capsys.readouterr().out
    finally:
        torch.set_num_threads(before)


def test_an_explicit_count_is_kept_said_and_nothing_is_measured(capsys, monkeypatch):
    monkeypatch.setattr(os, 'sched_getaffinity', lambda pid: {0, 1, 2, 3})
    before = torch.get_num_threads()
    with cpu_threads(torch.device('cpu'), 3, processes=1) as split:
        assert torch.get_num_threads() == 3
        loader = FakeLoader(30, workers=2)
        assert split.watch(loader) is loader  # not wrapped: nothing measured
        assert capsys.readouterr().out == 'CPU threads: 3 for the model (--cpu_threads 3; not measured)\n'
    with cpu_threads(torch.device('cpu'), 0, processes=2, deterministic=True, say=False) as split:
        assert torch.get_num_threads() == 2 and split.fixed == 2  # 4 CPUs over 2 processes, not measured
    with cpu_threads(torch.device('cpu'), 0, processes=1) as split:
        assert torch.get_num_threads() == 4 and split.fixed is None  # the whole share until measured
    assert capsys.readouterr().out == ''
    assert torch.get_num_threads() == before


def test_cpu_seconds_reads_proc_and_the_workers_of_a_real_loader():
    if not os.path.isdir('/proc/self'):
        pytest.skip('no /proc here')
    assert cpu_seconds([os.getpid()]) > 0
    assert cpu_seconds([2 ** 30]) is None  # no such process
    loader = torch.utils.data.DataLoader(list(range(8)), batch_size=2, num_workers=1)
    batches = iter(loader)
    next(batches)
    pids = worker_pids(loader, batches)
    assert len(pids) == 1 and cpu_seconds(pids) >= 0
    del batches
