"""The real camera frames the benchmarks measure on: every frame of ``shared/media``'s clips (see its SOURCES.md)."""
from pathlib import Path
from typing import List, Tuple

import av
import numpy as np

MEDIA = Path(__file__).resolve().parents[2] / 'shared' / 'media'


def media_frames(media: Path = MEDIA, size: Tuple[int, int] = (240, 320)) -> List[np.ndarray]:
    """Every frame of the folder's mp4 files, scaled to ``size`` (H, W), RGB H x W x 3 uint8."""
    frames = []
    for path in sorted(media.glob('*.mp4')):
        with av.open(str(path)) as container:
            frames += [f.reformat(width=size[1], height=size[0], format='rgb24').to_ndarray()
                       for f in container.decode(video=0)]
    if not frames:
        raise SystemExit(f'no mp4 in {media}')
    return frames
