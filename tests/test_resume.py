"""Never lose a run: killed (SIGKILL) or preempted (SIGTERM/SIGINT) runs resume to bitwise the same weights."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from models import load_checkpoint
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
            '--deterministic', '--manual_seed', '3', '--no_progress', *extra]


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
    rows = (tmp_path / 'train.log').read_text().splitlines()[1:]
    assert [r.split('\t')[0] for r in rows][-1] == '3'
    assert not list(tmp_path.glob('.*.tmp'))  # temp files of an interrupted save are cleaned up


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT], ids=['SIGTERM', 'SIGINT'])
def test_preemption_saves_mid_epoch_and_resumes_bitwise_identical(data, reference, tmp_path, sig):
    proc = start_and_interrupt(command(data, tmp_path), tmp_path, sig, BATCHES_PER_EPOCH + 2)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    assert 'stopped after batch' in out and 'Resume with --resume_path auto' in out
    position = load_checkpoint(tmp_path / 'save_latest.pth')['resume_position']
    assert position['epoch'] == 2 and 2 <= position['batch'] < BATCHES_PER_EPOCH
    done = run(command(data, tmp_path, '--resume_path', 'auto'))
    assert f"epoch 2: resuming after batch {position['batch']}" in done.stdout
    assert_same_weights(reference, load_checkpoint(tmp_path / 'save_latest.pth')['state_dict'])
