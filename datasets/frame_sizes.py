"""The size a video's frames should have: its majority size, which loaders and check_dataset share.

A frame of another size than the rest of its video (a stray image in a JPG folder, a
resolution change) cannot be stacked with the others; the loaders replace it like an
undecodable frame and count it, and ``check_dataset`` reports it. The reference is the most
common size among up to ``SAMPLES`` frames spread evenly over the video, read from the image
headers only (ties: the earliest frame's size). No torch.
"""
import io
import os
from collections import Counter
from typing import Callable, Iterable, List, Optional, Sequence, Tuple

from PIL import Image

Size = Tuple[int, int]  # (height, width)
SAMPLES = 9


def majority_size(sizes: Iterable[Size]) -> Optional[Size]:
    """The most common size (the first seen among equals); None for none."""
    counts = Counter(sizes)
    return counts.most_common(1)[0][0] if counts else None


def spread(n: int, k: int = SAMPLES) -> List[int]:
    """Up to ``k`` positions of ``range(n)`` spread evenly, first and last included."""
    if n <= k:
        return list(range(n))
    return sorted({round(j * (n - 1) / (k - 1)) for j in range(k)})


def image_size(data: bytes) -> Optional[Size]:
    """(height, width) from an image's header, None when it is not an image."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.height, img.width
    except Exception:  # PIL raises many kinds for broken headers
        return None


def sampled_size(n: int, read: Callable[[int], Optional[bytes]]) -> Optional[Size]:
    """The majority size of ``SAMPLES`` frames among ``n``; ``read(position)`` gives a frame's bytes or None."""
    sizes = (image_size(data) for data in map(read, spread(n)) if data)
    return majority_size(s for s in sizes if s is not None)


def folder_size(folder: str, template: str) -> Optional[Size]:
    """The majority frame size of a JPG folder whose files are named by ``template`` ('image_{:05d}.jpg')."""
    prefix, suffix = template.split('{', 1)[0], template.rsplit('}', 1)[-1]
    try:
        names = sorted(n for n in os.listdir(folder) if n.startswith(prefix) and n.endswith(suffix))
    except OSError:
        return None

    def read(position: int) -> Optional[bytes]:
        try:
            with open(os.path.join(folder, names[position]), 'rb') as f:
                return f.read()
        except OSError:
            return None
    return sampled_size(len(names), read)


def odd_sized(sizes: Sequence[Tuple[str, Size]], reference: Optional[Size]) -> List[str]:
    """The names whose size is not ``reference`` (none when there is no reference)."""
    return [name for name, size in sizes if reference is not None and size != reference]
