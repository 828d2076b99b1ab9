"""Parameters and multiply-accumulates per clip of a model: from its options on the meta device
(``summarize``), or of a built model on its own device (``forward_gmacs``)."""
import contextlib
import warnings
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from models.factory import arch_name, generate_model


def summarize(options: Dict[str, Any], sample_size: int = 112, sample_duration: int = 16
              ) -> Dict[str, Any]:
    """Parameter count, GMACs per clip and output shape of the model ``options`` define."""
    with torch.device('meta'):
        model = generate_model(**options).eval()
        clip = torch.empty(1, options.get('n_input_channels', 3), sample_duration,
                           sample_size, sample_size)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        out = model(clip)
    return {
        'arch': arch_name(options['model'], options['model_depth']),
        'params': sum(p.numel() for p in model.parameters()),
        'gmacs': counter.get_total_flops() / 2 / 1e9,
        'input_shape': tuple(clip.shape),
        'output_shape': tuple(out.shape),
        'state_dict_entries': len(model.state_dict()),
    }


def shape_problem(options: Dict[str, Any], shapes: Sequence[Tuple[int, int]]) -> Optional[str]:
    """Why the model ``options`` define cannot classify clips of these (frames, side) shapes; None if it can.

    Run on the meta device: shapes only, no memory and no arithmetic."""
    with torch.device('meta'):
        model = generate_model(**options).eval()
        for frames, side in shapes:
            clip = torch.empty(2, options.get('n_input_channels', 3), frames, side, side)
            try:
                with torch.no_grad():
                    out = model(clip)
            except (RuntimeError, ValueError) as e:
                return f'{frames} x {side} x {side} clips: {str(e).splitlines()[0]}'
            if out.shape[:2] != (2, options['n_classes']):
                return f'{frames} x {side} x {side} clips: output {tuple(out.shape)}, not 2 x {options["n_classes"]}'
    return None


@contextlib.contextmanager
def countable_rnns(model: nn.Module) -> Iterator[None]:
    """With an LSTM in ``model``, run it on PyTorch's plain kernels: the FLOP counter sees their matrix
    products, not oneDNN's (CPU) or cuDNN's (GPU) fused RNN kernels."""
    if not any(isinstance(m, nn.RNNBase) for m in model.modules()):
        yield
        return
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # oneDNN's flags warn about TF32 on Intel GPUs
        with torch.backends.mkldnn.flags(enabled=False), torch.backends.cudnn.flags(enabled=False):
            yield


@torch.no_grad()
def forward_gmacs(model: nn.Module, shape: Sequence[int]) -> float:
    """GMACs (billions of multiply-adds) of one eval-mode forward pass of ``model`` on one C x T x H x W clip.

    Counted on a zero clip on the model's own device (any model instance, whatever built it).
    """
    param = next(model.parameters())
    training = model.training
    counter = FlopCounterMode(display=False)
    try:
        model.eval()
        with counter, countable_rnns(model):
            model(torch.zeros(1, *shape, device=param.device, dtype=param.dtype))
    finally:
        model.train(training)
    return counter.get_total_flops() / 2 / 1e9
