"""A guard for a defect of oneDNN's CPU bf16 Conv3d weight gradient.

On CPUs with AVX512-bf16 (the ``jit_bf16:avx512_core_bf16`` kernel of the oneDNN in torch 2.14),
the bf16 weight gradient of a Conv3d is wrong whenever the input is longer than one frame but
shorter than the kernel in time (1 < T < kernel_t, so the padding overlaps the whole input),
and for one frame padded by more than half the kernel (not the usual padding):
every run gives errors far above bf16 rounding, some runs uninitialised memory (1e33, NaN), and
one shape (T=4, kernel 7) corrupted the heap. A 3D ResNet on 16-frame clips meets it in every
layer3 conv (T=2, kernel 3). The forward pass and the input gradient are right; fp32 and fp16
are right; so is T=1 with the usual padding and any T >= kernel_t.

``Bf16ConvGuard`` is a torch function mode that runs those convolutions, and only those, in
fp32 inside a CPU bf16 autocast region when their weight gradient will be computed (grad mode
on, weight not frozen): their forward and backward are then computed exactly as in an fp32 run. ``models.precision.autocast`` enters it whenever bf16 autocast runs on the CPU.
"""
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

import torch
from torch.overrides import TorchFunctionMode


def _at(args: Sequence[Any], kwargs: Dict[str, Any], index: int, name: str, default: Any) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


def shorter_than_kernel(x: torch.Tensor, weight: torch.Tensor, dilation: Any = 1, padding: Any = 0) -> bool:
    """Whether ``x`` (N x C x T x H x W, or unbatched) meets the defect: T shorter than the kernel's
    temporal extent, and either more than one frame or padded by more than half the extent."""
    d = dilation if isinstance(dilation, int) else dilation[0]
    extent = d * (weight.shape[2] - 1) + 1
    pad = 0 if isinstance(padding, str) else (padding if isinstance(padding, int) else padding[0])
    t = x.shape[-3]
    return t < extent and (t > 1 or 2 * pad > extent - 1)


class Bf16ConvGuard(TorchFunctionMode):
    """Inside CPU bf16 autocast: Conv3d calls with 1 < T < kernel_t run in fp32 (see the module's docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.rerouted = 0  # conv calls run in fp32 so far (tests and diagnostics)

    def __torch_function__(self, func: Callable, types: Tuple[type, ...], args: Sequence[Any] = (),
                           kwargs: Optional[Dict[str, Any]] = None) -> Any:
        kwargs = kwargs or {}
        if func is torch.conv3d and torch.is_autocast_enabled('cpu') \
                and torch.get_autocast_dtype('cpu') == torch.bfloat16:
            x, weight = _at(args, kwargs, 0, 'input', None), _at(args, kwargs, 1, 'weight', None)
            # only a weight gradient is wrong: inference and frozen layers keep bf16
            if weight.requires_grad and torch.is_grad_enabled() and x.device.type == 'cpu' \
                    and shorter_than_kernel(x, weight, _at(args, kwargs, 5, 'dilation', 1),
                                            _at(args, kwargs, 4, 'padding', 0)):
                self.rerouted += 1
                args = [a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args]
                kwargs = {k: v.float() if isinstance(v, torch.Tensor) and v.is_floating_point() else v
                          for k, v in kwargs.items()}
                with torch.autocast('cpu', enabled=False):
                    return func(*args, **kwargs)
        return func(*args, **kwargs)
