"""A scheduler's SIGTERM that lands while DataLoader workers start must not kill a worker: it is the main process's;
and workers that ignore it must not keep a failed run from exiting."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from runs.stopping import fetch_batches, ignore_stop_signals
from tests.video_fixtures import make_dataset

ROOT = Path(__file__).resolve().parents[1]


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


CRASHING_RUN = '''
import sys
import main
def fault(*args, **kwargs):
    raise RuntimeError('an unexpected fault in validation')
main.val_epoch = fault
sys.exit(main.main(sys.argv[1:]))
'''


def test_a_run_that_crashes_with_live_workers_exits_at_once_instead_of_hanging(tmp_path):
    """The traceback keeps the loaders (and their SIGTERM-ignoring workers) alive into interpreter exit."""
    ann = make_dataset(tmp_path / 'jpg', 'jpg', labels=('a', 'b'), n_train=2, h=24, w=32)
    args = ['--video_path', str(tmp_path / 'jpg'), '--annotation_path', str(ann), '--result_path', str(tmp_path / 'out'),
            '--n_classes', '2', '--model', 'resnet', '--model_depth', '10', '--resnet_widen_factor', '0.25',
            '--sample_size', '32', '--sample_duration', '8', '--batch_size', '2', '--n_threads', '2',
            '--n_epochs', '1', '--precision', 'fp32', '--no_progress']
    try:
        done = subprocess.run([sys.executable, '-c', CRASHING_RUN, *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail('the run did not exit: its DataLoader workers were waited for at exit')
    assert done.returncode == 1 and done.stderr.rstrip().endswith('RuntimeError: an unexpected fault in validation')
