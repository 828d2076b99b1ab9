"""Which modules a fine-tune trains: everything from ``--ft_begin_module`` on."""
from typing import List, Tuple

import torch.nn as nn

from common.errors import UserError
from models.factory import head_name


def fine_tune_modules(model: nn.Module) -> List[Tuple[str, nn.Module]]:
    """Top-level modules in definition order (DenseNet: the parts of ``features``, then the head).

    A model with its own ``fine_tune_modules()`` method (the two-stream and ConvNet+LSTM
    models: stages of 2D trunks) lists them itself.
    """
    if callable(getattr(model, 'fine_tune_modules', None)):
        return model.fine_tune_modules()
    if hasattr(model, 'features') and head_name(model) == 'classifier':
        return list(model.features.named_children()) + [('classifier', model.classifier)]
    return list(model.named_children())


def freeze_before(model: nn.Module, ft_begin_module: str) -> List[nn.Module]:
    """Freeze every module before ``ft_begin_module``: no gradients, and (via training.py) no BN updates."""
    if not ft_begin_module:
        return []
    modules = fine_tune_modules(model)
    names = [n for n, m in modules if any(True for _ in m.parameters())]
    if ft_begin_module not in names:
        raise UserError(f"--ft_begin_module {ft_begin_module!r} is not a module of this model: "
                        f"choose one of {', '.join(names)}")
    frozen = []
    for name, module in modules:
        if name == ft_begin_module:
            break
        module.requires_grad_(False)
        frozen.append(module)
    return frozen
