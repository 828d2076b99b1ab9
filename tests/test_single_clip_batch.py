"""No training batch is a single clip: BatchNorm cannot train on one clip whose features shrink to 1x1x1."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from datasets.samplers import EpochSampler, epoch_length
from tests.video_fixtures import make_dataset

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize('n,world,batch', [(1, 1, 2), (3, 1, 2), (5, 2, 2), (129, 1, 128), (1, 4, 3), (7, 3, 2),
                                           (9, 1, 4), (6, 1, 2), (4, 2, 1), (0, 1, 2), (10, 4, 3)])
def test_no_rank_ends_an_epoch_with_a_one_clip_batch(n, world, batch):
    samplers = [EpochSampler(n, seed=5, rank=r, world=world, batch_size=batch) for r in range(world)]
    for sampler in samplers:
        sampler.set_epoch(2)
        items = list(sampler)  # what the DataLoader batches, ``batch`` at a time
        sizes = [len(items[i:i + batch]) for i in range(0, len(items), batch)]
        assert sum(sizes) == len(sampler) == epoch_length(n, world, batch) and len(sampler.indices()) == len(sampler)
        assert batch == 1 or 1 not in sizes
    seen = {i for s in samplers for i in s.indices()}
    assert seen == set(range(n))  # every sample still trains every epoch
    assert epoch_length(n, world, batch) - -(-n // world) in (0, 1)  # at most one repeat per rank


def test_the_epoch_order_is_unchanged_where_no_batch_was_a_single_clip():
    plain, batched = EpochSampler(6, seed=3), EpochSampler(6, seed=3, batch_size=2)
    for s in (plain, batched):
        s.set_epoch(4)
    assert plain.indices() == batched.indices() and len(plain) == 6
    odd, odd_plain = EpochSampler(5, seed=3, batch_size=2), EpochSampler(5, seed=3)
    for s in (odd, odd_plain):
        s.set_epoch(4)
    assert odd.indices() == odd_plain.indices() + odd_plain.indices()[:1]  # the same order, one repeat


def test_main_trains_a_set_of_one_more_than_a_batch(tmp_path):
    """3 training videos, batch 2, 32 px resnet-10 x0.25: the last batch would be one clip at 1x1x1."""
    ann = make_dataset(tmp_path / 'jpg', 'jpg', labels=('a', 'b', 'c'), n_train=1)
    cmd = [sys.executable, 'main.py', '--video_path', str(tmp_path / 'jpg'), '--annotation_path', str(ann),
           '--result_path', str(tmp_path / 'out'), '--n_classes', '3', '--model_depth', '10',
           '--resnet_widen_factor', '0.25', '--sample_size', '32', '--sample_duration', '8', '--batch_size', '2',
           '--n_threads', '0', '--n_epochs', '1', '--checkpoint', '0', '--n_val_samples', '1', '--no_progress',
           '--no_cuda']
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert done.returncode == 0, done.stderr[-2000:]
    assert len((tmp_path / 'out' / 'train_batch.log').read_text().splitlines()) == 1 + 2  # header, 2 batches of 2


def test_an_unreadable_training_video_is_replaced_from_the_same_share_and_counted_once(tmp_path):
    """4 training videos, batch 2, one unreadable: another video of the rank's share takes its place,
    so no batch is left with one clip (which BatchNorm would refuse at 1x1x1); the epoch counts it once."""
    ann = make_dataset(tmp_path / 'jpg', 'jpg', labels=('a', 'b'), n_train=2)
    for frame in (tmp_path / 'jpg' / 'a' / 'a_0').iterdir():
        frame.write_bytes(b'not a jpeg')
    cmd = [sys.executable, 'main.py', '--video_path', str(tmp_path / 'jpg'), '--annotation_path', str(ann),
           '--result_path', str(tmp_path / 'out'), '--n_classes', '2', '--model_depth', '10',
           '--resnet_widen_factor', '0.25', '--sample_size', '32', '--sample_duration', '8', '--batch_size', '2',
           '--n_threads', '0', '--n_epochs', '1', '--checkpoint', '0', '--n_val_samples', '1', '--no_progress',
           '--no_cuda']
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr.count("a_0: no decodable frame among 8 requested; another video of this rank's share "
                             'takes its place') == 1
    assert 'BatchNorm cannot train' not in done.stderr
    batches = (tmp_path / 'out' / 'train_batch.log').read_text().splitlines()[1:]
    assert len(batches) == 2  # both batches of the epoch trained, full
    row = dict(zip(*[line.split('\t') for line in (tmp_path / 'out' / 'train.log').read_text().splitlines()[:2]]))
    assert int(float(row['failed_videos'])) == 1


@pytest.mark.parametrize('skipped', ['one clip', 'all failed'])
def test_a_skipped_batch_on_a_step_boundary_still_steps_and_asks_to_stop(skipped):
    """accumulate 2: batch 1 trains, batch 2 (the boundary) is skipped; the gradient of batch 1 is
    stepped there, not carried into batch 3's step, and the stop flag goes into every batch's agreement."""
    import torch
    import torch.nn as nn
    from training import train_epoch
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 2 * 2 * 2, 4), nn.BatchNorm1d(4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    steps, asked = [], []
    original = optimizer.step
    optimizer.step = lambda *a, **k: (steps.append(1), original(*a, **k))[1]

    def batch(n):
        return {'clip': torch.randint(0, 255, (n, 3, 2, 2, 2), dtype=torch.uint8) if n else None,
                'label': torch.arange(n) % 4, 'bad_frames': 0, 'failed': [('v', 'unreadable')] if n < 2 else []}
    loader = [batch(2), batch(1 if skipped == 'one clip' else 0), batch(2), batch(2)]
    out = train_epoch(1, loader, model, nn.CrossEntropyLoss(), optimizer, torch.device('cpu'), lambda x: x.float(),
                      accumulate_steps=2, stop_requested=lambda: asked.append(1) or False, show_progress=False)
    assert len(steps) == 2 and len(asked) == 4  # stepped at batches 2 and 4; asked in every batch's agreement
    assert out['clips'] == 6 and out['failed_videos'] == 1
