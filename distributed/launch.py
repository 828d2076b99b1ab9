"""Starting a run's processes: under torchrun, in the original's spawned form, or alone; their exit codes.

``launch(opt, run)`` calls ``run(opt, rank, world, local_rank, local_world)`` in every process of
the job and returns this process's exit code. Under torchrun (``RANK``/``WORLD_SIZE`` set) the
process group comes from the environment; an elastic job that shrank to one process runs without
one. ``--distributed --world_size N`` (the original's form) spawns one process per GPU and
returns the first failing process's own code, after its one-line message.
"""
import gc
import os
import sys
from datetime import timedelta
from typing import Any, Callable

import torch
import torch.distributed as dist

from common.errors import UserError

Run = Callable[..., int]  # run(opt, rank, world, local_rank, local_world) -> exit code
PEER_GONE = ('Connection reset by peer', 'Connection closed by peer', 'Broken pipe', 'NCCL communicator was aborted')


def end_process_group() -> None:
    """Destroy the process group once what still holds its work is gone: a DDP model (its reducer sits in a reference
    cycle) left for the interpreter's exit aborted the process in about one exit in six here ('terminate called
    without an active exception', gloo, torch 2.14), turning the run's exit code into SIGABRT."""
    gc.collect()
    dist.destroy_process_group()


def launch(opt: Any, run: Run) -> int:
    """``run`` on this process, under torchrun, or spawned per GPU (``--distributed --world_size``)."""
    if 'RANK' in os.environ and 'WORLD_SIZE' in os.environ:  # under torchrun (an elastic job may shrink to 1)
        return torchrun_process(opt, run) if int(os.environ['WORLD_SIZE']) > 1 else run(opt)
    if opt.distributed:  # the original's form: one process per GPU on each of --world_size nodes
        if opt.world_size < 1:
            raise UserError('--distributed without torchrun needs --world_size (the number of nodes), e.g. 1')
        per_node = torch.cuda.device_count() if torch.cuda.is_available() and not opt.no_cuda else 1
        node_rank = int(os.environ.get('NODE_RANK', os.environ.get('OMPI_COMM_WORLD_RANK', 0)))
        world = per_node * opt.world_size
        if world > 1:
            try:
                torch.multiprocessing.spawn(_spawned, args=(run, opt, node_rank, per_node, world), nprocs=per_node)
            except torch.multiprocessing.ProcessExitedException as e:  # the process printed its own line
                return e.exit_code if e.exit_code > 0 else 128 - e.exit_code  # -N: killed by signal N
            return 0
    return run(opt)


def backend(opt: Any) -> str:
    """NCCL on GPUs, gloo on the CPU."""
    return 'nccl' if torch.cuda.is_available() and not opt.no_cuda else 'gloo'


def torchrun_process(opt: Any, run: Run) -> int:
    """One process of a torchrun job: its process group from the environment torchrun sets, then ``run``.

    A collective that fails because another process of the job is gone (a node died) ends this one
    with one line and exit code 1: torchrun's ``--max-restarts`` then restarts the job, which
    resumes from its latest checkpoint with ``--resume_path auto``.
    """
    dist.init_process_group(backend(opt), init_method='env://', timeout=timedelta(seconds=opt.dist_timeout))
    rank = dist.get_rank()
    try:
        return run(opt, rank, dist.get_world_size(), int(os.environ.get('LOCAL_RANK', 0)),
                   int(os.environ.get('LOCAL_WORLD_SIZE', dist.get_world_size())))
    except (dist.DistError, RuntimeError) as e:
        if not isinstance(e, dist.DistError) and not any(w in str(e) for w in PEER_GONE):
            raise
        print(f'error: rank {rank}: a collective failed, another process of the job is gone '
              f'({" ".join(str(e).split())[:200]})', file=sys.stderr, flush=True)
        return 1
    finally:
        end_process_group()


def _spawned(local_rank: int, run: Run, opt: Any, node_rank: int, per_node: int, world: int) -> None:
    """One process of the original's launch form; exits with ``run``'s code (2 and one line for a UserError)."""
    rank = node_rank * per_node + local_rank
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(local_rank))  # as torchrun sets them
    dist.init_process_group(backend(opt), init_method=opt.dist_url, world_size=world, rank=rank,
                            timeout=timedelta(seconds=opt.dist_timeout))
    try:
        code = run(opt, rank, world, local_rank, per_node)
    except UserError as e:
        print(f'error: {e}', file=sys.stderr, flush=True)
        code = 2
    finally:
        end_process_group()
    if code:
        sys.exit(code)
