"""Tar shards (util_scripts.write_shards, main.py --file_type shards): written and read back sample for sample,
faults counted, exact resume, sources through a pipe and HTTP (the epoch's order: tests/test_shard_order.py)."""
import json
import os
import shutil
import signal
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest
import torch

import datasets
from datasets.formats.shard_index import ShardIndexError, location, parse_index
from tests.test_resume import assert_same_weights, start_and_interrupt
from tests.video_fixtures import make_dataset
from util_scripts import write_shards

ROOT = Path(__file__).resolve().parents[1]
N_FRAMES = (12, 20, 9, 16, 14, 10, 18)


def write(video_root: Path, ann: Path, out: Path, *extra: str) -> int:
    return write_shards.main([str(video_root), str(ann), str(out), '--no_progress', '--n_jobs', '1', *extra])


@pytest.fixture(scope='module')
def made(tmp_path_factory):
    """The same 14 training and 2 validation videos in every file type, and each written into shards."""
    root = tmp_path_factory.mktemp('shard_data')
    out = {}
    for file_type in ('jpg', 'hdf5', 'video'):
        ann = make_dataset(root / file_type, file_type, n_frames=N_FRAMES, n_train=7)
        shards = root / f'{file_type}_shards'
        assert write(root / file_type, ann, shards, '--file_type', file_type, '--shard_mb', '0.05') == 0
        out[file_type] = (root / file_type, ann, shards)
    return out


def options(video_path, ann, file_type, **extra) -> Namespace:
    from opts import parse_opts
    return parse_opts(['--video_path', str(video_path), '--annotation_path', str(ann), '--file_type', file_type,
                       '--sample_size', '32', '--sample_duration', '8', '--n_classes', '2', '--n_val_samples', '2',
                       *[str(x) for k, v in extra.items() for x in ((f'--{k}',) if v is True else (f'--{k}', v))]])


@pytest.mark.parametrize('file_type', ['jpg', 'hdf5', 'video'])
def test_every_sample_reads_back_as_the_files_give_it(made, file_type):
    video_root, ann, shards = made[file_type]
    index = json.loads((shards / 'training.shards.json').read_text())
    assert index['samples'] == 14 and len(index['shards']) > 1 and index['failed'] == []
    for entry in index['shards']:  # the recorded checksums are the files'
        import hashlib
        assert hashlib.sha256((shards / entry['name']).read_bytes()).hexdigest() == entry['sha256']
    for make in (datasets.get_validation_data, datasets.get_training_data):
        files = make(options(video_root, ann, file_type))
        sharded = make(options(shards, ann, 'shards'))
        assert len(sharded) == len(files) and sharded.class_names == files.class_names
        by_id = {files.records[i].video_id: i for i in range(len(files))}
        seen = []
        for k in range(len(sharded)):
            record = sharded.records[k]
            twin = files.records[by_id[record.video_id]]
            assert (record.frames, record.label, record.segment) == (twin.frames, twin.label, twin.segment)
            a, b = sharded[(k, 7)], files[(by_id[record.video_id], 7)]  # the same seed: the same draws
            key = 'clips' if 'clips' in a else 'clip'
            assert torch.equal(a[key], b[key]) and a['label'] == b['label'] and a['video_id'] == b['video_id']
            seen.append(record.video_id)
        assert sorted(seen) == sorted(by_id)


def copy_to_damage(shards: Path, tmp_path: Path, number: int, remote: bool) -> tuple:
    """A copy of ``shards`` to damage: (its source, folder or ``pipe:cat``; the index entry of shard ``number``;
    that shard's file)."""
    shutil.copytree(shards, tmp_path / 's')
    victim = json.loads((tmp_path / 's' / 'training.shards.json').read_text())['shards'][number]
    source = f"pipe:cat {tmp_path / 's'}/{{name}}" if remote else str(tmp_path / 's')
    return source, victim, tmp_path / 's' / victim['name']


@pytest.mark.parametrize('remote', [False, True], ids=['folder', 'pipe'])
def test_a_truncated_shard_fails_its_later_samples_and_the_epoch_goes_on(made, tmp_path, remote):
    _, ann, shards = made['video']
    source, victim, path = copy_to_damage(shards, tmp_path, 1, remote)
    path.write_bytes(path.read_bytes()[:victim['offsets'][2] + 700])  # cut inside its third sample
    done = subprocess.run([sys.executable, 'main.py', '--file_type', 'shards', '--video_path', source,
                           '--annotation_path', str(ann), '--result_path', str(tmp_path / 'out'), '--n_classes', '2',
                           '--model', 'resnet', '--model_depth', '10', '--resnet_widen_factor', '0.25',
                           '--sample_size', '32', '--sample_duration', '8', '--batch_size', '2', '--n_epochs', '1',
                           '--n_threads', '0', '--no_progress', '--precision', 'fp32', '--no_val'],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lost = victim['samples'] - 2
    if remote:  # a stream cannot go past the cut: one warning, and the shard's samples from there on fail
        assert f"{victim['name']}: cut short or corrupt" in done.stderr and 'its samples from #2 on fail' in done.stderr
    else:  # each sample is read at its own offset: those past the cut fail, each named
        assert f"{victim['name']}#2: cut short or corrupt" in done.stderr, done.stderr
    assert f"{victim['name']}#1:" not in done.stderr and f"{victim['name']}#{victim['samples'] - 1}:" in done.stderr
    failed = [line.split('\t') for line in (tmp_path / 'out' / 'train.log').read_text().splitlines()]
    assert dict(zip(failed[0], failed[1]))['failed_videos'] == str(lost)


def test_a_pipe_source_trains_bitwise_as_the_folder(made, tmp_path):
    _, ann, shards = made['jpg']
    runs = {}
    for name, source in (('folder', str(shards)), ('pipe', f'pipe:cat {shards}/{{name}}')):
        cmd = [sys.executable, 'main.py', '--file_type', 'shards', '--video_path', source, '--annotation_path', str(ann),
               '--result_path', str(tmp_path / name), '--n_classes', '2', '--model', 'resnet', '--model_depth', '10',
               '--resnet_widen_factor', '0.25', '--sample_size', '32', '--sample_duration', '8', '--batch_size', '2',
               '--n_epochs', '1', '--n_threads', '2', '--no_progress', '--precision', 'fp32', '--cpu_threads', '1',
               '--inference', '--inference_subset', 'val']
        done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                              env=dict(os.environ, OMP_NUM_THREADS='1'))
        assert done.returncode == 0, done.stderr[-3000:]
        runs[name] = torch.load(tmp_path / name / 'save_latest.pth', weights_only=True)['state_dict']
    assert_same_weights(runs['folder'], runs['pipe'])
    assert (tmp_path / 'folder' / 'val.json').read_bytes() == (tmp_path / 'pipe' / 'val.json').read_bytes()


def test_bad_videos_are_named_counted_and_listed_and_any_number_of_readers_writes_the_same_shards(tmp_path):
    ann = make_dataset(tmp_path / 'v', 'video', n_frames=N_FRAMES, n_train=3)
    (tmp_path / 'v' / 'jump' / 'jump_1.mp4').write_bytes(b'\0' * 4096)  # no longer a video
    for jobs in ('1', '2'):
        code = subprocess.run([sys.executable, '-m', 'util_scripts.write_shards', str(tmp_path / 'v'), str(ann),
                               str(tmp_path / jobs), '--file_type', 'video', '--subset', 'training', '--n_jobs', jobs,
                               '--shard_mb', '0.02'], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert code.returncode == 1
        assert 'jump_1.mp4' in code.stderr and 'not written' in code.stderr
        assert 'training: 5 videos in' in code.stdout and '1 failed' in code.stdout
        index = json.loads((tmp_path / jobs / 'training.shards.json').read_text())
        assert [f['id'] for f in index['failed']] == ['jump_1'] and len(index['shards']) > 1
    assert (tmp_path / '1' / 'training.shards.json').read_bytes() == (tmp_path / '2' / 'training.shards.json').read_bytes()


def test_an_interrupted_write_continues_and_ends_as_an_uninterrupted_one(made, tmp_path, monkeypatch):
    video_root, ann, shards = made['hdf5']
    import datasets.shards.writer as writer
    real, calls = writer.make_sample, []

    def dying(*args):
        calls.append(1)
        if len(calls) == 9:
            raise KeyboardInterrupt  # a kill between two samples, after some shards were closed
        return real(*args)
    monkeypatch.setattr(writer, 'make_sample', dying)
    with pytest.raises(KeyboardInterrupt):
        write(video_root, ann, tmp_path, '--file_type', 'hdf5', '--shard_mb', '0.05', '--subset', 'training')
    assert (tmp_path / 'training.shards.partial.json').exists() and not (tmp_path / 'training.shards.json').exists()
    assert not list(tmp_path.glob('.*.tmp'))  # the shard it was writing is dropped, not left half-written
    monkeypatch.setattr(writer, 'make_sample', real)
    assert write(video_root, ann, tmp_path, '--file_type', 'hdf5', '--shard_mb', '0.05', '--subset', 'training') == 0
    assert not (tmp_path / 'training.shards.partial.json').exists() and not list(tmp_path.glob('.*.tmp'))
    assert (tmp_path / 'training.shards.json').read_bytes() == (shards / 'training.shards.json').read_bytes()


def test_index_names_never_leave_the_folder_or_reach_a_shell():
    good = {'format': 'video-shards', 'version': 1, 'payload': 'video', 'labels': ['a'], 'samples': 1,
            'shards': [{'name': 'training-000000.tar', 'samples': 1, 'bytes': 2048, 'offsets': [0],
                        'sha256': '0' * 64}]}
    parse_index(json.dumps(good).encode(), 'i.json')
    for name in ('../x.tar', 'a;rm -rf ~.tar', '/etc/x.tar', 'x.tar\n'):
        bad = json.loads(json.dumps(good))
        bad['shards'][0]['name'] = name
        with pytest.raises(ShardIndexError, match='i.json: shard 0 has the name'):
            parse_index(json.dumps(bad).encode(), 'i.json')
    for field, value in (('offsets', [4096]), ('offsets', [3]), ('samples', 2), ('bytes', -1)):
        bad = json.loads(json.dumps(good))
        bad['shards'][0][field] = value
        with pytest.raises(ShardIndexError):
            parse_index(json.dumps(bad).encode(), 'i.json')
    assert location('pipe:curl -s https://h/{name}', 'training-000000.tar') == 'pipe:curl -s https://h/training-000000.tar'
    with pytest.raises(ShardIndexError, match='needs {name}'):
        location('pipe:cat x', 'training-000000.tar')
    assert location('s3://b/k/', 'training-000000.tar') == 'pipe:aws s3 cp s3://b/k/training-000000.tar -'


def test_a_url_video_path_is_kept_as_written():
    opt = options('https://host/kinetics/shards', 'a.json', 'shards')
    assert opt.video_path == ['https://host/kinetics/shards']
    with pytest.raises(SystemExit):
        options('https://host/kinetics', 'a.json', 'jpg')


def test_shards_resume_bitwise_after_sigterm(made, tmp_path):
    _, ann, shards = made['video']
    base = [sys.executable, 'main.py', '--file_type', 'shards', '--video_path', str(shards), '--annotation_path',
            str(ann), '--n_classes', '2', '--model', 'resnet', '--model_depth', '10', '--resnet_widen_factor', '0.25',
            '--sample_size', '32', '--sample_duration', '8', '--batch_size', '2', '--n_threads', '2', '--n_epochs',
            '2', '--checkpoint', '0', '--learning_rate', '0.01', '--n_val_samples', '1', '--deterministic',
            '--manual_seed', '3', '--no_progress', '--precision', 'fp32', '--cpu_threads', '1', '--shard_buffer', '3']
    env = dict(os.environ, OMP_NUM_THREADS='1')
    done = subprocess.run(base + ['--result_path', str(tmp_path / 'ref')], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    out = tmp_path / 'cut'
    proc = start_and_interrupt(base + ['--result_path', str(out)], out, signal.SIGTERM, 7 + 3)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0 and 'stopped after batch' in stdout, stderr[-3000:]
    done = subprocess.run(base + ['--result_path', str(out), '--resume_path', 'auto'], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=env)
    assert done.returncode == 0 and 'resuming after batch' in done.stdout, done.stderr[-3000:]
    ref = torch.load(tmp_path / 'ref' / 'save_latest.pth', weights_only=True)['state_dict']
    assert_same_weights(ref, torch.load(out / 'save_latest.pth', weights_only=True)['state_dict'])


def test_multi_view_inference_from_shards_is_the_files_to_the_byte(made, tmp_path):
    video_root, ann, shards = made['video']
    common = ['--annotation_path', str(ann), '--n_classes', '2', '--model', 'resnet', '--model_depth', '10',
              '--resnet_widen_factor', '0.25', '--sample_size', '32', '--sample_duration', '8', '--n_threads', '2',
              '--no_progress', '--precision', 'fp32', '--cpu_threads', '1', '--inference', '--inference_subset',
              'val', '--inference_crop', 'three', '--inference_flip', '--inference_stride', '4']
    train = subprocess.run([sys.executable, 'main.py', '--file_type', 'video', '--video_path', str(video_root),
                            '--result_path', str(tmp_path / 'model'), '--n_epochs', '1', '--batch_size', '2', *common],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert train.returncode == 0, train.stderr[-3000:]
    for name, source in (('files', ['--file_type', 'video', '--video_path', str(video_root)]),
                         ('shards', ['--file_type', 'shards', '--video_path', str(shards)])):
        done = subprocess.run([sys.executable, 'main.py', *source, '--result_path', str(tmp_path / name), '--no_train',
                               '--no_val', '--resume_path', str(tmp_path / 'model' / 'save_latest.pth'), *common],
                              cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    ours, theirs = (tmp_path / 'shards' / 'val.json').read_bytes(), (tmp_path / 'files' / 'val.json').read_bytes()
    assert ours == theirs and len(json.loads(ours)['results']) == 2


def test_a_video_sample_is_read_with_the_frame_table_its_shard_carries(made, monkeypatch):
    _, ann, shards = made['video']
    import datasets.formats.video_files as video_files
    built = []
    real = video_files._built_table
    monkeypatch.setattr(video_files, '_built_table', lambda path: built.append(path) or real(path))
    data = datasets.get_validation_data(options(shards, ann, 'shards'))
    for k in range(len(data)):
        assert 'failed' not in data[k]
    assert built == []  # every table came from the shard, none was rebuilt by decoding the video


@pytest.mark.parametrize('problem', ['no index', 'other labels'])
def test_shards_that_do_not_fit_the_run_are_one_line_errors(made, tmp_path, problem):
    _, ann, shards = made['jpg']
    source = tmp_path if problem == 'no index' else shards
    if problem == 'other labels':
        data = json.loads(ann.read_text())
        data['labels'] = ['wave', 'jump']
        ann = tmp_path / 'other.json'
        ann.write_text(json.dumps(data))
    done = subprocess.run([sys.executable, 'main.py', '--file_type', 'shards', '--video_path', str(source),
                           '--annotation_path', str(ann), '--result_path', str(tmp_path / 'out'), '--n_classes', '2',
                           '--model', 'resnet', '--model_depth', '10', '--resnet_widen_factor', '0.25',
                           '--sample_size', '32', '--no_progress'], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stderr.count('\n') == 1, done.stderr
    assert ('training.shards.json' in done.stderr if problem == 'no index' else
            "class 0 differs ('jump' in the shards, 'wave' in the file)" in done.stderr), done.stderr


def test_a_multigrid_run_reads_shards_in_its_cycle_of_batch_sizes(made, tmp_path):
    from datasets.multigrid import calibration_items
    _, ann, shards = made['jpg']
    done = subprocess.run([sys.executable, 'main.py', '--file_type', 'shards', '--video_path', str(shards),
                           '--annotation_path', str(ann), '--result_path', str(tmp_path / 'out'), '--n_classes', '2',
                           '--model', 'resnet', '--model_depth', '10', '--resnet_widen_factor', '0.25',
                           '--sample_size', '32', '--sample_duration', '8', '--batch_size', '2', '--n_threads', '2',
                           '--n_epochs', '2', '--n_val_samples', '1', '--no_progress', '--precision', 'fp32',
                           '--multigrid', '--multigrid_min_steps', '2', '--multigrid_bn_batches', '2'],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert 'failed' not in done.stderr and len((tmp_path / 'out' / 'train.log').read_text().splitlines()) == 3
    items = [i for i, _ in calibration_items(43, 3, 4, 0, 2, contiguous=True)] + \
        [i for i, _ in calibration_items(43, 3, 4, 1, 2, contiguous=True)]
    assert sorted((i - items[0]) % 43 for i in items) == list(range(8))  # a run of 8 consecutive samples


def test_multi_label_videos_keep_every_label_and_need_multilabel(tmp_path):
    ann = make_dataset(tmp_path / 'jpg', 'jpg', n_frames=(12, 20), n_train=2)
    data = json.loads(ann.read_text())
    data['database']['jump_0']['annotations']['label'] = ['jump', 'wave']
    ann.write_text(json.dumps(data))
    assert write(tmp_path / 'jpg', ann, tmp_path / 's', '--file_type', 'jpg') == 0
    with pytest.raises(datasets.AnnotationError, match='has 2 labels: train multi-label data with --multilabel'):
        datasets.get_training_data(options(tmp_path / 's', ann, 'shards'))
    train = datasets.get_training_data(options(tmp_path / 's', ann, 'shards', multilabel=True))
    targets = {train.records[k].video_id: train.target(k).tolist() for k in range(len(train))}
    assert targets == {'jump_0': [1.0, 1.0], 'jump_1': [1.0, 0.0], 'wave_0': [0.0, 1.0], 'wave_1': [0.0, 1.0]}


@pytest.mark.parametrize('file_type', ['jpg', 'hdf5'])
def test_jpeg_frames_in_shards_decode_at_their_crops_scale(tmp_path, file_type):
    from datasets.encoded_clip import EncodedClip
    ann = make_dataset(tmp_path / file_type, file_type, n_frames=(12, 20), n_train=1, h=96, w=128)
    assert write(tmp_path / file_type, ann, tmp_path / 's', '--file_type', file_type) == 0
    files = datasets.get_validation_data(options(tmp_path / file_type, ann, file_type))
    sharded = datasets.get_validation_data(options(tmp_path / 's', ann, 'shards'))
    by_id = {files.records[i].video_id: i for i in range(len(files))}
    for k in range(len(sharded)):
        record = sharded.records[k]
        clip, _ = sharded.loader(record.path, list(record.frames)[:8])
        assert isinstance(clip, EncodedClip)  # still encoded: decoded by the crop, at its scale
        sharded.spatial_transform(clip)
        assert clip.factor == 2  # 96 rows to a 32-pixel short side: decoded at half size
        assert torch.equal(sharded[k]['clips'], files[by_id[record.video_id]]['clips'])


@pytest.mark.parametrize('remote', [False, True], ids=['folder', 'pipe'])
def test_a_sample_with_bad_metadata_fails_and_so_does_what_a_stream_cannot_pass(made, tmp_path, remote):
    import tarfile
    _, ann, shards = made['jpg']
    source, victim, path = copy_to_damage(shards, tmp_path, 0, remote)
    with tarfile.open(path) as tar:
        member = next(m for m in tar.getmembers() if m.name == '000000001.json')
    with open(path, 'r+b') as f:  # the same length, no longer JSON: the tar itself stays sound
        f.seek(member.offset_data)
        f.write(b'[' * member.size)
    train = datasets.get_training_data(options(source, ann, 'shards'))
    failed = [k for k in range(victim['samples']) if not train.records[k].frames]
    assert failed == (list(range(1, victim['samples'])) if remote else [1])
    assert 'bad sample metadata' in str(train.records[1].path)
    assert all(train.records[k].frames for k in range(victim['samples'], len(train)))  # other shards unharmed


@pytest.mark.skipif(shutil.which('curl') is None, reason='WebDataset opens http(s) URLs with curl')
def test_an_http_source_streams_the_same_samples_as_the_folder(made, tmp_path):
    import socket
    import time
    _, ann, shards = made['jpg']
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, '-m', 'http.server', str(port), '--bind', '127.0.0.1', '--directory',
                               str(shards)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(('127.0.0.1', port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        local = datasets.get_validation_data(options(shards, ann, 'shards'))
        remote = datasets.get_validation_data(options(f'http://127.0.0.1:{port}/', ann, 'shards'))
        assert not remote.videos.shards.seekable and len(remote) == len(local)
        for k in range(len(local)):
            assert remote.records[k].video_id == local.records[k].video_id
            assert torch.equal(remote[k]['clips'], local[k]['clips'])
    finally:
        server.terminate()
        server.wait(timeout=10)
