"""A converter killed with SIGKILL leaves no worker behind: the workers die with their parent."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its new parent to reap it counts as dead)."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


def _children(pid: int) -> set:
    """The processes whose parent is ``pid``."""
    out = set()
    for entry in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open(f'/proc/{entry}/stat') as f:
                if int(f.read().rsplit(')', 1)[1].split()[1]) == pid:
                    out.add(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return out


def _wait(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_workers_of_a_killed_converter_die_with_it(tmp_path):
    src, markers = tmp_path / 'src' / 'a', tmp_path / 'markers'
    src.mkdir(parents=True)
    markers.mkdir()
    for i in range(5):
        (src / f'v{i}.mp4').write_bytes(b'x')
    parent = subprocess.Popen([sys.executable, str(REPO / 'tests' / 'helpers' / 'slow_conversion.py'),
                               str(tmp_path / 'src'), str(tmp_path / 'dst'), str(markers), '2'],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _wait(lambda: len(list(markers.iterdir())) == 2, 60), 'the pool never got busy'
        workers = {int(p.name) for p in markers.iterdir()}
        children = _children(parent.pid)
        assert workers <= children
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        assert _wait(lambda: not any(_alive(pid) for pid in children), 5), \
            f'left behind: {[pid for pid in children if _alive(pid)]}'
    finally:
        parent.kill()
        for pid in _children(parent.pid) | {int(p.name) for p in markers.iterdir()}:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_without_the_death_signal_the_parent_watch_ends_the_worker(tmp_path):
    # a parent that starts a worker with the kernel's death signal refused, then is killed
    worker_code = ('import sys, time; sys.path.insert(0, sys.argv[1]); from common import pool; '
                   'pool._ask_kernel_for_death_signal = lambda: False; pool.CHECK_EVERY_S = 0.1; '
                   'import os; pool.die_with_parent(os.getppid()); time.sleep(60)')
    parent_code = ('import subprocess, sys, time; '
                   'w = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2]]); '
                   'print(w.pid, flush=True); time.sleep(60)')
    parent = subprocess.Popen([sys.executable, '-c', parent_code, worker_code, str(REPO)], stdout=subprocess.PIPE,
                              text=True)
    worker = int(parent.stdout.readline())
    try:
        time.sleep(1)  # the worker is set up and watching
        assert _alive(worker)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        assert _wait(lambda: not _alive(worker), 5)
    finally:
        parent.kill()
        if _alive(worker):
            os.kill(worker, signal.SIGKILL)
    # and a worker whose parent died before it got going ends at once
    late = subprocess.run([sys.executable, '-c', 'import sys; sys.path.insert(0, sys.argv[1]); '
                           'from common.pool import die_with_parent; die_with_parent(1); print("alive")',
                           str(REPO)], capture_output=True, text=True, timeout=60)
    assert late.returncode == 1 and late.stdout == ''


def test_worker_pools_are_spawned_never_forked():
    # a forked child of a process that ran FFmpeg's threaded swscale hangs on the first frame it converts
    from common.pool import worker_pool
    with worker_pool(1) as pool:
        assert pool._mp_context.get_start_method() == 'spawn'
        assert pool.submit(os.getpid).result() != os.getpid()
