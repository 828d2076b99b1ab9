"""What every rank decides together, so that no rank waits in a collective for one that already knows better.

``agree`` is one small all-reduce per training step: each rank says what it knows (its batch
cannot train, a stop signal came, a DataLoader worker died, the loss is not finite, a periodic
checkpoint is due) and every rank gets the union, so all of them skip the same batch, stop at
the same settled batch and exit with the same code. ``on_rank_zero`` runs what only rank 0
does (saving, logging) and gives every rank its outcome: a failed save ends every rank with the
same one-line error instead of leaving the others in the next collective until the timeout.
"""
from dataclasses import astuple, dataclass
from typing import Callable, Optional, TypeVar

import torch
import torch.distributed as dist

from common.errors import UserError
from distributed.collectives import broadcast_object, distributed

T = TypeVar('T')


@dataclass(frozen=True)
class Step:
    """What one rank knows after its forward pass (or agreed: what any rank knew)."""
    skip: bool = False       # this batch cannot train here: no clip left, or one clip BatchNorm cannot take
    stop: bool = False       # a stop signal (SIGTERM/SIGINT) arrived
    died: bool = False       # a DataLoader worker died: no further batch can come
    nonfinite: bool = False  # the loss is NaN or infinite
    save: bool = False       # a periodic mid-epoch checkpoint is due (rank 0's clock)

    @property
    def settles(self) -> bool:
        """Whether the step ends the epoch at once, at the last settled batch (nothing of this batch is kept)."""
        return self.died or self.nonfinite


def agree(mine: Step, device: torch.device) -> Step:
    """Every rank's ``Step`` or-ed together: the same answer on every rank (identity in a single process)."""
    if not distributed():
        return mine
    flags = torch.tensor([float(v) for v in astuple(mine)], device=device)
    dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    return Step(*(bool(v) for v in flags.tolist()))


def on_rank_zero(action: Callable[[], T], rank: int) -> Optional[T]:
    """``action()`` on rank 0 (its result there, None elsewhere); if it fails, every rank raises the same error.

    A ``UserError`` (a full disk, an unwritable path) becomes that one-line error on every rank; any
    other exception is re-raised on rank 0 with its traceback and named in one line on the others.
    """
    result, failure, raised = None, None, None
    if rank == 0:
        try:
            result = action()
        except Exception as e:  # noqa: BLE001 - every rank must learn of it, whatever it is
            raised = e
            failure = str(e) if isinstance(e, UserError) else f'rank 0 failed: {type(e).__name__}: {e}'
    failure = broadcast_object(failure)
    if raised is not None:
        raise raised
    if failure is not None:
        raise UserError(failure)
    return result

