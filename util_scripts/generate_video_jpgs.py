"""Decode videos into folders of JPEG frames (image_00001.jpg, ...), one per decoded frame.

    python -m util_scripts.generate_video_jpgs SRC DST DATASET [--n_jobs N] [--fps F] [--size 240]

``SRC/<class>/<video>.<ext>`` -> ``DST/<class>/<stem>/``; for activitynet SRC is flat and the
output is ``DST/<stem>/``. Any container or codec FFmpeg reads is accepted. Frames are scaled
so that the short side is ``--size`` and saved at the fixed JPEG quality 90 (4:2:0).
``--fps F`` takes, for each time k/F, the frame displayed then; ``--fps -1`` keeps every frame.
A finished video is skipped on rerun. Prints a summary; exits 1 if any video failed, 2 if SRC
does not exist. See util_scripts/video_conversion.py for the details.
"""
import functools
import sys
from fractions import Fraction
from pathlib import Path
from typing import List, Optional

from util_scripts.video_conversion import (FrameReader, add_fps_argument, base_parser, encode_jpeg,
                                           run_conversion)


def write_jpgs(src: Path, tmp_dir: Path, size: int, fps: Fraction) -> str:
    """Write the frames of ``src`` as image_%05d.jpg into the new folder ``tmp_dir``."""
    reader = FrameReader(src, size, fps)
    tmp_dir.mkdir()
    for i, frame in enumerate(reader, 1):
        (tmp_dir / f'image_{i:05d}.jpg').write_bytes(encode_jpeg(frame))
    return reader.warning


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point."""
    parser = base_parser(__doc__.splitlines()[0])
    add_fps_argument(parser)
    args = parser.parse_args(argv)
    writer = functools.partial(write_jpgs, size=args.size, fps=args.fps)
    return run_conversion(args.src, args.dst, args.dataset, '', writer, args.n_jobs)


if __name__ == '__main__':
    sys.exit(main())
