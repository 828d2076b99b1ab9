"""The benchmark scripts still run end to end (tiny sizes; their numbers are not checked here)."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.video_fixtures import make_dataset, moving_frames, write_video

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'bench'))

import bench_bn_recalibration  # noqa: E402
import bench_duplicates  # noqa: E402
import bench_loader  # noqa: E402
import bench_scale  # noqa: E402
import bench_shards  # noqa: E402
import bench_time_to_accuracy  # noqa: E402
import bench_train  # noqa: E402
import moving_task  # noqa: E402


def test_bench_loader_measures_every_pipeline(tmp_path, capsys):
    out = tmp_path / 'numbers.json'
    assert bench_loader.main(['--videos', '4', '--frames', '20', '--seconds', '0.01', '--workers', '1',
                              '--data_dir', str(tmp_path / 'data'), '--json', str(out)]) == 0
    numbers = json.loads(out.read_text())
    assert all(v > 0 for v in numbers['per_core'].values()) and len(numbers['per_core']) == 18
    assert 'frame table stored (read + check)' in numbers['video_breakdown_ms'] and numbers['workers']['video']['1'] > 0
    assert '| target (x reference) |' in capsys.readouterr().out


def test_bench_duplicates_plants_what_a_small_set_holds(capsys):
    bench_duplicates.search(50, 0.05, 100, 10)  # 48 training, 2 validation signatures: 2 pairs planted, not 100
    assert '| 48 training, 2 validation |' in capsys.readouterr().out


def test_bench_train_runs_end_to_end_on_a_prepared_dataset(tmp_path, capsys):
    ann = make_dataset(tmp_path / 'jpg', 'jpg', labels=('a', 'b', 'c'), n_train=2, h=24, w=32)
    assert bench_train.main(['--device', 'cpu', '--model', 'resnet', '--model_depth', '10', '--widen_factor', '0.25',
                             '--modes', 'fp32', '--skip_sweep', '--batch_size', '2', '--steps', '3', '--warmup', '0',
                             '--sample_size', '16', '--sample_duration', '4', '--workers', '0',
                             '--data_dir', str(tmp_path / 'jpg'), '--annotation_path', str(ann)]) == 0
    out = capsys.readouterr().out  # 3 steps of 2: all 6 videos, labels 0-2, trained as 3 classes from the file
    assert '| model | mode | end-to-end clips/s (jpg, 0 workers) |' in out and '| resnet-10 | fp32 |' in out


def test_bench_scale_builds_and_reads(tmp_path, capsys):
    assert bench_scale.main(['--entries', '60', '--batches', '4', '--workers', '1', '--every', '2', '--folders', '2',
                             '--frames', '20', '--sample_size', '32', '--data_dir', str(tmp_path)]) == 0
    assert '60' in capsys.readouterr().out


TINY_MOVING = ['--classes', '2', '--videos_per_class', '2', '--frames', '8']


@pytest.fixture
def media(tmp_path):
    """Stand-ins for shared/media's two clips (a clean clone has no shared/ beside it): moving texture with a
    scene cut in each, so the task's shot splitting has work to do."""
    folder = tmp_path / 'media'
    for k, name in enumerate(moving_task.SOURCES):
        frames = moving_frames(20, 144, 256, seed=k) + moving_frames(20, 144, 256, seed=k + 7)[::-1]
        write_video(folder / name, [255 - f if i >= 20 else f for i, f in enumerate(frames)])
    return folder


def test_moving_task_makes_a_ucf101_dataset_from_its_seed(tmp_path, media):
    root = tmp_path / 'data'
    assert moving_task.main(['--root', str(root), '--media', str(media), *TINY_MOVING]) == 0
    split = json.loads((root / 'ucf101_01.json').read_text())
    assert split['labels'] == ['Left', 'Right']
    assert sorted(v['subset'] for v in split['database'].values()) == ['training', 'training', 'validation', 'validation']
    assert len(list((root / 'jpg' / 'Left' / 'v_Left_g01_c01').glob('*.jpg'))) == 8
    before = (root / 'videos' / 'Left' / 'v_Left_g01_c01.mp4').read_bytes()
    (root / 'videos' / 'Left' / 'v_Left_g01_c01.mp4').unlink()
    assert moving_task.main(['--root', str(root), '--media', str(media), *TINY_MOVING]) == 0
    assert (root / 'videos' / 'Left' / 'v_Left_g01_c01.mp4').read_bytes() == before  # the seed decides


def test_moving_task_windows_move_in_their_class_direction():
    spec = moving_task.MovingSpec(frames=10, still=True)
    source = np.random.default_rng(0).integers(0, 255, (12, 144, 256, 3), dtype=np.uint8)
    for label, (dx, dy) in moving_task.MOTIONS.items():
        path = moving_task.window_path((dx, dy), 2.0, spec, (144, 256), np.random.default_rng(1))
        moved = np.subtract(path[-1], path[0])
        assert np.allclose(moved, np.multiply((dx, dy), 2.0 * 9), atol=1), label
    frames = moving_task.render('Down', [source], spec, np.random.default_rng(2))
    assert len(frames) == 10 and frames[0].shape == (72, 96, 3)
    shifts = [k for k in range(1, 30) if np.array_equal(frames[0][k:], frames[-1][:-k])]
    assert len(shifts) == 1 and abs(shifts[0] - 18) <= 9  # the content moved up: the window went down


def test_bench_time_to_accuracy_reports_the_plain_recipe(tmp_path, capsys, media):
    work = tmp_path / 'work'
    assert bench_time_to_accuracy.main([
        '--tasks', 'moving', '--media', str(media), '--recipes', 'plain', '--maths', 'default', '--epochs', '1',
        '--work_dir', str(work), '--data_root', str(tmp_path / 'data'), '--moving_classes', '2',
        '--moving_videos_per_class', '2', '--moving_frames', '8',
        '--main_flags=--sample_size 32 --sample_duration 4 --batch_size 2 --n_threads 0 '
        '--resnet_widen_factor 0.125 --checkpoint 0']) == 0
    out = capsys.readouterr().out
    assert '| plain | default | 1 |' in out and 'avx512_bf16' in out
    run, = json.loads((work / 'time_to_accuracy.json').read_text())['runs']
    assert run['exit_code'] == 0 and run['epochs'][0]['epoch'] == 1
    assert 0 < run['epochs'][0]['wall_s'] <= run['wall_s'] and run['epochs'][0]['video_top1'] is not None


def test_bench_shards_reads_files_and_shards_alike(tmp_path, capsys, media):
    assert bench_shards.main(['--videos', '12', '--frames', '20', '--workers', '1', '--no_cold', '--epochs', '2',
                              '--media', str(media), '--work_dir', str(tmp_path), '--samples', '3000',
                              '--shards', '10']) == 0
    out = capsys.readouterr().out
    rows = [line.split('|') for line in out.splitlines() if line.startswith('| jpg') or line.startswith('| video')]
    assert len(rows) == 4 and all(float(r[4]) > 0 and r[5].strip() == '0' for r in rows)  # clips/s, none failed
    assert 'after each of 2 epochs' in out and 'scale: 3,000 samples in 10 shards' in out


def test_time_to_accuracy_table_compares_with_the_plain_recipe():
    def run(recipe, wall, *epochs):
        rows = [{'epoch': k + 1, 'wall_s': w, 'video_top1': a} for k, (w, a) in enumerate(epochs)]
        return bench_time_to_accuracy.Run('t', recipe, 'default', 1, [], 0, wall, '', rows)
    plain = run('plain', 100.0, (50.0, 0.6), (80.0, 0.8), (95.0, 0.7), (100.0, 0.8))
    fast = run('multigrid-hold', 60.0, (20.0, 0.5), (40.0, 0.85), (60.0, 0.9))
    slow = run('multigrid', 70.0, (70.0, 0.79))
    rows = {line.split('|')[1].strip(): [c.strip() for c in line.split('|')[2:-1]]
            for line in bench_time_to_accuracy.task_table('t', [plain, fast, slow]) if line.startswith('| ')}
    assert rows['plain'][3:] == ['100.0', '80.0 (epoch 2)', '1.00x', '1.25x']  # its target: its own final 80%
    assert rows['multigrid-hold'][3:] == ['60.0', '40.0 (epoch 2)', '2.00x', '2.50x']
    assert rows['multigrid'][4:] == ['not reached', '-', '-']
    flags = bench_time_to_accuracy.run_flags(bench_time_to_accuracy.make_tasks(Path('d'), moving_task.MovingSpec())[
        'moving16'], 'multigrid-hold', 'fp32', None, [])
    assert flags[flags.index('--sample_duration', flags.index('--n_classes')) + 1] == '16'  # the shape wins
    assert flags[-6:] == ['--multigrid', '--multigrid_min_steps', '100000', '--precision', 'fp32', '--no_progress']


def test_bench_bn_recalibration_re_estimates_a_runs_checkpoint_on_each_count(tmp_path, capsys):
    import main
    ann = make_dataset(tmp_path / 'jpg', 'jpg', labels=('a', 'b'), n_train=4, h=24, w=32)
    assert main.main(['--video_path', str(tmp_path / 'jpg'), '--annotation_path', str(ann), '--result_path',
                      str(tmp_path / 'run'), '--n_classes', '2', '--model', 'resnet', '--model_depth', '10',
                      '--resnet_widen_factor', '0.25', '--sample_size', '32', '--sample_duration', '8',
                      '--batch_size', '2', '--n_threads', '0', '--n_epochs', '2', '--checkpoint', '1',
                      '--n_val_samples', '1', '--precision', 'fp32', '--no_progress', '--multigrid']) == 0
    capsys.readouterr()
    assert bench_bn_recalibration.main([str(tmp_path / 'run'), '--epochs', '1', '--batches', '1', '2', '8']) == 0
    rows = [line.split(' | ') for line in capsys.readouterr().out.splitlines() if line.startswith('| save_1 ')]
    assert [(r[1], r[2]) for r in rows] == [('1', '2'), ('2', '4'), ('8', '8')]  # 8 training videos at most
    assert all(0 <= float(r[3].rstrip('%')) <= 100 and float(r[5].rstrip(' |')) >= 0 for r in rows), rows
    assert len({r[4] for r in rows}) == 3  # each count its own statistics: the checkpoint's restored in between
