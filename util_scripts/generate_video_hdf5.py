"""Decode videos into one HDF5 file each, holding the JPEG bytes of every frame.

    python -m util_scripts.generate_video_hdf5 SRC DST DATASET [--n_jobs N] [--fps F] [--size 240]

``SRC/<class>/<video>.<ext>`` -> ``DST/<class>/<stem>.hdf5`` (activitynet: ``DST/<stem>.hdf5``).
The file holds one dataset ``video`` of shape (n_frames,) and dtype vlen uint8; element i is
the JPEG (quality 90) of frame i+1, the original's layout:
``Image.open(io.BytesIO(f['video'][i]))``. Frames are encoded in memory, never written as jpg
files. Options, resume, summary and exit codes are those of generate_video_jpgs.
"""
import sys
from typing import List, Optional

from conversion.writers import write_hdf5
from util_scripts.video_conversion import frames_main


def main(argv: Optional[List[str]] = None) -> int:
    """CLI entry point."""
    return frames_main(argv, 'generate_video_hdf5', __doc__, '.hdf5', write_hdf5)


if __name__ == '__main__':
    sys.exit(main())
