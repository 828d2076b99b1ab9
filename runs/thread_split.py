"""torch's intra-op threads beside the DataLoader workers on a CPU run: measured, not assumed.

A CPU run starts with every CPU of this process's share (``cpu_share``) as torch threads. Over
the first part of its first training epoch ``ThreadSplit`` reads the CPU seconds its DataLoader
workers used (``/proc/<pid>/stat``) against the wall time: from the batch at which the workers
are as far ahead as they may run (they then make one batch for each batch taken), for
``BATCHES`` batches or ``SECONDS`` seconds, whichever comes first; over the whole epoch where it
is too short for that (by its end every batch they made was taken). It
leaves the model ``share - round(cores the workers used)`` threads, at least 1
(``model_threads``), for the rest of the run. The thread count changes the order of
floating-point sums, so it is settled once, saved in the run's checkpoints and reused by a
resume (``recorded``): a resumed run computes as the interrupted one did. An explicit
``--cpu_threads N`` keeps N and measures nothing, and so does ``--deterministic`` (with the full
share): a count that depends on timing makes two runs differ.
"""
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional, Sequence

import torch

from common.processes import available_cpus

BATCHES = 20
SECONDS = 10.0
OPENS_AT = 1  # at the second batch at the earliest: the first step also builds kernels (or compiles the model)


def cpu_share(processes: int = 1) -> int:
    """The CPUs this process may use (its affinity set, else all), shared by ``processes`` per node, at least 1."""
    return max(1, available_cpus() // max(1, processes))


def model_threads(share: int, loader_cores: float) -> int:
    """The torch threads left beside DataLoader workers that keep ``loader_cores`` cores busy."""
    return max(1, share - round(loader_cores))


def cpu_seconds(pids: Sequence[int], proc: Path = Path('/proc')) -> Optional[float]:
    """User + system CPU seconds of the processes (all their threads), or None where ``/proc`` cannot tell."""
    tick = os.sysconf('SC_CLK_TCK') if hasattr(os, 'sysconf') else 100
    total = 0.0
    for pid in pids:
        try:
            stat = (proc / str(pid) / 'stat').read_text()
        except OSError:
            return None
        fields = stat[stat.rindex(')') + 2:].split()  # after the command name, which may hold spaces
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime: fields 14 and 15 of proc(5)
    return total


def worker_pids(loader: Any, batches: Any) -> List[int]:
    """The process ids of the workers behind ``batches`` (an iterator of ``loader``), or of a wrapped
    loader's (``datasets.device_decode.DeviceDecoding``: its ``loader``'s persistent iterator)."""
    source = batches if hasattr(batches, '_workers') else getattr(getattr(loader, 'loader', None), '_iterator', None)
    return [w.pid for w in getattr(source, '_workers', None) or [] if w.pid is not None]


class ThreadSplit:
    """Sets torch's intra-op threads of a CPU run; ``watch(loader)`` measures that loader's workers.

    ``fixed``: a thread count to keep (nothing measured); ``why`` says where it came from in the
    line printed (``say``: True on the process that prints).
    """

    def __init__(self, share: int, fixed: Optional[int] = None, why: str = '', say: bool = True,
                 read_cpu: Callable[[Sequence[int]], Optional[float]] = cpu_seconds,
                 clock: Callable[[], float] = time.perf_counter):
        self.share, self.fixed, self.say = share, fixed, say
        self.read_cpu, self.clock = read_cpu, clock
        self.threads = fixed or share
        self.told: Optional[int] = None  # the count the last printed line gave
        torch.set_num_threads(self.threads)
        if fixed is not None:
            self.tell(f'CPU threads: {fixed} for the model ({why}; not measured)', fixed)

    def tell(self, line: str, threads: int) -> None:
        """Print ``line`` once per new count."""
        if self.say and threads != self.told:
            print(line, flush=True)
        self.told = threads

    def set(self, threads: int) -> None:
        """torch's intra-op threads from now on."""
        self.threads = threads
        torch.set_num_threads(threads)

    def watch(self, loader: Optional[Any]) -> Optional[Any]:
        """``loader`` with each epoch (each pass over it) measured, or as it is when the count is fixed (or None)."""
        return loader if self.fixed is not None or loader is None else WatchedLoader(loader, self)

    def decide(self, workers: int, cores: Optional[float], batches: int) -> int:
        """Set and say the count for ``cores`` used by ``workers`` workers over ``batches`` batches (None: unknown)."""
        if workers == 0:
            threads, why = self.share, 'no DataLoader workers'
        elif cores is None:
            threads, why = self.share, "the DataLoader workers' CPU use cannot be read here"
        else:
            threads = model_threads(self.share, cores)
            why = f'the {workers} DataLoader worker{"s" * (workers != 1)} used {cores:.2f} of a core over ' \
                  f'{batches} batch{"es" * (batches != 1)}'
        self.set(threads)
        self.fixed = threads  # settled for the run
        self.tell(f'CPU threads: {threads} for the model ({why})', threads)
        return threads


class WatchedLoader:
    """A loader whose passes start at the full share of threads and end their first part with ``decide``."""

    def __init__(self, loader: Any, split: ThreadSplit):
        self.loader, self.split = loader, split

    def __iter__(self) -> Iterator[Any]:
        batches = iter(self.loader)  # now, not at the first batch: the caller may act on the started workers
        if self.split.fixed is not None:  # settled in an earlier epoch
            return batches
        self.split.set(self.split.share)
        return self._measured(batches)

    def _measured(self, batches: Iterator[Any]) -> Iterator[Any]:
        """The batches, measured: over a steady window (the workers as far ahead as they may run, so one
        batch made per batch taken) or, for an epoch too short to have one, over the whole epoch (every
        batch made was taken by its end)."""
        split, workers = self.split, int(getattr(self.loader, 'num_workers', 0))
        ahead = workers * int(getattr(self.loader, 'prefetch_factor', None) or 2)  # batches made before taken
        opens = max(OPENS_AT, ahead + 1)
        pids = worker_pids(self.loader, batches)
        cpu = split.read_cpu(pids) if pids else None
        epoch = None if cpu is None else (split.clock(), cpu)  # from the workers' start
        window: Optional[tuple] = None  # (clock, the workers' CPU seconds) where it opened, while it is open
        taken = 0
        for index, batch in enumerate(batches):
            if index == opens and split.fixed is None and epoch is not None:
                cpu = split.read_cpu(pids)
                window = None if cpu is None else (split.clock(), cpu)  # None: a worker gone; the epoch's measure
            elif window is not None and (index - opens >= BATCHES or split.clock() - window[0] >= SECONDS):
                self._decide(pids, window, index - opens)
                window = None
            taken = index + 1
            yield batch
        if split.fixed is None:
            if epoch is None:  # nothing to measure: no workers, or no /proc
                split.decide(workers, None, 0)
            elif taken > 1:  # one batch says nothing of the steady cost: the next epoch measures
                self._decide(pids, epoch, taken)

    def _decide(self, pids: List[int], window: tuple, trained: int) -> None:
        """Settle the count on the workers' CPU seconds since ``window`` opened (clock, CPU seconds then)."""
        now = self.split.read_cpu(pids)
        cores = None if now is None else (now - window[1]) / max(self.split.clock() - window[0], 1e-9)
        self.split.decide(len(pids), cores, trained)

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)  # num_workers, sampler, dataset, ...
