"""Process pools whose workers die with their parent, even when the parent is SIGKILLed.

A killed converter (the OOM killer, ``kill -9``, a cluster's time limit) must not leave its
workers decoding videos on their own. On Linux each worker asks the kernel for SIGKILL when
its parent dies (``prctl(PR_SET_PDEATHSIG)``); elsewhere, and as a fallback when the call is
refused, a daemon thread of the worker checks once a second that its parent is still there.
Either way a parent that died before the worker got going is caught at once.
"""
import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
CHECK_EVERY_S = 1.0


def _ask_kernel_for_death_signal() -> bool:
    if not sys.platform.startswith('linux'):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6', use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(CHECK_EVERY_S)
        if os.getppid() != parent:
            os._exit(1)


def die_with_parent(parent: int) -> None:
    """Worker initializer: end this process when the process ``parent`` (its parent) ends."""
    if not _ask_kernel_for_death_signal():
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name='parent-watch').start()
    if os.getppid() != parent:  # the parent died before the death signal was armed
        os._exit(1)


def worker_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` spawned processes that die with this one."""
    # Never forked: a child forked from a process whose FFmpeg (swscale) or tqdm threads it does not
    # inherit deadlocks on their locks (a forked check_dataset --duplicates worker hung in
    # sws_frame_setup after the parent had converted frames)
    return ProcessPoolExecutor(workers, mp_context=get_context('spawn'), initializer=die_with_parent,
                               initargs=(os.getpid(),))
