"""``--lr_scheduler cosine``: the learning rate decays along half a cosine from the end of the warm-up to 0.

Training epoch e (1-based, as main.py numbers them) runs at

    base * 0.5 * (1 + cos(pi * (e - 1 - w) / (E - w)))   once e - 1 >= w, and at base before,

with w = ``--warmup_epochs`` (during which ``training.warmup`` ramps each iteration up to base)
and E = ``--n_epochs``: the first epoch after the warm-up runs at base, the last one just
above 0. Each value is computed from the epoch count alone, never from the previous rate, so
the warm-up overwriting the groups' rates cannot bend the curve, and a resume continues it
exactly. The horizon is the run's own flags: a resume with a larger ``--n_epochs`` stretches
the rest of the curve; the checkpoint records only where the schedule stands.
"""
import math
from typing import Any, Dict, List

import torch


def cosine_factor(epochs_done: int, n_epochs: int, warmup_epochs: float) -> float:
    """The share of the base learning rate after ``epochs_done`` epochs (1 until the warm-up ends, 0 at the end)."""
    span = n_epochs - warmup_epochs
    if span <= 0:
        return 1.0
    progress = min(1.0, max(0.0, (epochs_done - warmup_epochs) / span))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


class CosineLR(torch.optim.lr_scheduler.LRScheduler):
    """Cosine decay of every group's base learning rate over ``n_epochs`` after ``warmup_epochs``, stepped per epoch."""

    def __init__(self, optimizer: torch.optim.Optimizer, n_epochs: int, warmup_epochs: float = 0.0,
                 last_epoch: int = -1):
        self.n_epochs, self.warmup_epochs = n_epochs, warmup_epochs
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> List[float]:
        """The closed form at ``last_epoch`` (epochs done)."""
        factor = cosine_factor(self.last_epoch, self.n_epochs, self.warmup_epochs)
        return [base * factor for base in self.base_lrs]

    def state_dict(self) -> Dict[str, Any]:
        """Where the schedule stands (plain numbers), without its horizon: the resuming run's flags give that."""
        return {k: v for k, v in super().state_dict().items() if k not in ('n_epochs', 'warmup_epochs')}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Where the schedule stands, with every group's rate put on this run's curve there.

        Load the optimizer's state first (as ``RunState.restore`` does): its rates are replaced. With the
        flags of the saved run they are the same values; with another ``--n_epochs`` the new curve's.
        """
        super().load_state_dict(state_dict)
        for group, lr in zip(self.optimizer.param_groups, self.get_lr()):
            group['lr'] = lr
        self._last_lr = [group['lr'] for group in self.optimizer.param_groups]
