"""Parameters and multiply-accumulates per clip of a model, counted on the meta device."""
from typing import Any, Dict

import torch
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
