"""Multigrid training (datasets.multigrid): the schedule's arithmetic against the paper's tables, batches
of each iteration's shape from the sampler and the loader, the same shape on every rank, a run that
crosses a long-cycle boundary and resumes bitwise mid-cycle, and the models that cannot take it."""
import signal
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import datasets
from datasets.multigrid import (LONG_CYCLE, SHORT_CYCLE, Batching, Grid, batch_factor, calibration_videos, schedule,
                                smallest_shapes, split_epochs, stage_of)
from datasets.samplers import EpochBatches, EpochSampler, count_batches, epoch_length
from models import load_checkpoint
from models.summary import shape_problem
from opts import parse_opts
from tests.test_resume import assert_same_weights, run, start_and_interrupt
from tests.video_fixtures import make_dataset
from training import recalibrate_batchnorm

ROOT = Path(__file__).resolve().parents[1]


def test_the_long_and_short_cycles_are_the_papers():
    # Long cycle: 8B x T/4 x (S/√2)², 4B x T/2 x (S/√2)², 2B x T/2 x S², B x T x S²; short: 4B (S/2), 2B (S/√2), B.
    assert [(t, round(s * s, 6), batch_factor(t, s)) for t, s in LONG_CYCLE] == \
        [(0.25, 0.5, 8), (0.5, 0.5, 4), (0.5, 1.0, 2), (1.0, 1.0, 1)]
    assert [batch_factor(1.0, s) for s in SHORT_CYCLE] == [4, 2, 1]


def test_each_long_cycle_shape_trains_as_many_iterations_and_the_last_stage_is_the_full_shape():
    stages = schedule(60, [45], frames=16, size=112, t_stride=2, batch=8, short=False)
    # one long cycle before the step, in epochs 8 : 4 : 2 : 1 (the same iterations each), then the full shape
    assert [(s.first, s.last) for s in stages] == [(1, 24), (25, 36), (37, 42), (43, 45), (46, 60)]
    assert [s.cycle for s in stages] == [
        (Grid(64, (4, 79, 8), 8.0),), (Grid(32, (8, 79, 4), 4.0),), (Grid(16, (8, 112, 4), 2.0),),
        (Grid(8, None, 1.0),), (Grid(8, None, 1.0),)]
    iterations = [(s.last - s.first + 1) / s.cycle[0].lr_factor for s in stages[:4]]
    assert max(iterations) / min(iterations) < 1.1


def test_the_long_cycle_repeats_in_every_learning_rate_stage_and_the_short_cycle_runs_within():
    stages = schedule(30, [10, 20], frames=8, size=56, t_stride=1, batch=4)
    assert [(s.first, s.last) for s in stages if s.cycle[0].shape == (2, 20, 4)] == [(1, 5), (11, 15)]
    assert stage_of(stages, 30).cycle == (Grid(4),)
    cycle = stage_of(stages, 1).cycle  # T/4, S/√2 with S'/2, S'/√2, S'
    assert [(g.batch, g.shape, g.lr_factor) for g in cycle] == \
        [(128, (2, 20, 4), 32.0), (64, (2, 28, 4), 16.0), (32, (2, 40, 4), 8.0)]
    assert stage_of(stages, 20).cycle == (Grid(16, (8, 28, 1), 4.0), Grid(8, (8, 40, 1), 2.0), Grid(4, None, 1.0))


def test_a_schedule_without_steps_keeps_a_tenth_at_the_full_shape_and_epochs_split_exactly():
    stages = schedule(40, [], frames=8, size=56, t_stride=1, batch=4, long=False)  # short cycle alone
    assert [(s.first, s.last, len(s.cycle)) for s in stages] == [(1, 36, 3), (37, 40, 1)]
    assert split_epochs(1, 3, [8, 4, 2, 1]) == [(1, 2), (3, 3)]  # too few epochs: the finest shapes
    for n in range(1, 40):
        runs = split_epochs(1, n, [8, 4, 2, 1])
        assert runs[0][0] == 1 and runs[-1][1] == n and all(a[1] + 1 == b[0] for a, b in zip(runs, runs[1:]))


def test_a_small_training_set_caps_the_batch_and_the_learning_rate_follows_it():
    stages = schedule(30, [20], frames=8, size=56, t_stride=2, batch=16, epoch_samples=288, min_steps=8)
    assert max(g.batch for s in stages for g in s.cycle) == 36
    assert all(g.lr_factor == g.batch / 16 for s in stages for g in s.cycle)
    assert smallest_shapes(stages, 8, 56) == [(2, 20)]


@pytest.mark.parametrize('n,world', [(37, 1), (37, 2), (6, 3), (100, 2)])
def test_the_sampler_batches_follow_the_cycle_from_any_resumed_batch(n, world):
    cycle = [(5, (2, 20, 4)), (3, (2, 28, 4)), (2, None)]
    samplers = [EpochSampler(n, seed=3, rank=r, world=world, batch_size=2) for r in range(world)]
    for s in samplers:
        s.set_epoch(4, cycle)
    batches = [list(EpochBatches(s)) for s in samplers]
    assert len({len(b) for b in batches}) == 1 and len(batches[0]) == len(EpochBatches(samplers[0]))
    for k, per_rank in enumerate(zip(*batches)):  # every rank: the same size and shape at every step
        size, shape = cycle[k % 3]
        assert {len(b) for b in per_rank} <= {size} or k == len(batches[0]) - 1
        assert {item[3] if len(item) > 3 else None for b in per_rank for item in b} == {shape}
    assert len(batches[0][-1]) != 1  # never a one-clip last batch
    assert epoch_length(n, world, sizes=[5, 3, 2]) == samplers[0].per_rank
    for done in range(len(batches[0])):  # resuming after ``done`` batches gives the rest, in the same shapes
        s = EpochSampler(n, seed=3, rank=0, world=world, batch_size=2)
        s.set_epoch(4, cycle)
        s.skip_batches(done)
        assert list(EpochBatches(s)) == batches[0][done:]
        assert s.samples_done(0) == world * sum(len(b) for b in batches[0][:done])


def test_counting_batches_walks_the_cycle():
    for n in range(0, 50):
        for sizes in [(1,), (4,), (3, 5, 2)]:
            left, k = n, 0
            while left > 0:
                left -= sizes[k % len(sizes)]
                k += 1
            assert count_batches(n, sizes) == k


def test_iterations_of_the_epochs_add_up():
    stages = schedule(6, [4], frames=8, size=32, t_stride=1, batch=2)
    batching = Batching(2, 1, stages)
    for epoch in range(1, 7):
        assert batching.iterations_before(epoch + 1, 13, 1) - batching.iterations_before(epoch, 13, 1) == \
            batching.batches_in(epoch, 13, 1)


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('multigrid_data')
    ann = make_dataset(root / 'jpg', 'jpg', n_frames=(12, 20, 9, 16, 14, 10, 18), n_train=12, h=36, w=48)
    return root / 'jpg', ann


def flags(data, result, *extra):
    return ['--video_path', str(data[0]), '--annotation_path', str(data[1]), '--result_path', str(result),
            '--n_classes', '2', '--model', 'resnet', '--model_depth', '10', '--resnet_widen_factor', '0.25',
            '--sample_size', '32', '--sample_duration', '8', '--batch_size', '2', '--n_threads', '2',
            '--n_epochs', '4', '--checkpoint', '0', '--learning_rate', '0.01', '--multistep_milestones', '3',
            '--n_val_samples', '1', '--deterministic', '--manual_seed', '3', '--no_progress',
            '--precision', 'fp32', '--cpu_threads', '1', '--multigrid', '--multigrid_min_steps', '4', *extra]


def test_the_loader_gives_each_batch_its_shape(data, tmp_path):
    opt = parse_opts(flags(data, tmp_path))
    train = datasets.get_training_data(opt)
    sampler = EpochSampler(len(train), seed=3, batch_size=2)
    batching = Batching(2, 1, schedule(4, [3], 8, 32, 1, 2, epoch_samples=sampler.per_rank, min_steps=1))
    loader = torch.utils.data.DataLoader(train, batch_sampler=EpochBatches(sampler), collate_fn=datasets.collate,
                                         num_workers=1)
    for epoch in (1, 3, 4):
        sampler.set_epoch(epoch, batching.batches(epoch))
        for k, batch in enumerate(loader):
            videos, shape = sampler.grid(k)
            frames, side, _ = shape or (8, 32, 1)
            assert batch['clip'].shape[1:] == (3, frames, side, side) and len(batch['clip']) <= videos


def _shapes_on_rank(rank: int, init: str, flags_: list, out: str) -> None:
    dist.init_process_group('gloo', init_method=init, rank=rank, world_size=2)
    opt = parse_opts(flags_)
    train = datasets.get_training_data(opt)
    sampler = EpochSampler(len(train), seed=3, rank=rank, world=2, batch_size=2)
    batching = Batching(2, 1, schedule(4, [3], 8, 32, 1, 2, epoch_samples=sampler.per_rank, min_steps=1))
    loader = torch.utils.data.DataLoader(train, batch_sampler=EpochBatches(sampler), collate_fn=datasets.collate)
    seen = []
    for epoch in range(1, 5):
        sampler.set_epoch(epoch, batching.batches(epoch))
        seen += [(epoch, tuple(b['clip'].shape[2:])) for b in loader]
    gathered = [None, None]
    dist.all_gather_object(gathered, seen)
    if rank == 0:
        torch.save(gathered, out)
    dist.destroy_process_group()


def test_two_ranks_use_the_same_shape_at_every_step(data, tmp_path):
    out = tmp_path / 'shapes.pt'
    mp.spawn(_shapes_on_rank, args=(f'file://{tmp_path / "init"}', flags(data, tmp_path / 'r'), str(out)), nprocs=2,
             join=True)
    rank0, rank1 = torch.load(out)
    assert rank0 == rank1 and len({shape for _, shape in rank0}) > 2


@pytest.fixture(scope='module')
def reference(data, tmp_path_factory):
    """The uninterrupted multigrid run: its directory and its batches per epoch."""
    result = tmp_path_factory.mktemp('multigrid_reference')
    done = run([sys.executable, 'main.py', *flags(data, result)])
    assert 'multigrid schedule' in done.stdout
    rows = [r.split('\t') for r in (result / 'train_batch.log').read_text().splitlines()[1:]]
    assert len({round(float(r[5]), 6) for r in rows if r[0] == '3'}) == 3  # the short cycle's own learning rates
    return result, [sum(1 for r in rows if r[0] == str(e)) for e in range(1, 5)]


@pytest.mark.parametrize('epoch,batch', [(2, 1), (3, 2)])
def test_a_multigrid_run_resumes_bitwise_mid_cycle_across_a_long_cycle_boundary(data, reference, tmp_path, epoch,
                                                                                  batch):
    result, per_epoch = reference
    proc = start_and_interrupt([sys.executable, 'main.py', *flags(data, tmp_path)], tmp_path, signal.SIGTERM,
                               sum(per_epoch[:epoch - 1]) + batch)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    position = load_checkpoint(tmp_path / 'save_latest.pth')['resume_position']
    assert position['epoch'] in (2, 3) and 0 < position['batch'] < per_epoch[position['epoch'] - 1]
    resumed = run([sys.executable, 'main.py', *flags(data, tmp_path, '--resume_path', 'auto')])
    assert f"epoch {position['epoch']}: resuming after batch {position['batch']}" in resumed.stdout
    assert_same_weights(load_checkpoint(result / 'save_latest.pth')['state_dict'],
                        load_checkpoint(tmp_path / 'save_latest.pth')['state_dict'])
    assert (tmp_path / 'train_batch.log').read_text() .count('\n') == (result / 'train_batch.log').read_text().count('\n')


@pytest.mark.parametrize('model,depth,ok', [('resnet', 10, True), ('densenet', 121, False), ('c3d', 0, True)])
def test_models_that_cannot_take_the_coarse_shapes_are_named(model, depth, ok):
    options = dict(model=model, model_depth=depth, n_classes=3, n_input_channels=3)
    from models.factory import MODEL_DEFAULTS
    problem = shape_problem(dict(MODEL_DEFAULTS, **options), [(2, 20)])
    assert (problem is None) == ok, problem
    if not ok:
        assert problem.startswith('2 x 20 x 20 clips:')


def test_a_model_that_cannot_take_the_schedule_is_refused_in_one_line(data, tmp_path, capsys):
    import main
    code = main.main(flags(data, tmp_path, '--model', 'densenet', '--model_depth', '121', '--sample_duration', '4'))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith('error: --multigrid: --model densenet cannot take')


def test_with_repeated_clips_the_learning_rate_counts_videos_not_clips():
    plain = schedule(40, [30], frames=16, size=56, t_stride=1, batch=16, epoch_samples=312, min_steps=8)
    repeated = schedule(40, [30], frames=16, size=56, t_stride=1, batch=16, epoch_samples=624, min_steps=8, repeat=2)
    assert max(g.batch for s in plain for g in s.cycle) == 39 and max(g.batch for s in repeated for g in s.cycle) == 78
    # the coarsest epochs: the same 39 videos a step (2 clips each) at the same rate
    assert [(g.batch, g.lr_factor) for g in repeated[0].cycle] == [(2 * g.batch, g.lr_factor) for g in plain[0].cycle]
    assert all(g.lr_factor == max(1.0, g.batch / 2 / 16) for s in repeated for g in s.cycle)
    assert repeated[-1].cycle == (Grid(16),)  # the full shape: --batch_size clips, 8 videos, the base rate


def test_a_run_with_repeated_clips_prints_the_rates_of_its_videos(data, tmp_path, capsys):
    import main
    cells = {}
    for k in (1, 2):
        args = flags(data, tmp_path / f'k{k}', '--repeat_aug', str(k), '--n_epochs', '1', '--no_val')
        assert main.main(args) == 0
        out = capsys.readouterr().out
        row = out[out.index('multigrid schedule'):].split('\n')[2]
        cells[k] = [(int(c.split(' x ')[0]), float(c.split(' lr ')[1])) for c in row.split('| ')[1].split(', ')]
    assert cells[1] == [(6, 0.03), (4, 0.02), (2, 0.01)]  # 24 videos / 4 steps: 6 clips at most, 3 x the rate
    assert cells[2] == [(8, 0.02), (4, 0.01), (2, 0.01)]  # 4 videos of 2 clips: 2 x the rate; 2 videos: the base


@pytest.mark.parametrize('world,new_world,done_batches', [(2, 3, 2), (3, 1, 1), (1, 2, 4)])
def test_another_topology_re_shards_the_rest_of_a_multigrid_epoch_each_sample_once(world, new_world, done_batches):
    n, cycle = 41, [(5, (2, 20, 4)), (3, (2, 28, 4)), (2, None)]
    before = [EpochSampler(n, seed=9, rank=r, world=world) for r in range(world)]
    for s in before:
        s.set_epoch(2, cycle)
    done = {item[0] for s in before for b in list(EpochBatches(s))[:done_batches] for item in b}
    samples_done = before[0].samples_done(done_batches)
    after = [EpochSampler(n, seed=9, rank=r, world=new_world) for r in range(new_world)]
    rest = []
    for s in after:
        s.set_epoch(2, cycle)
        s.rest_from(samples_done, phase=done_batches)
        batches = list(EpochBatches(s))
        assert [b[0][3] if len(b[0]) > 3 else None for b in batches] == \
            [cycle[(done_batches + k) % 3][1] for k in range(len(batches))]  # the cycle goes on where it stopped
        rest += [item[0] for b in batches for item in b]
    assert set(rest) | done == set(range(n)) and not (set(rest) & done)


def test_batchnorm_is_re_estimated_on_64_clips_unless_told():
    assert [calibration_videos('auto', b) for b in (16, 8, 3, 128)] == [64, 64, 66, 128]  # whole batches
    assert [calibration_videos(n, 16) for n in (0, 5)] == [0, 80]
    assert calibration_videos('auto', 16, repeat=2) == 32 and calibration_videos(3, 16, repeat=4) == 12  # K clips
    assert [parse_opts(a).multigrid_bn_batches for a in ([], ['--multigrid_bn_batches', '3'])] == ['auto', 3]


def test_recalibration_sets_the_plain_mean_of_its_batches_statistics_and_keeps_the_momentum():
    norm = torch.nn.BatchNorm3d(2, momentum=0.1)
    clips = [torch.randn(3, 2, 2, 3, 3) * 4 + 1, torch.randn(5, 2, 2, 3, 3)]
    loader = [{'clip': c} for c in clips]
    assert recalibrate_batchnorm(norm, loader, torch.device('cpu'), lambda x: x) == 8
    mean = torch.stack([c.mean(dim=(0, 2, 3, 4)) for c in clips]).mean(0)
    var = torch.stack([c.transpose(0, 1).reshape(2, -1).var(dim=1) for c in clips]).mean(0)
    assert torch.allclose(norm.running_mean, mean, atol=1e-5) and torch.allclose(norm.running_var, var, atol=1e-4)
    assert norm.momentum == 0.1 and norm.training
    before = norm.running_mean.clone()
    assert recalibrate_batchnorm(norm, [], torch.device('cpu'), lambda x: x) == 0  # no clip: the statistics kept
    assert torch.equal(norm.running_mean, before)


@pytest.mark.parametrize('told,repeat,clips', [(None, '1', 24), ('3', '1', 6), ('0', '1', None), (None, '2', 48),
                                               ('3', '2', 6)])
def test_a_run_re_estimates_batchnorm_on_the_clips_it_prints(data, tmp_path, capsys, monkeypatch, told, repeat, clips):
    """64 clips by default (24 videos here, K clips each), or --multigrid_bn_batches batches of --batch_size clips."""
    import main
    seen = []
    real = main.recalibrate_batchnorm
    monkeypatch.setattr(main, 'recalibrate_batchnorm', lambda *a, **k: seen.append(real(*a, **k)) or seen[-1])
    extra = ['--n_epochs', '1', '--no_val', '--repeat_aug', repeat] + \
        ([] if told is None else ['--multigrid_bn_batches', told])
    assert main.main(flags(data, tmp_path, *extra)) == 0
    out = capsys.readouterr().out
    if clips is None:
        assert seen == [] and 'BatchNorm after a coarse epoch: kept (--multigrid_bn_batches 0)' in out
    else:
        assert seen == [clips] and f're-estimated on {clips} full-shape training clips (batches of 2)' in out
