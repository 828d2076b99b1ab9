"""One training epoch: uint8 clips to the device, normalise there, forward, loss, backward, step.

Targets are class indices (cross-entropy) or multi-hot vectors (``--multilabel``, BCE); the
accuracy column is the share of clips whose top-scoring class is (one of) their label(s).

``train_epoch`` returns the epoch's metrics (mean loss and clip accuracy, learning rate,
throughput, data-wait share, data faults); per-batch rows go to ``batch_log``. Everything
that decides *what* to train (freezing, optimizer, schedule, checkpoints) lives in main.py.

A DataLoader worker that dies (the OOM killer, a crashing decoder) ends the epoch like a
stop signal, at the last point where no gradient was pending, with ``worker_died`` saying
why: the caller saves that position and the run resumes from it exactly. The death is
noticed where a batch is fetched (``fetch_batches``), never in the middle of a step.
"""
import contextlib
import math
import os
import signal
import threading
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional

import torch
import torch.nn as nn

from common.faults import report_fault
from common.progress import progress
from distributed.collectives import any_rank
from models.precision import autocast
from preprocessing import to_device


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite: training stops, the last good checkpoint stays."""


class MultiLabelLoss(nn.Module):
    """Binary cross-entropy on per-class sigmoids; ``smoothing`` pulls targets towards 1/2."""

    def __init__(self, smoothing: float = 0.0):
        super().__init__()
        self.smoothing = smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean BCE over clips and classes."""
        target = target * (1 - self.smoothing) + 0.5 * self.smoothing
        return nn.functional.binary_cross_entropy_with_logits(logits, target)


def count_hits(logits: torch.Tensor, y: torch.Tensor) -> int:
    """Clips whose top-scoring class is right (multi-label: is one of their labels).

    An output per time step (N x classes x T: ``--model lstm`` in training) counts its last step's.
    """
    if logits.dim() == 3:
        logits = logits[..., -1]
    top = logits.argmax(1)
    if y.dim() == 2:
        return int((y.gather(1, top[:, None]) > 0).sum())
    return int((top == y).sum())


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


def set_frozen_eval(modules: Iterable[nn.Module]) -> None:
    """Keep frozen modules in eval mode so their BatchNorm statistics do not move."""
    for m in modules:
        m.eval()


def forward_unless_one_clip(model: nn.Module, x: torch.Tensor, where: str) -> Optional[torch.Tensor]:
    """The model's output, or None (with a warning) for a batch that unreadable videos left with one
    clip whose BatchNorm statistics cannot be computed (the sampler never makes such a batch itself)."""
    try:
        return model(x)
    except ValueError as e:
        if len(x) != 1 or 'more than 1 value per channel' not in str(e):
            raise
        report_fault(f'{where}: one clip left after unreadable videos; BatchNorm cannot train on a '
                     'single clip at this size, so the batch is skipped')
        return None


def train_epoch(epoch: int, loader: Iterable[Dict[str, Any]], model: nn.Module, criterion: nn.Module,
                optimizer: torch.optim.Optimizer, device: torch.device, normalize: Callable, *,
                frozen: Iterable[nn.Module] = (), scaler: Optional[torch.amp.GradScaler] = None,
                amp_dtype: Optional[torch.dtype] = None, channels_last: bool = False,
                accumulate_steps: int = 1, batch_log: Optional[Callable[[List[Any]], None]] = None,
                iter_offset: int = 0, before_step: Optional[Callable[[int], None]] = None,
                should_stop: Optional[Callable[[], bool]] = None, start_batch: int = 0,
                carried: Optional[Dict[str, float]] = None, show_progress: bool = True) -> Dict[str, Any]:
    """Train for one pass over ``loader``; return loss, acc, lr, clips/s, data-wait share and faults.

    ``should_stop`` is asked after every optimizer step (preemption): if it says so, the
    epoch ends there with ``interrupted`` set and ``batches_done`` counted. A resumed epoch
    passes the batches already done (``start_batch``) and their sums (``carried``).
    """
    model.train()
    set_frozen_eval(frozen)
    c = carried or {}
    total_loss, correct, seen = c.get('loss_sum', 0.0), int(c.get('correct', 0)), int(c.get('clips', 0))
    bad_frames, failed = int(c.get('bad_frames', 0)), int(c.get('failed_videos', 0))
    wait, start = 0.0, time.perf_counter()
    seen_at_start = seen
    n_batches = start_batch + len(loader) if hasattr(loader, '__len__') else None
    batches = fetch_batches(loader)
    bar = progress(batches, total=n_batches, initial=start_batch, desc=f'epoch {epoch} train',
                   enabled=show_progress)
    optimizer.zero_grad(set_to_none=True)
    tick = time.perf_counter()
    interrupted, done, pending, died = False, start_batch, False, None
    settled = (done, total_loss, correct, seen, bad_frames, failed)  # the last point with no gradient pending
    try:
        for i, batch in enumerate(bar, start_batch + 1):
            wait += time.perf_counter() - tick
            bad_frames += batch['bad_frames']
            failed += len(batch['failed'])
            done = i
            loss = None  # stays None for a batch whose videos all failed, or that was left with one clip
            if batch['clip'] is not None:
                x = to_device(batch['clip'], device, normalize, channels_last)
                y = batch['label'].to(device, non_blocking=True)
                with autocast(device, amp_dtype):
                    logits = forward_unless_one_clip(model, x, f'epoch {epoch}, batch {i}')
                    loss = criterion(logits.float(), y) if logits is not None else None
            if loss is not None:
                loss_value = loss.item()  # one device sync per batch, reused below
                if not math.isfinite(loss_value):
                    raise NonFiniteLossError(f'epoch {epoch}, batch {i}: the loss is {loss_value}')
                scaled = loss / accumulate_steps
                (scaler.scale(scaled) if scaler is not None else scaled).backward()
                pending = True
            # a step boundary steps whatever the batch held, so gradients never carry past it
            if pending and (i % accumulate_steps == 0 or i == n_batches):
                if before_step is not None:  # e.g. the warm-up's learning rate for this iteration
                    before_step(iter_offset + i)
                if scaler is not None:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                pending = False
            if loss is not None:
                n = y.shape[0]
                batch_correct = count_hits(logits, y)
                total_loss += loss_value * n
                correct += batch_correct
                seen += n
                lr = max(g['lr'] for g in optimizer.param_groups)
                if batch_log is not None:
                    batch_log([epoch, i, iter_offset + i, loss_value, batch_correct / n, lr])
                elapsed = time.perf_counter() - start
                bar.set_postfix({'loss': f'{total_loss / seen:.3f}', 'acc': f'{correct / seen:.3f}',
                                 'clips/s': f'{(seen - seen_at_start) / elapsed:.1f}',
                                 'data wait': f'{wait / elapsed:.0%}'})
            if not pending:
                settled = (done, total_loss, correct, seen, bad_frames, failed)
            # asked at every step boundary, whatever the batch held: under torchrun it is a collective
            if i % accumulate_steps == 0 and should_stop is not None and should_stop():
                interrupted = True
                break
            tick = time.perf_counter()
    except WorkerDied as e:
        died, interrupted = str(e), True
        done, total_loss, correct, seen, bad_frames, failed = settled
    finally:
        batches.close()
    bar.close()
    elapsed = time.perf_counter() - start
    return {
        'loss_sum': total_loss, 'correct': correct, 'clips': seen,
        'loss': total_loss / max(seen, 1), 'acc': correct / max(seen, 1),
        'lr': max(g['lr'] for g in optimizer.param_groups),
        'clips_per_s': (seen - seen_at_start) / max(elapsed, 1e-9), 'data_wait': wait / max(elapsed, 1e-9),
        'bad_frames': bad_frames, 'failed_videos': failed, 'batches': n_batches or 0,
        'interrupted': interrupted, 'batches_done': done, 'worker_died': died,
    }


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

    def local(self) -> bool:
        """Whether this process got a stop signal."""
        return self.signum is not None

    def __call__(self, flag: Optional[bool] = None) -> bool:
        """Whether any rank got a signal (or passed ``flag`` True); the same answer on every rank."""
        return any_rank(self.local() if flag is None else flag or self.local(), self.device)


def warmup(optimizer: torch.optim.Optimizer, base_lrs: List[float], steps: int) -> Callable[[int], None]:
    """A ``before_step`` hook: learning rate base * (iteration / steps) for the first ``steps`` iterations."""
    def set_lr(iteration: int) -> None:
        if iteration <= steps:
            for group, base in zip(optimizer.param_groups, base_lrs):
                group['lr'] = base * iteration / steps
    return set_lr


class PerStepLoss(nn.Module):
    """``loss`` of N x classes logits, or of N x classes x T (one prediction per time step, ``--model
    lstm`` in training): then the clip's target is every step's and the loss is the mean over the steps."""

    def __init__(self, loss: nn.Module):
        super().__init__()
        self.loss = loss

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The wrapped loss, with ``target`` (N class indices, or N x classes multi-hot) repeated over T."""
        if logits.dim() == 3:
            target = target.unsqueeze(-1).expand(*target.shape, logits.shape[-1])
        return self.loss(logits, target)


def criterion_for(multilabel: bool, label_smoothing: float = 0.0) -> nn.Module:
    """Cross-entropy, or BCE on sigmoids for ``--multilabel`` (both with ``--label_smoothing``), of
    one prediction per clip or (``PerStepLoss``) the mean over the steps of one per time step."""
    if multilabel:
        return PerStepLoss(MultiLabelLoss(label_smoothing))
    return PerStepLoss(nn.CrossEntropyLoss(label_smoothing=label_smoothing))


@contextlib.contextmanager
def cpu_threads(device: torch.device, requested: int, workers: int, processes: int = 1) -> Iterator[int]:
    """torch's intra-op threads for a CPU run, restored afterwards (nothing changes on a GPU).

    ``requested`` 0 takes the CPUs this process may use, shared by ``processes`` per node,
    minus its ``workers`` DataLoader workers (each decodes on a core of its own), at least 1:
    on a 2-core machine with 2 workers, 2 compute threads beside them more than halve the
    training speed (docs/benchmarks.md, CPU threads).
    """
    previous = torch.get_num_threads()
    if device.type == 'cpu':
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else (os.cpu_count() or 1)
        torch.set_num_threads(requested or max(1, cpus // max(1, processes) - workers))
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)
