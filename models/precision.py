"""Mixed precision: which autocast dtype ``--precision`` means on a device, and the one autocast context.

Every forward pass (training, validation, inference, benchmarks) enters ``autocast``, so the
CPU bf16 repair of ``models.cpu_bf16`` applies wherever bf16 runs on the CPU.

``Math`` is one way to compute (an autocast dtype and a memory layout); a ``MathPlan`` holds
the one for training and the one for validation and inference, as a run resolved them
(``runs.math_choice``) and as its checkpoints record them (plain strings).
"""
import contextlib
import itertools
from dataclasses import dataclass
from typing import Any, Dict, Iterator, Mapping, Optional

import torch
import torch.nn as nn

from models.cpu_bf16 import Bf16ConvGuard


DTYPES = {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}  # --precision -> autocast dtype
CHANNELS_LAST = '+cl'  # the suffix of a ``Math.name`` in the channels_last_3d layout


def amp_dtype(precision: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype for ``--precision`` on ``device`` (None: fp32); 'auto' here is the GPUs' rule
    (bf16 where supported, else fp32): a CPU run's auto is probed (``runs.math_choice``)."""
    if precision == 'auto':
        ok = device.type == 'cuda' and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if ok else None
    return DTYPES[precision]


@dataclass(frozen=True)
class Math:
    """How forward passes compute: an autocast dtype (None: fp32) and whether in the channels_last_3d layout."""
    dtype: Optional[torch.dtype] = None
    channels_last: bool = False

    @property
    def name(self) -> str:
        """'fp32', 'bf16' or 'fp16', with '+cl' in channels_last_3d: what a checkpoint records."""
        return next(k for k, v in DTYPES.items() if v == self.dtype) + (CHANNELS_LAST if self.channels_last else '')

    @classmethod
    def named(cls, name: str) -> 'Math':
        """The ``Math`` of a ``name``; ValueError for anything else."""
        base, cl, rest = name.partition(CHANNELS_LAST)
        if base not in DTYPES or rest:
            raise ValueError(f'not a math name: {name!r}')
        return cls(DTYPES[base], bool(cl))

    def __str__(self) -> str:
        kind = 'fp32' if self.dtype is None else f'{self.name.partition(CHANNELS_LAST)[0]} autocast'
        return kind + (' + channels_last_3d' if self.channels_last else '')


FP32 = Math()


@dataclass(frozen=True)
class MathPlan:
    """The math of training and of validation/inference on a device type ('cpu', 'cuda')."""
    train: Math
    inference: Math
    device: str

    @classmethod
    def same(cls, math: Math, device: torch.device) -> 'MathPlan':
        """One math for everything."""
        return cls(math, math, device.type)

    def record(self) -> Dict[str, str]:
        """What a checkpoint holds of it (plain strings: checkpoints load with weights_only)."""
        return {'device': self.device, 'train': self.train.name, 'inference': self.inference.name}

    @classmethod
    def from_record(cls, record: Any) -> Optional['MathPlan']:
        """The plan a checkpoint recorded, or None where it holds none (or one this code cannot read)."""
        if not isinstance(record, Mapping):
            return None
        try:
            return cls(Math.named(str(record['train'])), Math.named(str(record['inference'])),
                       str(record['device']))
        except (KeyError, ValueError):
            return None


def set_layout(model: nn.Module, channels_last: bool) -> None:
    """The model's 5-D tensors (3D convolution weights) in channels_last_3d, or back in the contiguous layout.

    In place (``.data``): the optimizer and any wrapper (DDP, torch.compile) keep the same parameters.
    """
    layout = torch.channels_last_3d if channels_last else torch.contiguous_format
    for t in itertools.chain(model.parameters(), model.buffers()):
        if t.dim() == 5 and not t.is_contiguous(memory_format=layout):
            t.data = t.data.contiguous(memory_format=layout)


@contextlib.contextmanager
def autocast(device: torch.device, dtype: Optional[torch.dtype]) -> Iterator[None]:
    """Mixed precision for ``dtype`` (bf16/fp16) on ``device``, or nothing for fp32.

    CPU bf16 also routes the Conv3d calls whose bf16 weight gradient oneDNN gets wrong to fp32
    (``models.cpu_bf16``)."""
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        if device.type == 'cpu' and dtype == torch.bfloat16:
            with Bf16ConvGuard():
                yield
        else:
            yield
