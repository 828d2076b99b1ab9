"""Mixed precision: which autocast dtype ``--precision`` means on a device, and the one autocast context.

Every forward pass (training, validation, inference, benchmarks) enters ``autocast``, so the
CPU bf16 repair of ``models.cpu_bf16`` applies wherever bf16 runs on the CPU.
"""
import contextlib
from typing import Iterator, Optional

import torch

from models.cpu_bf16 import Bf16ConvGuard


def amp_dtype(precision: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype for ``--precision`` on ``device`` (None: fp32)."""
    if precision == 'auto':
        ok = device.type == 'cuda' and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if ok else None
    return {'fp32': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}[precision]


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
