"""Where a training epoch stands: what a mid-epoch checkpoint records of it, and continuing from that record.

The ranks together work through a prefix of the epoch's order (``datasets.samplers.EpochSampler``),
so a record of the positions done (with the seed, world size, per-rank batch and training-set
size) is enough to continue: exactly, on the same topology; re-sharded, on another one.
"""
import time
from typing import Any, Dict, Mapping, Tuple

from common.errors import UserError


def sampler_record(sampler: Any, seed: int, epoch: int, world: int, per_rank_batch: int,
                   batches_in_run: int) -> Dict[str, Any]:
    """What a checkpoint records of the epoch's order after this run's ``batches_in_run`` batches."""
    return {'seed': seed, 'epoch': epoch, 'world': world, 'per_rank_batch': per_rank_batch, 'n': sampler.n,
            'samples_done': sampler.samples_done(batches_in_run), 'resharded': sampler.rest is not None,
            'batches': list(sampler.sizes), 'layout': sampler.layout()}


def continue_epoch(position: Mapping[str, Any], sampler: Any, *, world: int, per_rank_batch: int, seed: int,
                   source: str, per_epoch: int) -> Tuple[int, str]:
    """Set ``sampler`` to the rest of a preempted epoch; (batches done per rank before, a line saying how).

    The same world size and batch size continue exactly where the ranks stopped (bitwise the
    uninterrupted run); another topology re-shards the rest of the epoch's order, so each sample
    is still trained once. Another seed or training set cannot continue the epoch: a UserError.
    """
    record, batch, epoch = position.get('sampler') or {}, int(position['batch']), int(position['epoch'])
    # records written before the world size was recorded continued on the same topology, as they still do
    was_world, was_batch = int(record.get('world', world)), int(record.get('per_rank_batch', per_rank_batch))
    done, n = int(record.get('samples_done', batch * was_batch * was_world)), int(record.get('n', sampler.n))
    was_sizes = [int(b) for b in record.get('batches', [was_batch])]
    if min(batch, done, n) < 0 or min(was_world, was_batch, min(was_sizes, default=0)) < 1:
        raise UserError(f'{source}: its resume position is out of range (batch {batch}, samples done {done} of {n}, '
                        f'{was_world} processes x batch {was_batch}, batches {was_sizes})')
    if int(record.get('seed', seed)) != seed:
        raise UserError(f"{source}: epoch {epoch} was preempted with --manual_seed {record['seed']}: "
                        'its order continues only with that seed')
    if n != sampler.n:
        raise UserError(f'{source}: epoch {epoch} was preempted on {n} training videos, not the {sampler.n} here: '
                        'the rest of its order cannot be known')
    layout = record.get('layout') if isinstance(record.get('layout'), dict) else {}  # what else the order hung on
    if (was_world, was_batch, was_sizes) == (world, per_rank_batch, list(sampler.sizes)) \
            and layout == sampler.layout() and not record.get('resharded'):
        sampler.skip_batches(batch)
        return batch, f'epoch {epoch}: resuming after batch {batch} of {per_epoch}'
    if layout.get('order') != sampler.layout().get('order'):
        raise UserError(f"{source}: epoch {epoch} was preempted reading {layout.get('order', 'files')}, not "
                        f"{sampler.layout().get('order', 'files')}: its order continues only from the same data")
    try:
        sampler.rest_from(done, phase=batch, was=record)
    except ValueError as e:
        raise UserError(f'{source}: epoch {epoch} cannot continue: {e}') from None
    return batch, (f'epoch {epoch}: resuming after {min(done, n)} of its {n} samples, done by {was_world} processes '
                   f'x batch {was_batch}; the other {max(0, n - done)} are re-sharded over {world} x batch '
                   f'{per_rank_batch}, each trained once')


class PeriodicSave:
    """``--checkpoint_every_minutes``: rank 0's clock says when a mid-epoch checkpoint is due (0: never)."""

    def __init__(self, minutes: float, master: bool):
        self.every_s = minutes * 60 if master else 0.0
        self.last = time.monotonic()

    def due(self) -> bool:
        """Whether the minutes have passed since the start or the last save (always False off rank 0)."""
        return self.every_s > 0 and time.monotonic() - self.last >= self.every_s

    def restart(self) -> None:
        """Start counting again (after a save)."""
        self.last = time.monotonic()
