"""A conversion whose every video takes a minute, through the real runner and pool.

    python tests/helpers/slow_conversion.py SRC DST MARKERS N_JOBS

Each worker writes MARKERS/<its pid> when it starts a video, so a test knows the pool is busy.
"""
import functools
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from conversion.runner import run_conversion  # noqa: E402


def slow_writer(src: Path, tmp: Path, markers: Path) -> str:
    """Mark this worker busy, then take a minute over the video."""
    (markers / str(os.getpid())).write_text(str(os.getppid()))
    time.sleep(60)
    tmp.write_bytes(src.read_bytes())
    return ''


if __name__ == '__main__':
    src, dst, markers, n_jobs = sys.argv[1:]
    sys.exit(run_conversion(Path(src), Path(dst), 'kinetics', '.copy',
                            functools.partial(slow_writer, markers=Path(markers)), int(n_jobs)))
