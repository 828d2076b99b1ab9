"""main.py as a cluster runs it: two torchrun agents on localhost standing for two nodes (c10d, gloo), with faults.

Marked ``multinode`` (a few minutes on two cores): ``python -m pytest -m multinode``; ``.ci/run`` runs them.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.multinode import ROOT, TINY, Job, descendants, environment, free_port, parent
from tests.video_fixtures import make_dataset, moving_frames, write_jpg_folder

pytestmark = pytest.mark.multinode
TIMING = {'clips_per_s', 'data_wait'}  # the log columns that measure the machine, not the training


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """48 training videos (12 batches of 2 per rank and epoch on two nodes) and 8 validation videos."""
    root = tmp_path_factory.mktemp('data')
    ann = make_dataset(root / 'jpg', 'jpg', labels=tuple('abcdefgh'), n_train=6, n_frames=(10, 12))
    return root / 'jpg', ann


def flags(data, out: Path, *extra: str) -> list:
    return ['--video_path', str(data[0]), '--annotation_path', str(data[1]), '--result_path', str(out),
            '--n_classes', '8', '--batch_size', '2', '--n_epochs', '2', *TINY, *extra]


def rows(path: Path) -> list:
    """A TSV log's rows as dicts, without the columns that measure the machine."""
    header, *lines = [line.split('\t') for line in path.read_text().splitlines()]
    return [{k: v for k, v in zip(header, line) if k not in TIMING} for line in lines]


def weights(path: Path) -> dict:
    return torch.load(path, map_location='cpu', weights_only=True)['state_dict']


def logged(out: Path, epoch: int, batch: int):
    """Whether rank 0 has logged ``batch`` of ``epoch`` (train_batch.log)."""
    log = out / 'train_batch.log'
    return lambda job: log.exists() and f'{epoch}\t{batch}\t' in log.read_text()


def worker_tracebacks(text: str) -> list:
    """Traceback lines that point into this project (torchrun's own report of a failed child is expected)."""
    return [line for line in text.splitlines() if line.strip().startswith('File "') and 'site-packages' not in line
            and '<frozen' not in line]


@pytest.fixture(scope='module')
def uninterrupted(data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('uninterrupted')
    job = Job(flags(data, tmp / 'out', '--n_threads', '1', '--n_epochs', '3'), tmp)
    assert job.wait() == [0, 0], job.all_output()
    return tmp / 'out'


@pytest.fixture(scope='module')
def preempted(data, tmp_path_factory):
    """SIGTERM to every process of the job in epoch 2, DataLoader workers too (as SLURM sends it: they must leave
    it to the main process); two copies of the result path then."""
    tmp = tmp_path_factory.mktemp('preempted')
    job = Job(flags(data, tmp / 'out', '--n_threads', '1', '--n_epochs', '3'), tmp)
    job.wait_for(logged(tmp / 'out', 2, 1))
    job.signal_workers(signal.SIGTERM)  # it lands a few fast batches later: in epoch 2, or in epoch 3
    assert job.wait() == [0, 0], job.all_output()
    assert re.search(r'signal 15: stopped after batch \d+ of epoch [23]', job.output(0)), job.all_output()
    for copy in ('reshard', 'seed'):
        shutil.copytree(tmp / 'out', tmp / copy)
    return tmp


def test_a_preempted_two_node_run_resumes_bitwise_with_the_same_log_rows(data, uninterrupted, preempted):
    job = Job(flags(data, preempted / 'out', '--resume_path', 'auto', '--n_threads', '1', '--n_epochs', '3'),
              preempted)
    assert job.wait() == [0, 0], job.all_output()
    assert re.search(r'epoch [23]: resuming after batch', job.output(0)), job.output(0)
    ours, theirs = weights(preempted / 'out' / 'save_latest.pth'), weights(uninterrupted / 'save_latest.pth')
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    for log in ('train.log', 'val.log', 'train_batch.log'):
        assert rows(preempted / 'out' / log) == rows(uninterrupted / log), log


def test_the_rest_of_the_epoch_resumes_on_one_process_with_another_batch_size(data, preempted):
    out = preempted / 'reshard'
    cmd = [sys.executable, 'main.py',
           *flags(data, out, '--resume_path', 'auto', '--batch_size', '4', '--n_epochs', '3')]
    done = subprocess.run([c for c in cmd if c != '--distributed'], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=environment())
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r'epoch [23]: resuming after (\d+) of its 48 samples, done by 2 processes x batch 2; the other '
                     r'\d+ are re-sharded over 1 x batch 4, each trained once', done.stdout), done.stdout
    assert [r['epoch'] for r in rows(out / 'train.log')] == ['1', '2', '3']


def test_another_seed_cannot_continue_a_preempted_epoch(data, preempted):
    cmd = [sys.executable, 'main.py', *flags(data, preempted / 'seed', '--resume_path', 'auto', '--manual_seed', '5',
                                             '--n_epochs', '3')]
    done = subprocess.run([c for c in cmd if c != '--distributed'], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=environment())
    assert done.returncode == 2
    assert done.stderr.count('\n') == 1 and 'preempted with --manual_seed 1: its order continues only with that seed' \
        in done.stderr, done.stderr


def test_bad_videos_on_one_node_keep_the_job_going_and_are_counted_once(data, tmp_path):
    shutil.copytree(data[0], tmp_path / 'jpg')
    broken = ['a_0', 'c_1', 'f_2']
    for vid in broken:
        for frame in (tmp_path / 'jpg' / vid[0] / vid).iterdir():
            frame.write_bytes(b'not a jpeg')
    job = Job(flags((tmp_path / 'jpg', tmp_path / 'jpg' / 'jpg.json'), tmp_path / 'out', '--n_epochs', '1'), tmp_path)
    assert job.wait(timeout=240) == [0, 0], job.all_output()
    assert [r['failed_videos'] for r in rows(tmp_path / 'out' / 'train.log')] == ['3']
    warned = re.findall(r"warning: rank (\d): .*/(\w_\d): no decodable frame .*takes its place", job.all_output())
    assert sorted(v for _, v in warned) == broken  # each once, by the rank whose share held it


def test_a_killed_worker_on_one_node_stops_every_node_cleanly_and_the_job_resumes(data, tmp_path):
    job = Job(flags(data, tmp_path / 'out', '--n_threads', '1'), tmp_path)
    job.wait_for(logged(tmp_path / 'out', 1, 1))
    main_worker = job.main_worker(1)
    loader_workers = [pid for pid in descendants(main_worker) if parent(pid) == main_worker]
    killed = time.monotonic()
    os.kill(loader_workers[0], signal.SIGKILL)
    job.wait(timeout=120)
    assert time.monotonic() - killed < 60
    for k in (0, 1):
        assert 'exitcode  : 3' in job.output(k), job.output(k)  # both ranks: the dead-worker code
        assert not worker_tracebacks(job.output(k)), job.output(k)
    assert re.search(r'a DataLoader worker died on another rank: stopped after batch \d+ of epoch \d; saved',
                     job.output(0)), job.output(0)
    assert re.search(r'rank 1: (a )?DataLoader worker', job.output(1)), job.output(1)  # how it died, by the rank it was
    resumed = Job(flags(data, tmp_path / 'out', '--resume_path', 'auto'), tmp_path)
    assert resumed.wait() == [0, 0], resumed.all_output()
    assert [r['epoch'] for r in rows(tmp_path / 'out' / 'train.log')] == ['1', '2']


def activitynet(root: Path) -> tuple:
    """Untrimmed validation videos with two or three labelled segments each: an ActivityNet annotation file."""
    taxonomy = [{'nodeId': 0, 'parentId': None, 'nodeName': 'Root'}] + \
        [{'nodeId': k + 1, 'parentId': 0, 'nodeName': name} for k, name in enumerate('abcdefgh')]
    db = {}
    for k in range(6):
        write_jpg_folder(root / f'v_{k}', moving_frames(40, 48, 64, seed=k))
        segments = [[0.0, 1.2], [1.4, 2.6], [2.8, 3.9]][:2 + k % 2]
        db[str(k)] = {'subset': 'validation', 'fps': 10.0, 'n_frames': 40,
                      'annotations': [{'segment': s, 'label': 'abcdefgh'[(k + j) % 8]} for j, s in enumerate(segments)]}
    (root / 'anet.json').write_text(json.dumps({'taxonomy': taxonomy, 'database': db}))
    return root, root / 'anet.json'


@pytest.mark.parametrize('kind', ['class folders', 'activitynet segments'])
def test_validation_and_inference_give_the_same_figures_and_json_on_one_and_two_processes(data, uninterrupted,
                                                                                        tmp_path, kind):
    """Per-video results gathered by merging, not overwriting: the segments of one ActivityNet video lie on both
    ranks. Batches of one video or segment (--inference_batch_size 1) make every clip's forward pass the same
    arithmetic on any number of processes: the JSON is the same bytes. Validation batches hold other videos
    beside each other, so its clip loss may differ in the last float32 digits; its video-level figures do not."""
    source = activitynet(tmp_path / 'anet') if kind == 'activitynet segments' else data
    evaluate = ['--no_train', '--resume_path', str(uninterrupted / 'save_latest.pth'), '--inference',
                '--inference_subset', 'val', '--inference_stride', '4', '--inference_batch_size', '1']
    if kind == 'activitynet segments':
        evaluate += ['--dataset', 'activitynet']
    single = [sys.executable, 'main.py', *flags(source, tmp_path / 'one', *evaluate)]
    done = subprocess.run([c for c in single if c != '--distributed'], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=environment())
    assert done.returncode == 0, done.stderr[-3000:]
    job = Job(flags(source, tmp_path / 'two', *evaluate), tmp_path)
    assert job.wait() == [0, 0], job.all_output()
    results = (tmp_path / 'one' / 'val.json').read_bytes()
    assert results == (tmp_path / 'two' / 'val.json').read_bytes()
    assert len(json.loads(results)['results']) == (6 if kind == 'activitynet segments' else 8)
    one, two = rows(tmp_path / 'one' / 'val.log'), rows(tmp_path / 'two' / 'val.log')
    figures = ('epoch', 'acc', 'video_top1', 'video_top5', 'mean_class_acc', 'bad_frames', 'failed_videos')
    assert [{k: r[k] for k in figures} for r in one] == [{k: r[k] for k in figures} for r in two]
    assert float(one[0]['loss']) == pytest.approx(float(two[0]['loss']), rel=1e-5)


def test_an_elastic_job_restarts_from_its_latest_checkpoint_after_a_node_dies(data, tmp_path):
    """--nnodes 1:2 --max_restarts 1: the agent of node 1 is killed; node 0 restarts alone and finishes the run."""
    job = Job(flags(data, tmp_path / 'out', '--resume_path', 'auto', '--checkpoint_every_minutes', '0.001'),
              tmp_path, nnodes='1:2', max_restarts=1)
    # the first timed save, not a logged batch: a batch is logged before the save it may be due (a kill between
    # the two left nothing to restart from)
    job.wait_for(lambda j: (tmp_path / 'out' / 'save_latest.pth').exists())
    for pid in [job.procs[1].pid, *descendants(job.procs[1].pid)]:
        os.kill(pid, signal.SIGKILL)
    codes = job.wait(timeout=300)
    assert codes[0] == 0, job.output(0)
    out = job.output(0)
    assert 'error: rank 0: a collective failed, another process of the job is gone' in out
    assert re.search(r'epoch 1: resuming after \d+ of its 48 samples, done by 2 processes x batch 2; the other \d+ '
                     r'are re-sharded over 1 x batch 2', out), out
    assert 'done: epoch 2' in out and not worker_tracebacks(out)


def test_the_original_spawned_form_on_two_nodes_returns_real_exit_codes_and_one_line_errors(data, tmp_path):
    """python main.py --distributed --world_size 2 on two "nodes" (NODE_RANK 0 and 1), one process each."""
    port = str(free_port())
    common = flags(data, tmp_path / 'out', '--world_size', '2', '--dist_url', f'tcp://127.0.0.1:{port}', '--n_epochs',
                   '1', '--resume_path', str(tmp_path / 'missing.pth'))
    procs = [subprocess.Popen([sys.executable, 'main.py', *common], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=environment(NODE_RANK=str(k)))
             for k in range(2)]
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 2, err
        assert err.strip() == f'error: {tmp_path / "missing.pth"}: no such checkpoint file', err


def test_inference_right_after_two_node_training_scores_with_the_saved_model(data, tmp_path):
    """--no_val --inference after training: every rank scores its shard with rank 0's BatchNorm statistics,
    those of the saved checkpoint, so the JSON is that of the checkpoint scored on one process."""
    infer = ['--inference', '--inference_subset', 'val', '--inference_stride', '4', '--inference_batch_size', '1']
    job = Job(flags(data, tmp_path / 'two', '--n_epochs', '1', '--no_val', *infer), tmp_path)
    assert job.wait() == [0, 0], job.all_output()
    single = [sys.executable, 'main.py', *flags(data, tmp_path / 'one', '--no_train', '--no_val', '--resume_path',
                                                 str(tmp_path / 'two' / 'save_latest.pth'), *infer)]
    done = subprocess.run([c for c in single if c != '--distributed'], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=environment())
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / 'one' / 'val.json').read_bytes() == (tmp_path / 'two' / 'val.json').read_bytes()


def test_a_two_node_multigrid_run_preempted_mid_cycle_resumes_bitwise(data, tmp_path):
    """--multigrid on two nodes: every rank takes each batch's shape from the same cycle, a SIGTERM in the
    coarse epochs saves mid-cycle, and the resumed job ends bitwise as the uninterrupted one."""
    extra = ('--n_threads', '1', '--n_epochs', '3', '--multistep_milestones', '2', '--multigrid',
             '--multigrid_min_steps', '2')
    (tmp_path / 'r').mkdir()
    (tmp_path / 'j').mkdir()
    reference = Job(flags(data, tmp_path / 'reference', *extra), tmp_path / 'r')
    assert reference.wait() == [0, 0], reference.all_output()
    assert 'multigrid schedule' in reference.output(0)
    job = Job(flags(data, tmp_path / 'out', *extra), tmp_path / 'j')
    job.wait_for(logged(tmp_path / 'out', 1, 1))
    job.signal_workers(signal.SIGTERM)
    assert job.wait() == [0, 0], job.all_output()
    assert re.search(r'signal 15: stopped after batch \d+ of epoch \d', job.output(0)), job.all_output()
    job = Job(flags(data, tmp_path / 'out', *extra, '--resume_path', 'auto'), tmp_path / 'j')
    assert job.wait() == [0, 0], job.all_output()
    ours, theirs = weights(tmp_path / 'out' / 'save_latest.pth'), weights(tmp_path / 'reference' / 'save_latest.pth')
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)
    for log in ('train.log', 'val.log', 'train_batch.log'):
        assert rows(tmp_path / 'out' / log) == rows(tmp_path / 'reference' / log), log
