"""Store each video's frame table beside it (VIDEO.frames.json), so loaders read it instead of building it.

    python -m util_scripts.write_frame_tables VIDEO_ROOT [--n_jobs N]

Reading a clip from a video file first needs the file's frame table (which frames exist and
where a decoder may start: ``datasets/formats/video_files.py``). Building it demuxes the whole
file and decodes the head of its stream, which costs more than the clip; a DataLoader worker
that reads each video once per epoch (Kinetics) builds it every time. With the table stored,
a first read costs about what a repeated one does (docs/benchmarks.md). ``generate_video_mp4``
runs this on its output; run it yourself on video folders you made otherwise.

Every file under VIDEO_ROOT with a video extension gets a table; one that already has its own
table is left as it is (``--force``: rebuilt too), and a table whose video changed since is
rewritten. A stored table is
used only while it matches its video (``datasets/formats/frame_table_file.py``). Unreadable
videos are named and counted; the exit code is then 1.
"""
import concurrent.futures
import functools
import os
import sys
from pathlib import Path
from typing import List, Optional, Tuple

from common import cli
from common.errors import UserError
from datasets.formats import frame_table_file, video_files


def _store(path: Path, force: bool = False) -> Tuple[str, str]:
    """('stored' | 'current' | 'failed', why) for one video."""
    if not force and frame_table_file.read(path) is not None:  # None also when there is no table
        return 'current', ''
    try:
        video_files.store_frame_table(path)
    except video_files.UNREADABLE as e:
        return 'failed', ' '.join(str(e).split()) or type(e).__name__
    return 'stored', ''


def store_tables(root: Path, n_jobs: Optional[int] = None, allow_none: bool = False, force: bool = False) -> int:
    """Store the missing or stale tables of the videos under ``root``; print a summary; the exit code."""
    if not root.is_dir():
        raise UserError(f'video folder {root} does not exist')
    videos = sorted(p for p in root.rglob('*') if video_files.has_video_extension(p.name) and p.is_file())
    if not videos and not allow_none:
        raise UserError(f'{root}: no video files (names ending in .mp4, .avi, .mkv, ...)')
    jobs = n_jobs if n_jobs and n_jobs > 0 else (os.cpu_count() or 1)
    if jobs == 1 or len(videos) < 2:
        outcomes: List[Tuple[str, str]] = [_store(p, force) for p in videos]
    else:
        with concurrent.futures.ProcessPoolExecutor(min(jobs, len(videos))) as pool:
            outcomes = list(pool.map(functools.partial(_store, force=force), videos, chunksize=16))
    counts = {status: sum(o[0] == status for o in outcomes) for status in ('stored', 'current', 'failed')}
    print(f"frame tables under {root}: stored {counts['stored']}, already current {counts['current']}, "
          f"failed {counts['failed']}")
    for path, (status, why) in zip(videos, outcomes):
        if status == 'failed':
            print(f'failed: {path}: {why}')
    return 1 if counts['failed'] else 0


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point."""
    parser = cli.parser('write_frame_tables', __doc__)
    parser.add_argument('video_root', type=Path, metavar='VIDEO_ROOT', help='Folder of video files (searched recursively)')
    parser.add_argument('--n_jobs', type=int, default=None, help='Processes (default: all CPUs; 1: no pool)')
    parser.add_argument('--force', action='store_true',
                        help='Rebuild every table, also those that look current (what check_dataset asks '
                             'for when a stored table does not describe its video)')
    args = parser.parse_args(argv)
    return cli.run(lambda: store_tables(args.video_root, args.n_jobs, force=args.force))


if __name__ == '__main__':
    sys.exit(main())
