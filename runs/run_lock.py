"""One run per result path: the lock file ``<result_path>/.lock``. Standard library only.

``hold(result_path, command)`` is the context manager a run lives in: it takes the lock,
removes the temp files of saves a kill interrupted (only then, and only files of
``atomic``'s naming scheme), and releases the lock when the block ends, however it ends.
A second run on the same path ends in a one-line ``UserError`` naming the holder.

Which guard decides. The lock file is authoritative: it is created with ``O_CREAT|O_EXCL``
(atomic on local file systems and on NFSv3 and later), so only one run can create it, and
while it exists the path is held. It records the holder: host, PID, the process's start
time and the machine's boot id (Linux), when it started, its command line and the scheduler's
job (SLURM job and restart count, torchelastic run), where there is one.

``fcntl.flock`` on the open lock file is the second guard. A held flock means a live
process holds the lock (forked children close their copy, so a dead run's DataLoader
workers do not keep it); it also serialises two runs that both want to take over a stale
lock. A free flock never says "dead" on its own: on NFS ``flock`` can be local to one
client (``local_lock=flock``) or missing (Lustre without ``-o flock``). So a lock of this
host is taken over only when its record says that its holder is gone: the PID is not
alive, or belongs to a process with another start time (PID reuse), or the machine has
rebooted since. A lock from another host is taken over only when its record shows an earlier
incarnation of this same job: the same ``SLURM_JOB_ID`` with a lower ``SLURM_RESTART_COUNT`` (a
requeued job; two runs in one allocation have equal counts), or the same ``TORCHELASTIC_RUN_ID``
with a lower ``TORCHELASTIC_RESTART_COUNT`` (torchrun restarted the job; the run id alone is the
user's ``--rdzv-id``, which the same command started twice would share). Any other lock from another host is never taken over; the
error says how to remove it when that run is known to be dead. Without flock (Windows, some NFS
mounts) two runs taking over the same stale lock at the same instant could both succeed.
"""
import json
import os
import signal
import socket
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Set, Tuple

from common.atomic import TEMP_NAME  # the temp names of atomic writes
from common.errors import UserError
from common.processes import boot_id, process_ended, process_start_ticks

try:
    import fcntl
except ImportError:  # Windows: the lock file alone
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = '.lock'
NO_FOLLOW = getattr(os, 'O_NOFOLLOW', 0)
_HELD: Set[int] = set()  # lock file descriptors of this process; a forked child closes its copies


def _close_in_child() -> None:
    for fd in _HELD:
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_close_in_child)


@dataclass
class Holder:
    """Who holds a lock: what its record says."""
    host: str
    pid: int
    since: str
    start_ticks: Optional[int] = None
    boot_id: Optional[str] = None
    command: str = ''
    slurm_job_id: Optional[str] = None  # the scheduler's job, where there is one (older records have none)
    slurm_restart_count: Optional[int] = None
    torchelastic_run_id: Optional[str] = None
    torchelastic_restart_count: Optional[int] = None

    def __str__(self) -> str:
        command = ' '.join(self.command.split())  # one line, whatever the arguments hold
        job = f' [SLURM job {self.slurm_job_id}]' if self.slurm_job_id else ''
        return f'pid {self.pid} on {self.host} since {self.since}{job}' + (f' ({command[:300]})' if command else '')


def job_identity() -> Dict[str, Any]:
    """This process's job as the scheduler names it: the Holder fields ``slurm_*`` and ``torchelastic_run_id``."""
    run_id = os.environ.get('TORCHELASTIC_RUN_ID', '').strip()
    return {'slurm_job_id': os.environ.get('SLURM_JOB_ID', '').strip() or None,
            'slurm_restart_count': _count(os.environ.get('SLURM_RESTART_COUNT')),
            # 'none' is torchrun's --rdzv-id when none is given: shared by unrelated runs
            'torchelastic_run_id': run_id if run_id not in ('', 'none') else None,
            'torchelastic_restart_count': _count(os.environ.get('TORCHELASTIC_RESTART_COUNT'))}


def _count(value: Any) -> Optional[int]:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def this_process(command: Sequence[str]) -> Holder:
    """The record of the calling process."""
    return Holder(socket.gethostname(), os.getpid(), time.strftime('%Y-%m-%d %H:%M:%S %z'),
                  process_start_ticks(os.getpid()), boot_id(), ' '.join(command)[:2000], **job_identity())


def earlier_incarnation(holder: Holder, me: Holder) -> Optional[str]:
    """How ``holder`` is an earlier incarnation of ``me``'s job (e.g. 'SLURM job 7, restart 0 -> 1'), or None."""
    if holder.slurm_job_id and str(holder.slurm_job_id) == me.slurm_job_id:
        before, now = _count(holder.slurm_restart_count) or 0, me.slurm_restart_count or 0
        if before < now:
            return f'SLURM job {me.slurm_job_id}, restart {before} -> {now}'
    if holder.torchelastic_run_id and str(holder.torchelastic_run_id) == me.torchelastic_run_id:
        # the run id is the user's --rdzv-id: the same command started twice shares it, but not a restart count
        before, now = _count(holder.torchelastic_restart_count) or 0, me.torchelastic_restart_count or 0
        if before < now:
            return f'torchelastic run {me.torchelastic_run_id}, restart {before} -> {now}'
    return None


def holder_gone(holder: Holder) -> bool:
    """Whether the record's process has certainly ended: same host, and no such process any more."""
    if holder.host != socket.gethostname():
        return False
    now_boot = boot_id()
    if holder.boot_id and now_boot and holder.boot_id != now_boot:
        return True
    return process_ended(holder.pid, holder.start_ticks)


def _flock(fd: int, wait_s: float = 0.0) -> Optional[bool]:
    """Take flock on ``fd``: True taken, False another process holds it, None no flock here."""
    if fcntl is None:
        return None
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        except OSError:  # ENOLCK, EOPNOTSUPP...: a file system without flock
            return None


def _read_holder(fd: int) -> Optional[Holder]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        record = json.loads(os.read(fd, 65536).decode('utf-8'))
        return Holder(**{k: record[k] for k in Holder.__dataclass_fields__ if k in record})
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def _identity(st: os.stat_result) -> Tuple[int, int]:
    return st.st_dev, st.st_ino


def _busy(lock: Path, holder: Holder) -> UserError:
    hint = '' if holder.host == socket.gethostname() else \
        f'; if that run is known to be dead (its machine is gone), remove {lock} and start again'
    return UserError(f'{lock.parent} is in use by another run: {holder}; wait for it to end or choose '
                     f'another --result_path{hint}')


def _takeover_note(lock: Path, holder: Holder) -> str:
    """The note that the lock of ``holder`` is taken over; UserError where it may not be."""
    if holder_gone(holder):
        return f'note: {lock} was left by {holder}, which has ended; taking the lock over'
    # this host's holders are judged by holder_gone alone: their processes can be asked
    same = earlier_incarnation(holder, this_process([])) if holder.host != socket.gethostname() else None
    if same is None:
        raise _busy(lock, holder)
    return f'note: {lock} was left by {holder}, an earlier incarnation of this same job ({same}); taking the lock over'


def _inspect(lock: Path, say: Callable[[str], None]) -> None:
    """A lock file exists: error if its holder lives (or cannot be judged), else remove it (taken over)."""
    try:
        fd = os.open(lock, os.O_RDWR | NO_FOLLOW)
    except FileNotFoundError:  # released meanwhile
        return
    except OSError as e:
        raise UserError(f'{lock}: cannot open the lock file ({e.strerror}); it is not one of this framework\'s '
                        'lock files unless a run is starting: remove it if no run uses this result path') from None
    try:
        locked = _flock(fd)
        holder = _read_holder(fd)
        if _identity(os.fstat(fd)) != _identity(os.stat(lock, follow_symlinks=False)):
            return  # replaced while we looked: try again
        if holder is None:
            raise UserError(f'{lock}: a lock without a record (a run starting right now, or one killed while '
                            'taking it); if no run uses this result path, remove the file')
        if locked is False:
            raise _busy(lock, holder)
        say(_takeover_note(lock, holder))
        os.unlink(lock)
    except FileNotFoundError:
        return
    finally:
        os.close(fd)


class ResultPathLock:
    """The exclusive lock on one result path, held by this process until ``release``."""

    def __init__(self, path: Path, fd: int, holder: Holder):
        self.path, self.fd, self.holder = path, fd, holder
        self.identity = _identity(os.fstat(fd))
        _HELD.add(fd)

    @classmethod
    def acquire(cls, directory: Path, command: Sequence[str],
                say: Callable[[str], None] = lambda m: print(m, file=sys.stderr, flush=True)) -> 'ResultPathLock':
        """Take the lock of ``directory`` (created if missing), taking over a dead run's; UserError if held."""
        lock = Path(directory) / LOCK_NAME
        for _ in range(20):
            try:
                Path(directory).mkdir(parents=True, exist_ok=True)
                fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL | NO_FOLLOW, 0o644)
            except FileExistsError:
                _inspect(lock, say)
                continue
            except OSError as e:
                raise UserError(f'{directory}: cannot create or write the result path ({e.strerror})') from None
            try:
                _flock(fd, wait_s=10.0)  # another run may be reading our empty record for a moment
                holder = this_process(command)
                os.write(fd, (json.dumps(asdict(holder)) + '\n').encode('utf-8'))
                os.fsync(fd)
                return cls(lock, fd, holder)
            except BaseException as e:
                os.close(fd)
                os.unlink(lock)
                if isinstance(e, OSError):
                    raise UserError(f'{lock}: cannot write the lock file ({e.strerror})') from None
                raise
        raise UserError(f'{lock}: other runs keep taking this result path; try again')

    def release(self) -> None:
        """Remove the lock file (if it is still ours) and let go of it; nothing in a forked child."""
        if self.fd < 0 or self.fd not in _HELD:
            return
        try:
            if _identity(os.stat(self.path, follow_symlinks=False)) == self.identity:
                os.unlink(self.path)
        except OSError:
            pass
        finally:
            _HELD.discard(self.fd)
            os.close(self.fd)
            self.fd = -1


def interrupted_temp_files(directory: Path) -> List[Path]:
    """The temp files of atomic writes in ``directory`` (regular files named as ``atomic`` names them)."""
    found = []
    for entry in os.scandir(directory):
        if TEMP_NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
            found.append(Path(entry.path))
    return found


def _exit_on(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


@contextmanager
def hold(directory: Path, command: Sequence[str], take: bool = True,
         any_failed: Callable[[bool], bool] = bool) -> Iterator[Optional[ResultPathLock]]:
    """Lock ``directory`` for the block and clear it of interrupted saves' temp files.

    ``take`` False (the ranks other than 0 of a distributed run): take nothing, only learn
    through ``any_failed`` (a collective call every process makes) whether the taker failed;
    then every process raises. While the block runs, SIGTERM and SIGHUP end the process
    through ``SystemExit`` (exit code 128 + signal, as a shell reports a kill) so that the
    lock is released; handlers set inside the block (preemption's) take precedence, and the
    previous ones come back afterwards.
    """
    lock, error = None, None
    if take:
        try:
            lock = ResultPathLock.acquire(directory, command)
        except UserError as e:
            error = e
    if any_failed(error is not None):
        if lock is not None:
            lock.release()
        raise error or UserError(f'{directory}: the process that locks it (rank 0) could not (its message says why)')
    previous = {}
    try:
        if lock is not None:
            for stale in interrupted_temp_files(Path(directory)):
                stale.unlink(missing_ok=True)
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, getattr(signal, 'SIGHUP', None)):
                if sig is not None:
                    previous[sig] = signal.signal(sig, _exit_on)
        yield lock
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if lock is not None:
            lock.release()
