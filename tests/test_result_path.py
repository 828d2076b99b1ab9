"""One run per result path (the lock), only our own temp files cleaned, logs never through a link, exact log resume."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import main as main_module
from runs import run_lock
from common.errors import UserError
from common.processes import process_start_ticks
from runs.run_lock import ResultPathLock
from runs.run_logs import RunLogs, TsvLog
from tests.test_main import TINY, read_tsv
from tests.video_fixtures import make_dataset

ROOT = Path(__file__).resolve().parents[1]
HOST = socket.gethostname()


def plant_lock(path: Path, **record) -> Path:
    """A lock file as another run would have left it."""
    path.mkdir(parents=True, exist_ok=True)
    lock = path / '.lock'
    lock.write_text(json.dumps(dict({'host': HOST, 'since': '2024-01-01 00:00:00 +0000', 'command': 'main.py'},
                                    **record)) + '\n')
    return lock


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, '-c', 'pass'])
    proc.wait()
    return proc.pid


def test_a_second_lock_is_refused_naming_the_holder_and_released_on_exit(tmp_path):
    with run_lock.hold(tmp_path, ['python', 'main.py', '--result_path', str(tmp_path)]):
        with pytest.raises(UserError) as e:
            ResultPathLock.acquire(tmp_path, ['second'])
        message = str(e.value)
        assert '\n' not in message and f'pid {os.getpid()} on {HOST} since ' in message
        assert 'main.py --result_path' in message and 'another --result_path' in message
        assert (tmp_path / '.lock').exists()
    assert not (tmp_path / '.lock').exists()
    with run_lock.hold(tmp_path, ['third']):  # free again
        pass


@pytest.mark.parametrize('case', ['dead pid', 'pid reused', 'rebooted'])
def test_a_stale_lock_of_this_host_is_taken_over_with_a_message(tmp_path, case):
    if case == 'dead pid':
        lock = plant_lock(tmp_path, pid=dead_pid())
    elif case == 'pid reused':  # a live pid, but not the process that took the lock
        ticks = process_start_ticks(os.getpid())
        if ticks is None:
            pytest.skip('no /proc here')
        lock = plant_lock(tmp_path, pid=os.getpid(), start_ticks=ticks + 1)
    else:
        if run_lock.boot_id() is None:
            pytest.skip('no boot id here')
        lock = plant_lock(tmp_path, pid=os.getpid(), boot_id='another-boot')
    said = []
    held = ResultPathLock.acquire(tmp_path, ['new'], say=said.append)
    try:
        assert len(said) == 1 and 'which has ended; taking the lock over' in said[0]
        assert json.loads(lock.read_text())['pid'] == os.getpid()
    finally:
        held.release()


def test_a_live_holder_or_another_host_or_a_broken_lock_is_never_taken_over(tmp_path):
    lock = plant_lock(tmp_path / 'a', pid=os.getpid(), start_ticks=process_start_ticks(os.getpid()))
    with pytest.raises(UserError, match=f'in use by another run: pid {os.getpid()}'):
        ResultPathLock.acquire(tmp_path / 'a', ['new'])
    assert lock.exists()
    lock = plant_lock(tmp_path / 'b', host='gpu-node-7', pid=dead_pid())
    with pytest.raises(UserError, match=f'on gpu-node-7 .*if that run is known to be dead .*remove {lock}'):
        ResultPathLock.acquire(tmp_path / 'b', ['new'])
    assert lock.exists()
    (tmp_path / 'c').mkdir()
    (tmp_path / 'c' / '.lock').write_text('')
    with pytest.raises(UserError, match='a lock without a record'):
        ResultPathLock.acquire(tmp_path / 'c', ['new'])
    (tmp_path / 'd').mkdir()
    (tmp_path / 'd' / '.lock').symlink_to(tmp_path / 'elsewhere')
    with pytest.raises(UserError, match='cannot open the lock file'):
        ResultPathLock.acquire(tmp_path / 'd', ['new'])
    assert not (tmp_path / 'elsewhere').exists()


def test_only_rank_0_takes_the_lock_and_every_rank_learns_it_failed(tmp_path):
    plant_lock(tmp_path, pid=os.getpid(), start_ticks=process_start_ticks(os.getpid()))
    with pytest.raises(UserError, match='rank 0'):  # a rank > 0: takes nothing, told that rank 0 failed
        with run_lock.hold(tmp_path, ['rank 1'], take=False, any_failed=lambda failed: True):
            pass
    with run_lock.hold(tmp_path / 'free', ['rank 1'], take=False) as lock:
        assert lock is None and not (tmp_path / 'free' / '.lock').exists()


def test_a_killed_holder_with_a_live_forked_child_leaves_a_lock_that_is_taken_over(tmp_path):
    """DataLoader workers are forked children: they must not keep the dead run's lock (flock) alive."""
    script = ('import os, signal, sys, time\nfrom pathlib import Path\n'
              'from runs.run_lock import ResultPathLock\n'
              'ResultPathLock.acquire(Path(sys.argv[1]), ["holder"])\n'
              'child = os.fork()\nif child == 0:\n    os.close(1)\n    os.close(2)\n    time.sleep(60)\n    os._exit(0)\n'
              'print(child, flush=True)\nos.kill(os.getpid(), signal.SIGKILL)\n')
    done = subprocess.run([sys.executable, '-c', script, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    child = int(done.stdout.split()[0])
    try:
        assert done.returncode == -signal.SIGKILL and (tmp_path / '.lock').exists()
        os.kill(child, 0)  # the child lives on
        said = []
        ResultPathLock.acquire(tmp_path, ['new'], say=said.append).release()
        assert said and 'taking the lock over' in said[0]
    finally:
        os.kill(child, signal.SIGKILL)


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGHUP], ids=['SIGTERM', 'SIGHUP'])
def test_sigterm_or_sighup_outside_training_releases_the_lock(tmp_path, sig):
    script = ('import sys, time\nfrom pathlib import Path\nfrom runs import run_lock\n'
              'with run_lock.hold(Path(sys.argv[1]), ["holder"]):\n    print("held", flush=True)\n'
              '    time.sleep(60)\n')
    proc = subprocess.Popen([sys.executable, '-c', script, str(tmp_path)], cwd=ROOT, stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == 'held'
    proc.send_signal(sig)
    assert proc.wait(timeout=30) == 128 + sig
    assert not (tmp_path / '.lock').exists()


def test_the_holder_removes_only_temp_files_of_the_atomic_naming_scheme(tmp_path):
    ours = tmp_path / '.save_latest.pth.k2_9xq0a.tmp'
    ours.write_text('half a checkpoint')
    keep = {'.notes.tmp': 'file', '.save_1.pth.abc.tmp': 'file', 'save_1.pth.k2_9xq0a.tmp': 'file',
            '.val.json.ab12cd34.tmp': 'dir', '.opts.json.zz12cd34.tmp': 'link'}
    for name, kind in keep.items():
        if kind == 'file':
            (tmp_path / name).write_text('a user file')
        elif kind == 'dir':
            (tmp_path / name).mkdir()
        else:
            (tmp_path / name).symlink_to(tmp_path / '.notes.tmp')
    plant_lock(tmp_path, host='elsewhere', pid=1)
    with pytest.raises(UserError):  # not the holder: cleans nothing
        with run_lock.hold(tmp_path, ['x']):
            pass
    assert ours.exists()
    (tmp_path / '.lock').unlink()
    with run_lock.hold(tmp_path, ['x']):
        pass
    assert not ours.exists()
    assert all((tmp_path / name).exists() or (tmp_path / name).is_symlink() for name in keep)


def test_both_makers_of_atomic_temp_names_write_names_the_holder_removes(tmp_path, monkeypatch):
    from common import atomic
    made = []
    real_replace = os.replace
    monkeypatch.setattr(atomic.os, 'replace', lambda src, dst: (made.append(Path(src).name), real_replace(src, dst)))
    atomic.atomic_write_bytes(tmp_path / ('n' * 250), b'x')
    made.append(atomic.temp_name(tmp_path / 'save_latest.pth').name)
    assert all(atomic.TEMP_NAME.fullmatch(name) for name in made), made


def test_logs_refuse_a_symbolic_link(tmp_path):
    target = tmp_path / 'someone_elses_file'
    target.write_text('precious\n')
    (tmp_path / 'train.log').symlink_to(target)
    with pytest.raises(UserError, match=r'train.log is a symbolic link .*remove the link'):
        TsvLog(tmp_path / 'train.log', ['epoch', 'loss'])
    assert target.read_text() == 'precious\n'


@pytest.mark.parametrize('name', ['train.log', 'train_batch.log', 'val.log', 'history.log'])
def test_every_log_the_run_opens_refuses_a_symbolic_link(tmp_path, name):
    """Each log through the code that opens it in a run: ``RunLogs`` (the TSV logs), ``append_history``."""
    from runs.history import append_history
    target = tmp_path / 'someone_elses_file'
    target.write_text('precious\n')
    (tmp_path / name).symlink_to(target)
    with pytest.raises(UserError, match=rf'{name} is a symbolic link .*remove the link'):
        if name == 'history.log':
            append_history(tmp_path, ['main.py'])
        else:
            with RunLogs(tmp_path, train=True, val=True, multilabel=False, since=(1, 0), tensorboard=False):
                pass
    assert target.read_text() == 'precious\n' and (tmp_path / name).is_symlink()


def test_opening_the_logs_drops_rows_after_the_resumed_position(tmp_path):
    (tmp_path / 'train.log').write_text('epoch\tloss\n1\t0.5\n2\t0.4\n3\t0.3\n')
    (tmp_path / 'val.log').write_text('epoch\tloss\n1\t0.5\n2\t0.4\n')
    (tmp_path / 'train_batch.log').write_text(
        'epoch\tbatch\titer\n1\t1\t1\n1\t2\t2\n2\t1\t3\n2\t2\t4\n2\t3\t5\n2\t4')  # a torn last row
    with RunLogs(tmp_path, train=True, val=True, multilabel=False, since=(2, 2), tensorboard=False) as logs:
        logs.batch([2, 3, 5, 0.1, 1.0, 0.01])
    assert (tmp_path / 'train.log').read_text() == 'epoch\tloss\n1\t0.5\n'
    assert (tmp_path / 'val.log').read_text() == 'epoch\tloss\n1\t0.5\n'
    rows = [r.split('\t')[:2] for r in (tmp_path / 'train_batch.log').read_text().splitlines()[1:]]
    assert rows == [['1', '1'], ['1', '2'], ['2', '1'], ['2', '2'], ['2', '3']]
    with RunLogs(tmp_path, train=True, val=False, multilabel=False, since=(1, 0), tensorboard=False):
        pass  # a fresh run: headers only
    assert len((tmp_path / 'train_batch.log').read_text().splitlines()) == 1
    assert not list(tmp_path.glob('.*.tmp'))


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('lock_data')
    return root / 'jpg', make_dataset(root / 'jpg', 'jpg', n_frames=(12, 20, 9, 16, 14, 10), n_train=2)


def args(data, result, *extra):
    return ['--video_path', str(data[0]), '--annotation_path', str(data[1]), '--result_path', str(result),
            '--n_classes', '2', *TINY, *extra]


def test_a_second_main_py_on_the_same_result_path_exits_2_naming_the_first(data, tmp_path, capsys):
    first = subprocess.Popen([sys.executable, 'main.py', *args(data, tmp_path, '--n_epochs', '3')], cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=dict(os.environ, OMP_NUM_THREADS='1'))
    deadline = time.time() + 120
    while not (tmp_path / 'train_batch.log').exists() and time.time() < deadline and first.poll() is None:
        time.sleep(0.05)
    assert first.poll() is None, first.communicate()[1][-2000:]
    assert main_module.main(args(data, tmp_path, '--n_epochs', '1')) == 2
    err = capsys.readouterr().err.strip()
    assert '\n' not in err and f'is in use by another run: pid {first.pid} on {HOST}' in err
    out, err = first.communicate(timeout=240)
    assert first.returncode == 0, err[-2000:]
    _, rows = read_tsv(tmp_path / 'train.log')
    assert [r[0] for r in rows] == ['1', '2', '3']  # the first run's logs, untouched by the second
    assert not (tmp_path / '.lock').exists()


def test_resuming_from_an_earlier_checkpoint_drops_the_later_log_rows(data, tmp_path):
    assert main_module.main(args(data, tmp_path, '--n_epochs', '2', '--checkpoint', '1')) == 0
    with open(tmp_path / 'train_batch.log', 'a') as f:  # what a crash after a row, before its save, leaves
        f.write('3\t1\t5\t0.5\t0.5\t0.01\n3\t2')
    outside = tmp_path.parent / f'{tmp_path.name}_outside.json'
    outside.write_text('a user file')
    (tmp_path / 'opts.json').unlink()
    (tmp_path / 'opts.json').symlink_to(outside)  # replaced by the run's own file, never written through
    assert main_module.main(args(data, tmp_path, '--n_epochs', '2', '--resume_path',
                                 str(tmp_path / 'save_1.pth'))) == 0
    for name in ('train.log', 'val.log'):
        assert [r[0] for r in read_tsv(tmp_path / name)[1]] == ['1', '2'], name
    _, rows = read_tsv(tmp_path / 'train_batch.log')
    assert [(r[0], r[1], r[2]) for r in rows] == [('1', '1', '1'), ('1', '2', '2'), ('2', '1', '3'), ('2', '2', '4')]
    assert outside.read_text() == 'a user file' and not (tmp_path / 'opts.json').is_symlink()


def test_logs_opened_before_one_that_is_refused_are_closed(tmp_path, monkeypatch):
    from runs import run_logs
    closed = []
    original = run_logs.TsvLog.close
    monkeypatch.setattr(run_logs.TsvLog, 'close', lambda self: (closed.append(self), original(self))[1])
    (tmp_path / 'val.log').symlink_to(tmp_path / 'elsewhere')
    with pytest.raises(UserError, match='val.log is a symbolic link'):
        RunLogs(tmp_path, train=True, val=True, multilabel=False, since=(1, 0), tensorboard=False)
    assert len(closed) == 2  # train.log and train_batch.log, opened before val.log was refused
