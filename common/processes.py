"""Whether a process of this host is still the one a record names: PID, start time, boot; and the CPUs this
process may use. Standard library only.

The result-path lock and the converters' temp names record their owner this way, so that a
file a killed process left is recognised as stale and a reused PID is not mistaken for it.
"""
import os
from typing import Optional


def available_cpus() -> int:
    """The number of CPUs this process may run on (its affinity set, else all of them), at least 1."""
    if hasattr(os, 'sched_getaffinity'):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _read_first_line(path: str) -> Optional[str]:
    try:
        with open(path, encoding='utf-8', errors='replace') as f:
            return f.readline().strip()
    except OSError:
        return None


def process_start_ticks(pid: int) -> Optional[int]:
    """When process ``pid`` started, in clock ticks since boot (Linux's /proc), or None."""
    line = _read_first_line(f'/proc/{pid}/stat')
    try:  # the command name (field 2) may hold spaces and parentheses: count from its end
        return int(line[line.rindex(')') + 2:].split()[19]) if line else None
    except (ValueError, IndexError):
        return None


def boot_id() -> Optional[str]:
    """This boot of this machine (Linux), or None."""
    return _read_first_line('/proc/sys/kernel/random/boot_id') or None


def pid_alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host (always True where that cannot be asked safely)."""
    if os.name == 'nt':  # os.kill would terminate it
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return True


def process_ended(pid: int, start_ticks: Optional[int]) -> bool:
    """Whether process ``pid`` of this host, started at ``start_ticks`` (None: unknown), has certainly ended."""
    if not pid_alive(pid):
        return True
    ticks = process_start_ticks(pid)  # a live PID with another start time: reused by a new process
    return start_ticks is not None and ticks is not None and ticks != start_ticks
