"""The fastest correct math for a model on this CPU, timed on the model itself at its real clip shape.

``probe_math`` times a few steps of each candidate (fp32, bf16 autocast, bf16 autocast +
channels_last_3d where the model has 3D convolutions) on a deep copy of the model, so no weight
or BatchNorm statistic of the real one moves, with the random generators restored afterwards:
forward + backward in training mode for training, forward in eval mode under
``torch.inference_mode`` for validation and inference. Every pass enters ``models.precision.
autocast``, so the bf16 Conv3d repair (``models.cpu_bf16``) is timed as training will run it.
Where bf16 is native (AVX512-bf16, AMX) it usually wins; where oneDNN emulates it, fp32 does.
"""
import copy
import time
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn as nn

from models.precision import FP32, Math, MathPlan, autocast, set_layout

MARGIN = 0.05  # a reduced-precision candidate is taken only if it beats fp32 by more than this share
WARMUP, STEPS = 1, 2  # rounds of one step per candidate: untimed (oneDNN builds its kernels), then timed


def candidates(model: nn.Module) -> List[Math]:
    """fp32, bf16 autocast and, for a model with 3D convolutions, bf16 autocast in channels_last_3d."""
    found = [FP32, Math(torch.bfloat16)]
    if any(isinstance(m, nn.Conv3d) for m in model.modules()):
        found.append(Math(torch.bfloat16, channels_last=True))
    return found


def step_seconds(model: nn.Module, x: torch.Tensor, math: Math, device: torch.device, train: bool) -> float:
    """Seconds of one pass of ``model`` over ``x`` in ``math`` (training: forward + backward)."""
    set_layout(model, math.channels_last)
    x = x.contiguous(memory_format=torch.channels_last_3d) if math.channels_last and x.dim() == 5 else x.contiguous()
    model.train(train)
    start = time.perf_counter()
    if train:
        with autocast(device, math.dtype):
            out = model(x)
        out.float().mean().backward()
    else:
        with torch.inference_mode(), autocast(device, math.dtype):
            model(x)
    took = time.perf_counter() - start
    model.zero_grad(set_to_none=True)
    return took


def time_candidates(model: nn.Module, shape: Sequence[int], batch: int, device: torch.device, train: bool,
                    maths: Sequence[Math], threads: int) -> Dict[Math, float]:
    """Seconds per step of each math on a copy of ``model`` with ``batch`` random clips of ``shape`` (C, T, H, W),
    on ``threads`` torch threads (the real model, the random generators and the thread count stay as they were).

    The candidates take turns, round after round, so that a slow moment of the machine hits them alike;
    each one's time is its fastest step after ``WARMUP`` untimed rounds.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.random.fork_rng(devices=[]):
            twin = copy.deepcopy(model)
            x = torch.rand(batch, *shape, generator=torch.Generator().manual_seed(0)).to(device) * 4 - 2
            best = dict.fromkeys(maths, float('inf'))
            for round_ in range(WARMUP + STEPS):
                for m in maths:
                    took = step_seconds(twin, x, m, device, train)
                    best[m] = min(best[m], took) if round_ >= WARMUP else best[m]
            return best
    finally:
        torch.set_num_threads(previous)


def fastest(seconds: Dict[Math, float]) -> Math:
    """The quickest math; fp32 unless another beats it by more than ``MARGIN`` (timing noise is no reason)."""
    best = min(seconds, key=seconds.__getitem__)
    return best if seconds[best] < (1 - MARGIN) * seconds[FP32] else FP32


def probe_math(model: nn.Module, shape: Sequence[int], batch: int, device: torch.device, train: bool,
               threads: int, train_batch: int = 0) -> Tuple[MathPlan, str]:
    """The fastest math for training (when ``train``) and for inference, and a line saying so and what it cost.

    Inference is timed on ``batch`` clips, training on ``train_batch`` (default: ``batch``; at least 2 for
    BatchNorm): time it at the batch the run trains with, as the layouts' order changes with the batch
    (a full-width ResNet-10 on 16 x 56 x 56 clips here: bf16 autocast ahead of bf16 + channels_last_3d
    at 4 clips in 3 probes of 4, behind it at 8 and 16 clips in 7 of 8)."""
    start = time.perf_counter()
    maths = candidates(model)
    inference_times = time_candidates(model, shape, batch, device, False, maths, threads)
    inference = fastest(inference_times)
    parts = []
    if train:
        train_times = time_candidates(model, shape, max(2, train_batch or batch), device, True, maths, threads)
        chosen = fastest(train_times)
        parts.append(_said(chosen, 'training', train_times))
    else:
        chosen = inference
    parts.append(_said(inference, 'inference', inference_times))
    plan = MathPlan(chosen, inference, device.type)
    return plan, f"math: {', '.join(parts)} [probe: {time.perf_counter() - start:.1f} s]"


def _said(math: Math, purpose: str, seconds: Dict[Math, float]) -> str:
    """'bf16 autocast for inference (1.40x fp32)'; fp32 with the best other's speed beside it."""
    if math != FP32:
        return f'{math} for {purpose} ({seconds[FP32] / seconds[math]:.2f}x fp32)'
    other = min((m for m in seconds if m != FP32), key=seconds.__getitem__, default=None)
    beside = f' ({other}: {seconds[FP32] / seconds[other]:.2f}x)' if other is not None else ''
    return f'fp32 for {purpose}{beside}'
