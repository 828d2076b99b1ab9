"""Shards on a cluster: two torchrun agents on localhost (c10d, gloo) reading tar shards, preempted and resumed.

Marked ``multinode`` like tests/test_multinode.py (``python -m pytest -m multinode``; ``.ci/run`` runs them).
"""
import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.multinode import ROOT, TINY, Job, environment
from tests.video_fixtures import make_dataset
from util_scripts import write_shards

pytestmark = pytest.mark.multinode


@pytest.fixture(scope='module')
def shards(tmp_path_factory):
    """48 training and 8 validation videos (as test_multinode's) in shards of about 12 videos."""
    root = tmp_path_factory.mktemp('shard_data')
    ann = make_dataset(root / 'video', 'video', labels=tuple('abcdefgh'), n_train=6, n_frames=(10, 12))
    assert write_shards.main([str(root / 'video'), str(ann), str(root / 'shards'), '--file_type', 'video',
                              '--shard_mb', '0.04', '--no_progress']) == 0
    return root / 'shards', ann


def flags(data, out: Path, *extra: str) -> list:
    return ['--file_type', 'shards', '--video_path', str(data[0]), '--annotation_path', str(data[1]),
            '--result_path', str(out), '--n_classes', '8', '--batch_size', '2', '--n_epochs', '2', *TINY,
            '--n_threads', '1', '--shard_buffer', '4', *extra]


def weights(path: Path) -> dict:
    return torch.load(path, map_location='cpu', weights_only=True)['state_dict']


def test_two_nodes_train_resume_bitwise_and_score_every_validation_video_once(shards, tmp_path):
    index = json.loads((shards[0] / 'training.shards.json').read_text())
    assert len(index['shards']) >= 3  # each node reads shards of its own
    whole = Job(flags(shards, tmp_path / 'whole', '--inference', '--inference_subset', 'val'), tmp_path)
    assert whole.wait() == [0, 0], whole.all_output()
    results = json.loads((tmp_path / 'whole' / 'val.json').read_text())['results']
    assert sorted(results) == sorted(f'{c}_6' for c in 'abcdefgh')  # every validation video, each once

    cut = tmp_path / 'cut'
    job = Job(flags(shards, cut), tmp_path)
    log = cut / 'train_batch.log'
    job.wait_for(lambda j: log.exists() and '2\t3\t' in log.read_text())
    job.signal_workers(signal.SIGTERM)
    assert job.wait() == [0, 0], job.all_output()
    assert re.search(r'stopped after batch \d+ of epoch 2', job.output(0)), job.all_output()
    shutil.copytree(cut, tmp_path / 'one')
    resumed = Job(flags(shards, cut, '--resume_path', 'auto'), tmp_path)
    assert resumed.wait() == [0, 0], resumed.all_output()
    assert 'epoch 2: resuming after batch' in resumed.output(0)
    ours, theirs = weights(cut / 'save_latest.pth'), weights(tmp_path / 'whole' / 'save_latest.pth')
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)

    # the rest of the two-node epoch on one process (another world size): each sample still trained once
    cmd = [c for c in [sys.executable, 'main.py', *flags(shards, tmp_path / 'one', '--resume_path', 'auto')]
           if c != '--distributed']
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=environment())
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r'epoch 2: resuming after \d+ of its 48 samples, done by 2 processes x batch 2; the other \d+ '
                     r'are re-sharded over 1 x batch 2, each trained once', done.stdout), done.stdout
