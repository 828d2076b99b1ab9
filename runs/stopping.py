"""Stopping a run safely: stop signals, DataLoader workers that die, and workers that leave signals to the run.

``StopSignals`` turns SIGTERM/SIGINT into a request the loops answer at their next safe point;
``fetch_batches`` turns a DataLoader worker's death into ``WorkerDied`` between batches, never in
the middle of a step; ``ignore_stop_signals`` is every DataLoader worker's start: a scheduler
(SLURM) signals every process of a job step, and only the main process may act on it
(``signal_safe_worker_init`` gives it, with the exit handler such workers need).
"""
import atexit
import contextlib
import itertools
import multiprocessing
import signal
import threading
from typing import Any, Callable, Dict, Iterable, Iterator, Optional

import torch

from distributed.collectives import any_rank


class WorkerDied(Exception):
    """A DataLoader worker died (killed, crashed) while the next batch was fetched; the message says how."""


def worker_death(e: BaseException) -> Optional[str]:
    """What a fetch error says of a worker's death (killed, crashed, gone mid-handover), or None for other errors."""
    text = ' '.join(str(e).split())
    if 'in DataLoader worker process' in text:  # the dataset's own error, raised again in the main process
        return None
    if isinstance(e, RuntimeError) and 'DataLoader worker' in text and \
            ('exited unexpectedly' in text or 'killed by signal' in text):
        return text
    if isinstance(e, (EOFError, ConnectionError)):  # the worker died while handing a batch over
        return f'a DataLoader worker died while handing over a batch ({type(e).__name__})'
    if isinstance(e, RuntimeError) and 'Pin memory thread exited unexpectedly' in text:  # the same, on a GPU
        return 'the DataLoader\'s pin-memory thread died (a worker died while handing over a batch)'
    return None


def set_aside_sigchld() -> None:
    """SIGCHLD back to its default, setting PyTorch's DataLoader handler aside (``StopSignals`` restores it).

    That handler raises at whatever line the main thread runs when a worker dies, e.g. in the
    middle of an optimizer step or a save, leaving a state no checkpoint can describe. Without
    it PyTorch still finds a dead worker where the next batch is fetched (within seconds).
    """
    if hasattr(signal, 'SIGCHLD') and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)


def fetch_batches(loader: Iterable[Any]) -> Iterator[Any]:
    """``loader``'s batches; a worker's death surfaces here, between batches, as ``WorkerDied``."""
    has_workers = getattr(loader, 'num_workers', 0) > 0
    batches = None
    while True:
        try:
            if batches is None:
                with stop_signals_blocked(has_workers):  # a worker started meanwhile inherits them blocked
                    batches = iter(loader)  # starts (or resumes) the workers; PyTorch sets its SIGCHLD handler
                if has_workers:
                    set_aside_sigchld()
            batch = next(batches)
        except StopIteration:
            return
        except Exception as e:
            died = worker_death(e) if has_workers else None
            if died is None:
                raise
            raise WorkerDied(died) from e
        yield batch


DIED_ELSEWHERE = 'a DataLoader worker died on another rank'  # what the ranks whose workers live are told


def death_anywhere(died_here: Optional[str], device: torch.device) -> Optional[str]:
    """How a DataLoader worker died on this rank, or ``DIED_ELSEWHERE`` if on another, or None (a collective)."""
    return died_here or (DIED_ELSEWHERE if any_rank(died_here is not None, device) else None)


def ignore_stop_signals(worker_id: int = 0) -> None:
    """A DataLoader ``worker_init_fn``: SIGTERM and SIGINT are the main process's to handle, not the worker's
    (ignored, then unblocked: one that arrived while the worker started, blocked, is dropped)."""
    for sig in StopSignals.SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    if hasattr(signal, 'pthread_sigmask'):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, StopSignals.SIGNALS)


def signal_safe_worker_init() -> Callable[[int], None]:
    """``ignore_stop_signals`` as a DataLoader's ``worker_init_fn``, and, in this process, workers killed at exit.

    multiprocessing's own exit handler ends child processes with SIGTERM and then waits for them:
    workers that ignore it would keep a process whose uncaught error left a loader alive (its
    traceback holds it) waiting for ever, a crash turned into a hang. ``_kill_workers`` runs
    first (atexit is last in, first out; registered again on every call, so always the last).
    """
    atexit.unregister(_kill_workers)
    atexit.register(_kill_workers)
    return ignore_stop_signals


def _kill_workers() -> None:
    """SIGKILL this process's daemonic children still running (DataLoader workers; a normal exit has none left)."""
    for child in multiprocessing.active_children():
        if child.daemon:
            child.kill()
            child.join(timeout=5)


@contextlib.contextmanager
def stop_signals_blocked(block: bool = True) -> Iterator[None]:
    """SIGTERM and SIGINT held back while DataLoader workers start (they inherit the mask until their
    ``ignore_stop_signals``): a scheduler's signal at that moment would kill a worker that cannot yet ignore it.
    The main process gets it as soon as the block ends."""
    if not block or not hasattr(signal, 'pthread_sigmask') or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, StopSignals.SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


DEAD_WORKER_HINT = (' (if the system killed the worker for memory, with fewer --n_threads or a smaller '
                    '--batch_size).')


class StopSignals:
    """SIGTERM/SIGINT ask the run to stop at the next safe point, for the run's duration only.

    Used as a context manager: the previous handlers come back on exit. Calling the object
    answers "stop now?"; under ``torch.distributed`` every rank gets the same answer (a
    collective call: all ranks must ask at the same step). ``local()`` asks without talking
    to other ranks, for loops whose length differs between ranks. A second SIGINT raises
    ``KeyboardInterrupt`` at once, for a run stuck where it never checks. The SIGCHLD handler
    that ``set_aside_sigchld`` sets aside during the run comes back on exit too.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, device: Optional[torch.device] = None):
        self.device = device or torch.device('cpu')
        self.signum: Optional[int] = None
        self.previous: Dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if signum == signal.SIGINT and self.signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> 'StopSignals':
        if threading.current_thread() is threading.main_thread():  # handlers can only be set there
            for sig in self.SIGNALS:
                self.previous[sig] = signal.signal(sig, self._handle)
            if hasattr(signal, 'SIGCHLD') and signal.getsignal(signal.SIGCHLD) is not None:
                self.previous[signal.SIGCHLD] = signal.getsignal(signal.SIGCHLD)  # set_aside_sigchld may change it
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
        self.previous.clear()

    def text(self) -> str:
        """'signal 15', or what the other ranks knew when only another rank got the signal."""
        return f'signal {self.signum}' if self.signum is not None else 'a stop signal on another rank'

    def local(self) -> bool:
        """Whether this process got a stop signal."""
        return self.signum is not None

    def __call__(self, flag: Optional[bool] = None) -> bool:
        """Whether any rank got a signal (or passed ``flag`` True); the same answer on every rank."""
        return any_rank(self.local() if flag is None else flag or self.local(), self.device)


class Lockstep:
    """The batches of an evaluation pass, walked in step by every rank; None where this rank has none.

    After each batch ``should_stop(worker_died_here)`` is asked; under distributed it is a
    collective (``StopSignals``), and ``steps`` (the most batches of any rank) makes every rank ask
    as often: a rank whose shard is shorter yields None until the longest is done, and a rank whose
    DataLoader worker died yields None until the others learn it, at the next question. Alone
    (``steps`` None), the pass ends with the batches, or at once when a worker dies.
    """

    def __init__(self, batches: Iterable[Any], steps: Optional[int] = None,
                 should_stop: Optional[Callable[[bool], bool]] = None):
        self.batches, self.steps, self.should_stop = batches, steps, should_stop
        self.interrupted, self.died = False, None  # type: bool, Optional[str]

    def __iter__(self) -> Iterator[Optional[Any]]:
        fetched = iter(self.batches)
        for _ in range(self.steps) if self.steps is not None else itertools.count():
            try:
                batch = next(fetched) if self.died is None else None
            except StopIteration:
                if self.steps is None:
                    return
                batch = None  # this rank's shard is done; it keeps answering until every rank's is
            except WorkerDied as e:
                self.died, batch = str(e), None
            yield batch
            asked = self.should_stop is not None and self.should_stop(self.died is not None)
            if asked or (self.died is not None and self.steps is None):
                self.interrupted = True
                return
