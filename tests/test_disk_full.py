"""A full disk or an I/O error while writing: one-line error naming the file and the cause,
the previous file intact, no temp file left; for every writer, and on a real full disk."""
import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import inference
from common import atomic
from datasets.formats.annotation_json import write_annotation_json
from common.atomic import WriteError, atomic_write_bytes
from common.errors import UserError
from evaluation.reports import write_reports
from models import generate_model, save_checkpoint

CFG = dict(model='resnet', model_depth=10, n_classes=3, resnet_widen_factor=0.25)
REPO = Path(__file__).resolve().parents[1]


class FullDisk:
    """A file object that takes ``room`` bytes, then fails as a full disk does."""

    def __init__(self, f, room: int):
        self.f, self.room = f, room

    def write(self, data) -> int:
        n = memoryview(data).nbytes
        if n > self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= n
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


@pytest.fixture
def disk_full(monkeypatch):
    """Every atomic write finds room for 100 bytes only."""
    monkeypatch.setattr(atomic, 'open', lambda path, mode='r', *a, **k: (
        FullDisk(open(path, mode, *a, **k), 100) if 'w' in mode else open(path, mode, *a, **k)), raising=False)


def _features():
    return {'x/a.mp4': [((0, 8), torch.ones(64)), ((8, 16), torch.zeros(64))], 'b.mp4': [((0, 8), torch.ones(64))]}


WRITERS = {
    'checkpoint': lambda p: save_checkpoint(p / 'save_1.pth', generate_model(**CFG), CFG),
    'results json': lambda p: inference.atomic_write_json(p / 'val.json', {'results': {'v': list(range(100))}}),
    'annotation json': lambda p: write_annotation_json(p / 'ann.json', {'database': {str(i): {} for i in range(50)}}),
    'report': lambda p: write_reports(p / 'val.json', {'v': 'a'}, {'v': [('a', 0.9), ('b', 0.1)]}),
    'features hdf5': lambda p: inference.save_features(p / 'f.hdf5', _features()),
    'features folder': lambda p: inference.save_features(p / 'feats', _features()),
}


def _previous(tmp_path: Path, name: str) -> Path:
    """The file the writer would replace, as a previous run left it."""
    target = {'checkpoint': 'save_1.pth', 'results json': 'val.json', 'annotation json': 'ann.json',
              'report': 'val_classes.png', 'features hdf5': 'f.hdf5', 'features folder': 'feats/x/a.mp4_clips.npy'}
    path = tmp_path / target[name]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b'previous')
    return path


@pytest.mark.parametrize('name', list(WRITERS))
def test_every_writer_fails_in_one_line_and_keeps_the_previous_file(tmp_path, name, disk_full):
    previous = _previous(tmp_path, name)
    with pytest.raises(WriteError) as caught:
        WRITERS[name](tmp_path)
    message = str(caught.value)
    assert message.startswith('cannot write ') and message.endswith(': ENOSPC: no space left on device')
    assert '\n' not in message and isinstance(caught.value, UserError)
    assert previous.read_bytes() == b'previous'
    assert not [p for p in tmp_path.rglob('*') if p.name.endswith('.tmp')]


def test_fsync_and_rename_failures_are_write_errors_too(tmp_path, monkeypatch):
    target = atomic_write_bytes(tmp_path / 'a.json', b'previous')

    def failing_fsync(fd):
        raise OSError(errno.EIO, os.strerror(errno.EIO))
    with monkeypatch.context() as m:
        m.setattr(atomic.os, 'fsync', failing_fsync)
        with pytest.raises(WriteError, match=r'a\.json: EIO: input/output error$'):
            atomic_write_bytes(target, b'new')
    (tmp_path / 'folder').mkdir()
    (tmp_path / 'folder' / 'inside').write_text('x')
    with pytest.raises(WriteError, match='folder: EISDIR|folder: ENOTEMPTY|folder: EEXIST'):
        atomic_write_bytes(tmp_path / 'folder', b'new')  # a folder where the file goes
    assert target.read_bytes() == b'previous' and sorted(p.name for p in tmp_path.iterdir()) == ['a.json', 'folder']


def test_errors_that_are_not_the_disks_pass_through_unchanged(tmp_path):
    def broken(f):
        raise KeyError('a bug')
    with pytest.raises(KeyError):
        atomic.atomic_write(tmp_path / 'x', broken)
    assert list(tmp_path.iterdir()) == []


def test_feature_keys_make_subfolders_and_never_leave_the_folder(tmp_path):
    out = inference.save_features(tmp_path / 'feats', _features())
    assert np.load(out / 'x' / 'a.mp4_clips.npy').shape == (2, 64) and (out / 'b.mp4.npy').is_file()
    with pytest.raises(UserError, match='not a relative path inside it'):
        inference.save_features(tmp_path / 'feats', {'../escape.mp4': _features()['b.mp4']})
    with pytest.raises(UserError, match='not a relative path inside it'):
        inference.save_features(tmp_path / 'f.hdf5', {'x//a.mp4': _features()['b.mp4']})
    with pytest.raises(UserError, match='would share this file'):
        inference.save_features(tmp_path / 'feats', {'a.mp4': _features()['b.mp4'], 'a.mp4_clips': _features()['b.mp4']})
    assert not (tmp_path / 'escape.mp4.npy').exists() and not (tmp_path / 'f.hdf5').exists()


# ----------------------------------------------------------------------------- a real full disk

@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (needs root and mount); skipped where it cannot be mounted."""
    mount = tmp_path / 'disk'
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip('cannot mount a small tmpfs here')
    try:
        yield mount
    finally:
        subprocess.run(['umount', str(mount)], check=False)


def _run(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-c', code, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def test_a_real_full_disk_ends_checkpoints_and_features_in_one_line(small_disk, tmp_path):
    (small_disk / 'save_1.pth').write_bytes(b'previous')
    saved = _run('import sys; from models import generate_model, save_checkpoint; '
                 'from common.cli import run; '
                 f'cfg = {CFG!r}; cfg["resnet_widen_factor"] = 1.0; '
                 'sys.exit(run(lambda: save_checkpoint(sys.argv[1], generate_model(**cfg), cfg) and None))',
                 str(small_disk / 'save_1.pth'))
    assert saved.returncode == 2 and saved.stderr == f'error: cannot write {small_disk}/save_1.pth: ENOSPC: no space left on device\n'
    assert (small_disk / 'save_1.pth').read_bytes() == b'previous'
    # features of 40 videos (2.5 MB): HDF5 used to crash the process here
    from tests.video_fixtures import moving_frames, write_video
    video = write_video(tmp_path / 'v.mp4', moving_frames(8, 32, 32))
    ckpt = save_checkpoint(tmp_path / 'm.pth', generate_model(**CFG).eval(), CFG, class_names=['a', 'b', 'c'],
                           mean=[0.5] * 3, std=[0.5] * 3, sample_size=32, sample_duration=8)
    code = ('import sys, torch, inference; '
            'inference.save_features = (lambda save: lambda t, f: save(t, {f"{i}/{k}": '
            '[(s, torch.randn(16384)) for s, _ in c] for i in range(40) for k, c in f.items()}))(inference.save_features); '
            'sys.exit(inference.predict(sys.argv[1:]))')
    for target in ('f.hdf5', 'feats'):
        predicted = _run(code, str(video), '--resume_path', str(ckpt), '--no_cuda', '--features', str(small_disk / target))
        assert predicted.returncode == 2, predicted.stderr[-2000:]
        errors = [line for line in predicted.stderr.splitlines() if not line.startswith('math: ')]  # the probe's
        assert len(errors) == 1 and errors[0].endswith(': ENOSPC: no space left on device'), predicted.stderr
    assert sorted(p.name for p in small_disk.iterdir()) == ['feats', 'save_1.pth']
    assert not [p for p in small_disk.rglob('*') if p.name.endswith('.tmp')]
