"""A scheduler's SIGTERM that lands while DataLoader workers start must not kill a worker: it is the main process's."""
import os
import signal

import pytest
import torch

from runs.stopping import fetch_batches, ignore_stop_signals


def signalled_then_ignoring(worker_id):
    """A worker that gets SIGTERM before it has set itself to ignore it (the race a job step's signal can hit)."""
    os.kill(os.getpid(), signal.SIGTERM)
    ignore_stop_signals(worker_id)


def loader():
    return torch.utils.data.DataLoader(list(range(8)), batch_size=2, num_workers=1,
                                       worker_init_fn=signalled_then_ignoring, multiprocessing_context='fork')


def test_a_stop_signal_while_workers_start_is_held_back_and_dropped_by_the_worker():
    assert [b.tolist() for b in fetch_batches(loader())] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == set()  # nothing left blocked here


def test_without_the_block_the_same_signal_kills_the_worker():
    with pytest.raises(RuntimeError, match='DataLoader worker'):
        list(loader())
