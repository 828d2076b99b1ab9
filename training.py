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
import itertools
import math
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

import torch
import torch.nn as nn

from common.faults import report_fault
from common.progress import progress
from distributed.agreement import Step, agree
from models.precision import autocast
from preprocessing import to_device
from runs.stopping import DIED_ELSEWHERE, WorkerDied, fetch_batches
from runs.thread_split import ThreadSplit, cpu_share


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
                stop_requested: Optional[Callable[[], bool]] = None,
                checkpoint_due: Optional[Callable[[], bool]] = None,
                on_checkpoint: Optional[Callable[[int, Dict[str, float]], None]] = None, start_batch: int = 0,
                carried: Optional[Dict[str, float]] = None, show_progress: bool = True,
                lr_factor: Optional[Callable[[int], float]] = None) -> Dict[str, Any]:
    """Train for one pass over ``loader``; return loss, acc, lr, clips/s, data-wait share and faults.

    Every batch ends in one agreement of all ranks (``distributed.agreement``): a batch that
    cannot train on any rank is skipped by all; a stop signal on any rank (``stop_requested``:
    this process's) ends the epoch on all at the next settled batch, with ``interrupted`` set and
    ``batches_done`` counted; a dead DataLoader worker or a non-finite loss on any rank ends it on
    all at once, at the last settled batch. ``lr_factor(i)`` scales the learning rate of the step
    that ends batch ``i`` (``datasets.multigrid``: the linear scaling rule for its batch's size). ``checkpoint_due`` (rank 0's clock) makes every rank
    call ``on_checkpoint(batches_done, this rank's sums)`` at the next settled batch. A resumed
    epoch passes the batches already done (``start_batch``) and their sums (``carried``).
    Under DDP a first agreement comes before the forward pass: DDP's forward may itself talk to the
    other ranks (its bucket rebuild after the first step, SyncBatchNorm), so a rank without a clip
    or with a dead worker keeps every rank out of it.
    """
    model.train()
    set_frozen_eval(frozen)
    c = carried or {}
    sums = {k: (float if k == 'loss_sum' else int)(c.get(k, 0)) for k in SUMS}
    wait, start = 0.0, time.perf_counter()
    seen_at_start = sums['clips']
    n_batches = start_batch + len(loader) if hasattr(loader, '__len__') else None
    batches = fetch_batches(loader)
    bar = progress(batches, total=n_batches, initial=start_batch, desc=f'epoch {epoch} train',
                   enabled=show_progress)
    fetched = iter(bar)
    optimizer.zero_grad(set_to_none=True)
    tick = time.perf_counter()
    interrupted, done, pending, died, stopping, saving = False, start_batch, False, None, False, False
    micro_grads = False  # gradients accumulated under no_sync and not yet all-reduced
    settled = (done, dict(sums))  # the last point with no gradient pending
    ddp = _ddp_of(model)
    try:
        for i in itertools.count(start_batch + 1):
            batch, here_died = _next_batch(fetched)
            fetched_batch = batch
            if batch is None and here_died is None:  # the epoch's end: one last agreement, for a death elsewhere
                if agree(Step(), device).died:
                    died, interrupted = DIED_ELSEWHERE, True
                break
            wait += time.perf_counter() - tick
            micro = accumulate_steps > 1 and i % accumulate_steps != 0 and i != n_batches
            with ddp.no_sync() if micro and ddp is not None else contextlib.nullcontext():
                if ddp is not None:  # some rank without a clip: no rank enters the forward's collectives
                    absent = batch is None or batch['clip'] is None
                    before = agree(Step(skip=absent, died=here_died is not None), device)
                    if before.died:
                        died, interrupted = here_died or DIED_ELSEWHERE, True
                        break
                    batch = None if before.skip else batch
                logits, y, loss, value = _forward(batch, model, criterion, device, normalize, amp_dtype,
                                                  channels_last, f'epoch {epoch}, batch {i}')
                step = agree(Step(skip=loss is None, stop=bool(stop_requested and stop_requested()),
                                  died=here_died is not None, nonfinite=value is not None and not math.isfinite(value),
                                  save=bool(checkpoint_due and checkpoint_due())), device)
                if step.nonfinite:
                    here = value is not None and not math.isfinite(value)
                    raise NonFiniteLossError(f"epoch {epoch}, batch {i}: the loss is "
                                             f"{value if here else 'not finite on another rank'}")
                if step.died:
                    died, interrupted = here_died or DIED_ELSEWHERE, True
                    break
                if fetched_batch is not None:
                    sums['bad_frames'] += fetched_batch['bad_frames']
                    sums['failed_videos'] += len(fetched_batch['failed'])
                done = i
                if not step.skip:
                    scaled = loss / accumulate_steps
                    (scaler.scale(scaled) if scaler is not None else scaled).backward()
                    pending = True
                    micro_grads = micro and ddp is not None  # gradients of this rank alone, so far
            # a step boundary steps whatever the batch held, so gradients never carry past it
            if pending and (i % accumulate_steps == 0 or i == n_batches):
                if step.skip and micro_grads:  # the skipped boundary's backward would have all-reduced them
                    average_gradients(model)
                if before_step is not None:  # e.g. the warm-up's learning rate for this iteration
                    before_step(iter_offset + i)
                with scaled_lr(optimizer, lr_factor(i) if lr_factor is not None else 1.0):
                    if scaler is not None:
                        scaler.step(optimizer)
                        scaler.update()
                    else:
                        optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                pending = micro_grads = False
            if not step.skip:
                n = y.shape[0]
                batch_correct = count_hits(logits, y)
                sums['loss_sum'] += value * n
                sums['correct'] += batch_correct
                sums['clips'] += n
                lr = max(g['lr'] for g in optimizer.param_groups) * (lr_factor(i) if lr_factor is not None else 1.0)
                if batch_log is not None:
                    batch_log([epoch, i, iter_offset + i, value, batch_correct / n, lr])
                elapsed = time.perf_counter() - start
                bar_postfix(bar, sums, seen_at_start, elapsed, wait)
            stopping, saving = stopping or step.stop, saving or step.save
            if not pending:
                settled = (done, dict(sums))
                if stopping:
                    interrupted = True
                    break
                if saving and on_checkpoint is not None:
                    on_checkpoint(done, dict(sums))
                    saving = False
            tick = time.perf_counter()
    finally:
        batches.close()
    bar.close()
    if died is not None:  # back to the last settled batch: its weights are what the model holds
        done, sums = settled
    elapsed = time.perf_counter() - start
    return {
        **sums, 'loss': sums['loss_sum'] / max(sums['clips'], 1), 'acc': sums['correct'] / max(sums['clips'], 1),
        'lr': max(g['lr'] for g in optimizer.param_groups),
        'clips_per_s': (sums['clips'] - seen_at_start) / max(elapsed, 1e-9), 'data_wait': wait / max(elapsed, 1e-9),
        'batches': n_batches or 0, 'interrupted': interrupted, 'batches_done': done, 'worker_died': died,
    }


SUMS = ('loss_sum', 'correct', 'clips', 'bad_frames', 'failed_videos')  # what an epoch adds up, over ranks too


def _next_batch(batches: Iterator[Any]) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
    """(the next batch, None); (None, how a worker died); (None, None) at the end."""
    try:
        return next(batches), None
    except StopIteration:
        return None, None
    except WorkerDied as e:
        return None, str(e)


def average_gradients(model: nn.Module) -> None:
    """Every rank's gradients replaced by their mean over the ranks, as DDP's backward would (a collective)."""
    world = torch.distributed.get_world_size()
    for p in model.parameters():
        if p.grad is not None:
            torch.distributed.all_reduce(p.grad)
            p.grad /= world


def _ddp_of(model: nn.Module) -> Optional[nn.parallel.DistributedDataParallel]:
    """The DistributedDataParallel wrapper of the training view (under torch.compile too), or None."""
    model = getattr(model, '_orig_mod', model)
    return model if isinstance(model, nn.parallel.DistributedDataParallel) else None


def _forward(batch: Optional[Dict[str, Any]], model: nn.Module, criterion: nn.Module, device: torch.device,
             normalize: Callable, amp_dtype: Optional[torch.dtype], channels_last: bool, where: str) -> tuple:
    """(logits, targets, loss, its value) of a batch, or Nones where it cannot train (no batch, no clip, one clip)."""
    if batch is None or batch['clip'] is None:
        return None, None, None, None
    x = to_device(batch['clip'], device, normalize, channels_last)
    y = batch['label'].to(device, non_blocking=True)
    with autocast(device, amp_dtype):
        logits = forward_unless_one_clip(model, x, where)
        if logits is None:
            return None, None, None, None
        loss = criterion(logits.float(), y)
    return logits, y, loss, loss.item()  # one device sync per batch, reused by the caller


def bar_postfix(bar: Any, sums: Dict[str, float], seen_at_start: float, elapsed: float, wait: float) -> None:
    """The progress bar's running loss, accuracy, throughput and data-wait share."""
    if sums['clips']:
        bar.set_postfix({'loss': f"{sums['loss_sum'] / sums['clips']:.3f}",
                         'acc': f"{sums['correct'] / sums['clips']:.3f}",
                         'clips/s': f"{(sums['clips'] - seen_at_start) / elapsed:.1f}",
                         'data wait': f'{wait / elapsed:.0%}'})


def recalibrate_batchnorm(model: nn.Module, loader: Iterable[Dict[str, Any]], device: torch.device,
                          normalize: Callable, *, frozen: Iterable[nn.Module] = (),
                          amp_dtype: Optional[torch.dtype] = None, channels_last: bool = False) -> int:
    """BatchNorm running statistics re-estimated as the plain mean over ``loader``'s batches (train-mode forward
    passes, no gradient, frozen modules left alone); the clips seen (none: the statistics are kept)."""
    was_training = model.training
    model.train()
    set_frozen_eval(frozen)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    kept = [(m.momentum, m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches
    clips = 0
    try:
        with torch.no_grad():
            for batch in fetch_batches(loader):
                if batch['clip'] is not None and len(batch['clip']) > 1:
                    with autocast(device, amp_dtype):
                        model(to_device(batch['clip'], device, normalize, channels_last))
                    clips += len(batch['clip'])
    except WorkerDied as e:  # the statistics of the batches seen (none: the previous ones); training goes on
        report_fault(f'{e}: BatchNorm re-estimated on {clips} clips')
    finally:
        for m, (momentum, mean, var, tracked) in zip(norms, kept):
            m.momentum = momentum
            if clips == 0:
                m.running_mean.copy_(mean), m.running_var.copy_(var), m.num_batches_tracked.copy_(tracked)
        model.train(was_training)
    return clips


@contextlib.contextmanager
def scaled_lr(optimizer: torch.optim.Optimizer, factor: float) -> Iterator[None]:
    """Every group's learning rate times ``factor`` for one step, then back: the schedule never sees the factor."""
    if factor == 1.0:
        yield
        return
    lrs = [g['lr'] for g in optimizer.param_groups]
    for g in optimizer.param_groups:
        g['lr'] = g['lr'] * factor
    try:
        yield
    finally:
        for g, lr in zip(optimizer.param_groups, lrs):
            g['lr'] = lr


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
def cpu_threads(device: torch.device, requested: int, processes: int = 1, *, deterministic: bool = False,
                say: bool = True, recorded: Optional[int] = None, source: str = '') -> Iterator[Optional[ThreadSplit]]:
    """torch's intra-op threads for a CPU run (a ``ThreadSplit``), restored afterwards; None on a GPU.

    ``requested`` 0 starts with every CPU of this process's share (the CPUs it may use, shared by
    ``processes`` per node) and leaves the DataLoader workers the cores they are measured to use
    (``ThreadSplit.watch`` the training loader); N keeps N threads. ``deterministic`` keeps the
    share unmeasured: a timing-dependent count would change the order of floating-point sums; for
    the same reason 0 reuses the count a resumed checkpoint (``source``) ``recorded``.
    The line saying the count is printed where ``say``.
    """
    previous = torch.get_num_threads()
    split = None
    if device.type == 'cpu':
        fixed, why = (requested, f'--cpu_threads {requested}') if requested else \
            (cpu_share(processes), '--deterministic') if deterministic else \
            (recorded, f'recorded in {source}') if recorded else (None, '')
        split = ThreadSplit(cpu_share(processes), fixed, why, say)
    try:
        yield split
    finally:
        torch.set_num_threads(previous)
