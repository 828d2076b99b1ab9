"""Collectives that every rank calls at the same point and that answer the same on every rank.

Without an initialised process group each is the identity, so single-process code calls them
unconditionally.
"""
from typing import Any, Dict, List

import torch
import torch.distributed as dist


def any_rank(flag: bool, device: torch.device) -> bool:
    """Whether ``flag`` is True on any rank: the same answer on every rank (a collective call under distributed)."""
    if dist.is_available() and dist.is_initialized():
        t = torch.tensor([float(flag)], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        flag = bool(t.item())
    return bool(flag)


def reduce_sums(values: Dict[str, float], device: torch.device) -> Dict[str, float]:
    """Sum the given numbers over all ranks (identity without distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(keys, t.tolist()))


def gather_dict(d: Dict[str, Any]) -> Dict[str, Any]:
    """Merge per-rank dicts (each rank holds different videos) on every rank."""
    if not (dist.is_available() and dist.is_initialized()):
        return d
    parts: List[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, d)
    merged: Dict[str, Any] = {}
    for part in parts:
        merged.update(part)
    return merged
