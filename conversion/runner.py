"""Converting a dataset tree: write each video through a temp name, in a pool, and summarise.

Finding the videos is ``sources`` (what converts, what is ignored, layout mistakes); the temp
scheme is ``temps`` (names owned by their process, removed only when it is gone). Every
converter writes its output - a file or a folder - to a temp name beside the target and
``convert_video`` renames it into place, so an existing target is always a finished one; when
another run into the same DST finished a video first, it counts as skipped, not failed.
"""
import errno
import os
from concurrent.futures import as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

from common.atomic import os_error_in
from common.errors import UserError
from common.processes import available_cpus
from common.pool import worker_pool
from common.progress import progress
from conversion.frames import error_line
from conversion.sources import FLAT_DATASETS, Sources, Video, find_sources, require_sources
from conversion.temps import remove, remove_stale_temps, temp_path

__all__ = ['DATASETS', 'FLAT_DATASETS', 'Outcome', 'Video', 'convert_all', 'convert_video',
           'print_summary', 'remove_stale_temps', 'run_conversion', 'temp_path']

DATASETS = ('kinetics', 'mit', 'ucf101', 'hmdb51', 'activitynet', 'folder')  # folder: your own class folders
DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}  # errors of the output disk, not of one video

# A writer turns one source video into the output at the given temp path and returns a
# warning ('' when none); it must be picklable (a module-level function or a partial of one).
Writer = Callable[[Path, Path], str]


@dataclass
class Outcome:
    """What happened to one video: status is 'converted', 'skipped' or 'failed'."""
    video: Video
    status: str
    reason: str = ''
    warning: str = ''
    fatal: bool = False  # the output disk failed: every other video would fail the same way


def _fsync(path: Path) -> None:
    with open(path, 'rb') as f:
        os.fsync(f.fileno())


# ----------------------------------------------------------------------------- one video

def convert_video(video: Video, writer: Writer) -> Outcome:
    """Write one video through a temp name and rename it into place; never raises Exception."""
    if video.dst.exists():
        return Outcome(video, 'skipped')
    tmp = temp_path(video.dst)
    try:
        video.dst.parent.mkdir(parents=True, exist_ok=True)
        warning = writer(video.src, tmp)
        if tmp.is_file():
            _fsync(tmp)
        os.replace(tmp, video.dst)
    except Exception as e:
        remove(tmp)
        if video.dst.exists():  # another run into the same DST finished it first
            return Outcome(video, 'skipped')
        cause = os_error_in(e)
        return Outcome(video, 'failed', reason=error_line(cause or e),
                       fatal=cause is not None and cause.errno in DISK_FULL)
    except BaseException:
        remove(tmp)
        raise
    return Outcome(video, 'converted', warning=warning)


# ----------------------------------------------------------------------------- many videos

def convert_all(videos: Sequence[Video], writer: Writer, n_jobs: int) -> Iterator[Outcome]:
    """Convert videos in this process (n_jobs 1) or in a pool of n_jobs processes."""
    if n_jobs == 1:
        for video in videos:
            yield convert_video(video, writer)
        return
    pending = list(videos)
    while pending:
        # A worker that dies (a crash inside FFmpeg, the OOM killer) breaks every pending job
        # of the pool. The unfinished ones are retried in a fresh pool in reverse order, so
        # the ones that were running at the crash come last; without progress, each runs alone.
        broken = []
        for video, outcome in _pool_round(pending, writer, min(n_jobs, len(pending))):
            if outcome is not None:
                yield outcome
            else:
                broken.append(video)
        # the pool is shut down: temp outputs of the killed workers can go
        remove_stale_temps({v.dst.parent for v in broken})
        if broken and len(pending) == 1:
            yield Outcome(broken[0], 'failed', reason='the worker process died')
            return
        if broken and len(broken) == len(pending):
            for video in broken:
                yield from convert_all([video], writer, n_jobs)
            return
        pending = broken[::-1]


def _pool_round(videos: Sequence[Video], writer: Writer, workers: int
                ) -> Iterator[Tuple[Video, Optional[Outcome]]]:
    with worker_pool(workers) as pool:
        futures = {pool.submit(convert_video, v, writer): v for v in videos}
        try:
            for future in as_completed(futures):
                try:
                    yield futures[future], future.result()
                except BrokenProcessPool:
                    yield futures[future], None
                except Exception as e:  # e.g. a writer that cannot be pickled
                    yield futures[future], Outcome(futures[future], 'failed',
                                                   reason=error_line(e))
        except BaseException:  # Ctrl-C: do not start the queued videos
            pool.shutdown(wait=False, cancel_futures=True)
            raise


def run_conversion(src_root: Path, dst_root: Path, dataset: str, suffix: str, writer: Writer,
                   n_jobs: Optional[int] = None) -> int:
    """Convert a dataset tree, show progress and a summary; return the exit code (0 or 1).

    Raises UserError when ``src_root`` is not a folder or holds nothing to convert (``sources``).
    """
    src_root, dst_root, dataset = Path(src_root), Path(dst_root), dataset.lower()
    if not src_root.is_dir():
        raise UserError(f'source folder {src_root} does not exist')
    if dataset not in DATASETS:
        print(f"note: unknown dataset {dataset!r}, using the class-folder layout ('folder': SRC/<class>/<video>)")
    n_jobs = n_jobs if n_jobs and n_jobs > 0 else available_cpus()
    sources = find_sources(src_root, dst_root, dataset, suffix)
    require_sources(sources, src_root, dataset)
    videos = sources.videos
    remove_stale_temps({v.dst.parent for v in videos})
    outcomes, todo = _clashes(videos), []
    taken = {o.video for o in outcomes}
    for video in videos:
        if video in taken:
            continue
        if video.dst.exists():
            outcomes.append(Outcome(video, 'skipped'))
        else:
            todo.append(video)
    done = len(outcomes)
    with closing(convert_all(todo, writer, n_jobs)) as results:
        bar = progress(results, total=len(todo), desc='converting', unit='videos')
        for outcome in bar:
            outcomes.append(outcome)
            if outcome.fatal:  # closing the pool: running videos finish, queued ones never start
                break
        bar.close()
    print_summary(outcomes, src_root, sources)
    stop = next((o for o in outcomes if o.fatal), None)
    if stop is not None:
        untried = len(todo) - (len(outcomes) - done)
        print(f'stopped: {stop.reason} (writing {_show(stop.video.dst)}); {untried} videos left '
              f'for the next run: free space and run again (finished videos are skipped)')
    return 1 if any(o.status == 'failed' for o in outcomes) else 0


def _clashes(videos: Sequence[Video]) -> List[Outcome]:
    # two sources with the same stem in one folder (a.mp4, a.webm) would write the same output
    first = {}
    clashes = []
    for video in videos:
        if video.dst in first:
            reason = f'same output name as {_show(Path(first[video.dst].src.name))}'
            clashes.append(Outcome(video, 'failed', reason=reason))
        else:
            first[video.dst] = video
    return clashes


def print_summary(outcomes: Sequence[Outcome], src_root: Path, sources: Optional[Sources] = None) -> None:
    """Print the counts, what was ignored, the class folders without videos, then each failure and warning."""
    count = {s: sum(o.status == s for o in outcomes) for s in ('converted', 'skipped', 'failed')}
    warned = [o for o in outcomes if o.warning]
    print(f"converted {count['converted']}, skipped {count['skipped']} (already done), "
          f"failed {count['failed']}, warnings {len(warned)}")
    for line in (sources.ignored_line(), sources.empty_line()) if sources else ():
        if line:
            print(_printable(line))
    for o in sorted(outcomes, key=lambda o: o.video.src):
        if o.status == 'failed':
            print(f'FAILED  {_show(o.video.src, src_root)}: {o.reason}')
    for o in sorted(warned, key=lambda o: o.video.src):
        print(f'WARNING {_show(o.video.src, src_root)}: {o.warning}')


def _show(path: Path, root: Optional[Path] = None) -> str:
    if root is not None:
        try:
            path = path.relative_to(root)
        except ValueError:
            pass
    return _printable(str(path))


def _printable(text: str) -> str:
    # file names that are not valid UTF-8 must not break the summary
    return text.encode('utf-8', 'backslashreplace').decode('utf-8')
