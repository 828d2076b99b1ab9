"""Never lose a run: killed (SIGKILL), preempted (SIGTERM/SIGINT) or data-starved (a dead DataLoader worker) runs
resume to bitwise the same weights, and their logs continue without duplicate or out-of-order rows."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from models import load_checkpoint
from runs.stopping import worker_death
from training import train_epoch
from tests.video_fixtures import make_dataset

ROOT = Path(__file__).resolve().parents[1]
BATCHES_PER_EPOCH = 6


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('resume_data')
    ann = make_dataset(root / 'jpg', 'jpg', n_frames=(12, 20, 9, 16, 14, 10, 18), n_train=6)
    return root / 'jpg', ann


def command(data, result, *extra):
    return [sys.executable, 'main.py', '--video_path', str(data[0]), '--annotation_path', str(data[1]),
            '--result_path', str(result), '--n_classes', '2', '--model', 'resnet', '--model_depth', '10',
            '--resnet_widen_factor', '0.25', '--sample_size', '32', '--sample_duration', '8',
            '--batch_size', '2', '--n_threads', '2', '--n_epochs', '3', '--checkpoint', '0',
            '--learning_rate', '0.01', '--multistep_milestones', '2', '--n_val_samples', '1',
            '--deterministic', '--manual_seed', '3', '--no_progress',
            '--precision', 'fp32', '--cpu_threads', '1',  # bitwise comparisons: no timed choice of math or threads
            *extra]


def run(cmd):
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def start_and_interrupt(cmd, result: Path, sig: int, after_batches: int) -> subprocess.Popen:
    """Start a run and send ``sig`` once ``after_batches`` training batches are logged."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, OMP_NUM_THREADS='1'))
    log = result / 'train_batch.log'
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) - 1 >= after_batches:
            proc.send_signal(sig)
            break
        time.sleep(0.005)
    return proc


@pytest.fixture(scope='module')
def reference(data, tmp_path_factory):
    """The uninterrupted run's final weights."""
    result = tmp_path_factory.mktemp('uninterrupted')
    run(command(data, result))
    return load_checkpoint(result / 'save_latest.pth')['state_dict']


def assert_logs_in_order(result: Path, epochs: int = 3):
    """Every epoch's row once, in order; every batch's row once, in order."""
    for name in ('train.log', 'val.log'):
        rows = (result / name).read_text().splitlines()[1:]
        assert [int(r.split('\t')[0]) for r in rows] == list(range(1, epochs + 1)), name
    rows = [r.split('\t') for r in (result / 'train_batch.log').read_text().splitlines()[1:]]
    assert [(int(r[0]), int(r[1])) for r in rows] == \
        [(e, b) for e in range(1, epochs + 1) for b in range(1, BATCHES_PER_EPOCH + 1)]
    assert [int(r[2]) for r in rows] == list(range(1, epochs * BATCHES_PER_EPOCH + 1))


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert different == []


def test_a_second_uninterrupted_run_is_bitwise_identical(data, reference, tmp_path):
    run(command(data, tmp_path))
    assert_same_weights(reference, load_checkpoint(tmp_path / 'save_latest.pth')['state_dict'])


@pytest.mark.parametrize('after_batches', [BATCHES_PER_EPOCH + 3, 2 * BATCHES_PER_EPOCH + 1])
def test_sigkill_at_any_moment_then_resume_is_bitwise_identical(data, reference, tmp_path, after_batches):
    proc = start_and_interrupt(command(data, tmp_path), tmp_path, signal.SIGKILL, after_batches)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    run(command(data, tmp_path, '--resume_path', 'auto'))
    assert_same_weights(reference, load_checkpoint(tmp_path / 'save_latest.pth')['state_dict'])
    assert_logs_in_order(tmp_path)  # the rows written after the last save were dropped, then written again
    assert not list(tmp_path.glob('.*.tmp'))  # temp files of an interrupted save are cleaned up


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT], ids=['SIGTERM', 'SIGINT'])
def test_preemption_saves_mid_epoch_and_resumes_bitwise_identical(data, reference, tmp_path, sig):
    proc = start_and_interrupt(command(data, tmp_path), tmp_path, sig, BATCHES_PER_EPOCH + 2)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    assert 'stopped after batch' in out and 'Resume with --resume_path auto' in out
    resume_exactly(data, reference, tmp_path, min_batch=2)


def resume_exactly(data, reference, result: Path, min_batch: int) -> None:
    """Epoch 2 was saved mid-way; resuming it ends bitwise as the uninterrupted run, with orderly logs."""
    position = load_checkpoint(result / 'save_latest.pth')['resume_position']
    assert position['epoch'] == 2 and min_batch <= position['batch'] < BATCHES_PER_EPOCH
    done = run(command(data, result, '--resume_path', 'auto'))
    assert f"epoch 2: resuming after batch {position['batch']}" in done.stdout
    assert_same_weights(reference, load_checkpoint(result / 'save_latest.pth')['state_dict'])
    assert_logs_in_order(result)


def test_a_dead_dataloader_worker_saves_the_epoch_and_the_run_resumes_bitwise_identical(data, reference, tmp_path):
    """A worker SIGKILLed (as by the OOM killer) in epoch 2: saved where the epoch stands, exit 3, resumed.

    Workers prefetch, so the batch the main process was waiting for when it noticed varies from run to run.
    """
    helper = ROOT / 'tests' / 'helpers' / 'kills_a_worker.py'
    env = dict(os.environ, OMP_NUM_THREADS='1', KILL_AT='11', KILL_MARKER=str(tmp_path / 'killed'))
    died = subprocess.run([sys.executable, str(helper), *command(data, tmp_path)[2:]], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env=env)
    assert died.returncode == 3, died.stderr[-3000:]
    assert (tmp_path / 'killed').exists()
    message = died.stderr.strip().splitlines()[-1]
    assert 'DataLoader worker' in message and 'Resume with --resume_path auto' in message and '--n_threads' in message
    resume_exactly(data, reference, tmp_path, min_batch=0)


@pytest.mark.parametrize('error, dead', [
    (RuntimeError('DataLoader worker (pid 12) is killed by signal: Killed.'), True),
    (RuntimeError('DataLoader worker (pid(s) 12) exited unexpectedly'), True),
    (RuntimeError('Pin memory thread exited unexpectedly'), True),
    (EOFError(), True), (ConnectionResetError(), True),
    (ConnectionError('Caught ConnectionError in DataLoader worker process 0.\nOriginal Traceback ...'), False),
    (RuntimeError('CUDA out of memory'), False)])
def test_what_counts_as_a_dead_worker(error, dead):
    assert (worker_death(error) is not None) == dead


class DyingLoader:
    """Six batches of two clips from two 'workers', the second of which dies before the fourth batch."""
    num_workers = 2

    def __len__(self):
        return 6

    def __iter__(self):
        for i in range(3):
            yield {'clip': torch.full((2, 3), float(i)), 'label': torch.tensor([0, 1]), 'bad_frames': 0,
                   'failed': []}
        raise RuntimeError('DataLoader worker (pid(s) 12) exited unexpectedly')


def test_a_dead_worker_ends_the_epoch_where_no_gradient_was_pending():
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    t = train_epoch(2, DyingLoader(), model, torch.nn.CrossEntropyLoss(), optimizer, torch.device('cpu'),
                    lambda x: x, accumulate_steps=2, show_progress=False)
    assert t['interrupted'] and 'exited unexpectedly' in t['worker_died']
    assert t['batches_done'] == 2 and t['clips'] == 4  # batch 3's gradient was pending: it is done again
