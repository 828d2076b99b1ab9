"""Spatiotemporal 3D CNNs and their checkpoints.

``generate_model(**options)`` builds any architecture from options named like the CLI flags;
``load_model(path, **overrides)`` rebuilds and loads one from a checkpoint. Checkpoints are read
without running code from them; ``trust=True`` is the opt-in for files that need more
(``models/safe_load.py``).
"""
from models.checkpoint import (CheckpointError, load_checkpoint, load_model, load_pretrained, load_state_dict_checked,
                               save_checkpoint)
from models.factory import (MODEL_DEFAULTS, MODEL_DEPTHS, MODEL_OPTION_NAMES, arch_name, generate_model, head_name,
                            replace_head)

__all__ = [
    'CheckpointError', 'MODEL_DEFAULTS', 'MODEL_DEPTHS', 'MODEL_OPTION_NAMES', 'arch_name',
    'generate_model', 'head_name', 'load_checkpoint', 'load_model', 'load_pretrained',
    'load_state_dict_checked', 'replace_head', 'save_checkpoint',
]
