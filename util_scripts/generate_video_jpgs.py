"""Decode videos into folders of JPEG frames (image_00001.jpg, ...), one per decoded frame.

    python -m util_scripts.generate_video_jpgs SRC DST DATASET [--n_jobs N] [--fps F] [--size 240]

``SRC/<class>/<video>.<ext>`` -> ``DST/<class>/<stem>/``; for activitynet SRC is flat and the
output is ``DST/<stem>/``. Any container or codec FFmpeg reads is accepted. Frames are scaled
so that the short side is ``--size`` and saved at the fixed JPEG quality 90 (4:2:0).
``--fps F`` takes, for each time k/F, the frame displayed then; ``--fps -1`` keeps every frame.
A finished video is skipped on rerun. Prints a summary; exits 1 if any video failed, 2 if SRC
does not exist. See conversion/ for the details.
"""
import sys
from typing import List, Optional

from conversion.writers import write_jpgs
from util_scripts.video_conversion import frames_main


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point."""
    return frames_main(argv, 'generate_video_jpgs', __doc__, '', write_jpgs)


if __name__ == '__main__':
    sys.exit(main())
