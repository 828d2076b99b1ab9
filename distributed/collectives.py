"""Collectives that every rank calls at the same point and that answer the same on every rank.

Without an initialised process group each is the identity, so single-process code calls them
unconditionally.
"""
import inspect
from typing import Any, Dict, List, Optional

import torch
import torch.distributed as dist


def distributed() -> bool:
    """Whether a process group is initialised (several processes take part in every collective)."""
    return dist.is_available() and dist.is_initialized()


def any_rank(flag: bool, device: torch.device) -> bool:
    """Whether ``flag`` is True on any rank: the same answer on every rank (a collective call under distributed)."""
    return max_over_ranks(float(flag), device) > 0


def max_over_ranks(value: float, device: torch.device) -> float:
    """The largest ``value`` of any rank, on every rank (identity without distributed)."""
    if not distributed():
        return value
    t = torch.tensor([float(value)], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def reduce_sums(values: Dict[str, float], device: torch.device) -> Dict[str, float]:
    """Sum the given numbers over all ranks (identity without distributed)."""
    if not distributed():
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(keys, t.tolist()))


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` on every rank (identity without distributed)."""
    if not distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_objects(obj: Any) -> List[Any]:
    """Every rank's ``obj``, in rank order, on every rank (``[obj]`` without distributed)."""
    if not distributed():
        return [obj]
    parts: List[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, obj)
    return parts


def broadcast_buffers(module: torch.nn.Module, src: int = 0) -> None:
    """Rank ``src``'s buffers (BatchNorm statistics) copied into ``module`` on every rank (nothing in one process)."""
    if distributed():
        for buffer in module.buffers():
            dist.broadcast(buffer.data, src=src)


def ddp_without_forward_sync(model: torch.nn.Module, device_id: Optional[int]) -> torch.nn.Module:
    """``model`` in DistributedDataParallel with no buffer broadcast in its forward passes.

    A forward pass then holds no collective, so a rank whose batch cannot train skips its own
    without leaving the others waiting (distributed.agreement). BatchNorm statistics are each
    rank's own while an epoch trains; rank 0's are given to all (``broadcast_buffers``) before
    validation and saved.
    """
    ddp = torch.nn.parallel.DistributedDataParallel
    no_sync = 'forward_sync_buffers' if 'forward_sync_buffers' in inspect.signature(ddp.__init__).parameters \
        else 'broadcast_buffers'
    return ddp(model, device_ids=None if device_id is None else [device_id], **{no_sync: False})
