"""The one decision of a run's math: ``--precision`` and ``--channels_last`` resolved into a ``MathPlan``.

- An explicit ``--precision fp32|bf16|fp16`` (and ``--channels_last``) is used as given: no probe.
- On a GPU, ``auto`` is bf16 autocast where the GPU supports it, else fp32 (and the layout the flag asks).
- On the CPU, ``auto``:
  - resuming a checkpoint that records the math of a CPU run: that math, not probed again, so the
    resumed run computes as the first one did;
  - with ``--deterministic``: fp32, not probed (a timed choice may differ between two runs);
  - otherwise the probe (``models.math_probe``) picks the fastest for training and for inference;
    under torch.distributed rank 0 probes and every rank takes its answer.

A CPU run says its choice in one line (``math: ...``); explicit flags and GPUs say nothing.
"""
import sys
from typing import Any, Callable, Mapping, Optional, TextIO, Tuple

import torch
import torch.nn as nn

from distributed.collectives import broadcast_object
from models.math_probe import probe_math
from models.precision import DTYPES, FP32, Math, MathPlan, amp_dtype
from preprocessing import INPUT_CHANNELS, Preprocessing
from runs.run_state import recorded_math
from runs.thread_split import cpu_share

Probe = Callable[[], Tuple[MathPlan, str]]  # () -> (the plan, the line saying so)
# Training is probed on a rank's batch, up to this many clips: at 4 clips the layouts' order was not the
# one training saw at 16 (models.math_probe); the cap bounds the probe of a large CPU batch (the
# original's default 128 clips of a ResNet-18 at 112 px would take minutes).
PROBE_TRAIN_CLIPS = 16


def choose_math(precision: str, channels_last: bool, device: torch.device, *, probe: Optional[Probe],
                recorded: Any = None, source: str = '', deterministic: bool = False, rank: int = 0,
                why_not_probed: str = '', file: Optional[TextIO] = None) -> MathPlan:
    """The run's math (see the module's docstring); ``recorded``: what the resumed checkpoint (``source``) holds;
    ``probe`` None: it cannot be probed, for the reason ``why_not_probed``. Every rank calls it alike; rank 0
    prints the line (to ``file``, default stdout)."""
    say = (file or sys.stdout) if rank == 0 else None
    if precision != 'auto':
        return MathPlan.same(Math(DTYPES[precision], channels_last), device)
    if device.type != 'cpu' or channels_last:
        return MathPlan.same(Math(amp_dtype('auto', device), channels_last), device)
    plan = MathPlan.from_record(recorded)
    if plan is not None and plan.device == 'cpu':
        _tell(f'math: {plan.train} for training, {plan.inference} for inference (recorded in {source}; '
              'not probed)', say)
        return plan
    if deterministic or probe is None:
        _tell(f"math: fp32 ({'--deterministic' if deterministic else why_not_probed}; not probed)", say)
        return MathPlan.same(FP32, device)
    found = broadcast_object(_probed(probe) if rank == 0 else None)
    plan = MathPlan.from_record(found[0])
    _tell(found[1], say)
    return plan if plan is not None else MathPlan.same(FP32, device)


def _probed(probe: Probe) -> Tuple[dict, str]:
    """The probe's plan (as a record: plain strings cross between ranks) and line; fp32 where the model refused."""
    try:
        plan, line = probe()
    except (RuntimeError, ValueError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return MathPlan(FP32, FP32, 'cpu').record(), f'math: fp32 (the probe failed: {first[:200]})'
    return plan.record(), line


def _tell(line: str, say: Optional[TextIO]) -> None:
    if say is not None:
        print(line, file=say, flush=True)


def run_math(opt: Any, model: nn.Module, prep: Preprocessing, ckpt: Optional[Mapping[str, Any]],
             device: torch.device, rank: int, local_world: int) -> MathPlan:
    """``choose_math`` for a main.py run: the probe (CPU, ``--precision auto``) times a copy of ``model`` at the
    clip shape of ``prep`` on the threads training starts with: training on a rank's batch up to
    ``PROBE_TRAIN_CLIPS`` (a probe costs about 9 training steps), inference on at most 4 of its clips."""
    shape = (INPUT_CHANNELS[prep.input_type], prep.sample_duration, prep.sample_size, prep.sample_size)
    per_rank = max(1, opt.batch_size // local_world)
    threads = opt.cpu_threads or cpu_share(local_world)  # as training.cpu_threads starts

    def probe() -> Tuple[MathPlan, str]:
        return probe_math(model, shape, min(4, per_rank), device, not opt.no_train, threads,
                          train_batch=min(PROBE_TRAIN_CLIPS, per_rank))
    return choose_math(opt.precision, opt.channels_last, device, probe=None if opt.pretext else probe,
                       recorded=recorded_math(ckpt), source=str(opt.resume_path), deterministic=opt.deterministic,
                       rank=rank, why_not_probed='--pretext puzzles')
