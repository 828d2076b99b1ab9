"""Near-duplicate videos across the training and validation subsets (``check_dataset --duplicates``).

The same clip stored twice (in two codecs, sizes or frame rates) on both sides of a split
inflates validation accuracy without a sign. Each video gets a signature: a 64-bit difference
hash (dHash: the frame grey, shrunk to 9 x 8, each pixel brighter than its left neighbour or
not) of ``FRAMES`` frames at the same relative places of the video (at 1/8, 3/8, 5/8, 7/8 of
it), 256 bits in all; re-encoding, rescaling or another frame rate moves a few of those bits,
an unrelated video about half. Pairs within ``max_bits`` are found without comparing every
pair: the signature is cut into ``BANDS`` bands of 32 bits, and two signatures that differ in
at most ``BANDS - 1`` bits share at least one band exactly (pigeonhole), so only videos that
share a band are compared, training against validation; ``max_bits`` above ``BANDS - 1`` still
finds most pairs (a band is missed only when every band has a changed bit).
"""
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

FRAMES = 4
BANDS = 8  # of 32 bits: FRAMES x 64 / 32
MAX_BUCKET = 64  # a band value shared by more videos (flat black frames) pairs nobody


def frame_hash(frame: np.ndarray) -> int:
    """The 64-bit difference hash of an H x W x 3 (or H x W) uint8 frame."""
    grey = Image.fromarray(frame).convert('L').resize((9, 8), Image.BOX)
    pixels = np.asarray(grey, dtype=np.int16)
    bits = (pixels[:, 1:] > pixels[:, :-1]).flatten()
    return int(np.packbits(bits).view('>u8')[0])


def positions(frames: range, k: int = FRAMES) -> List[int]:
    """``k`` frame indices at the same relative places of any video: the middles of k equal parts."""
    n = len(frames)
    return [frames.start + min(n - 1, int(n * (i + 0.5) / k)) for i in range(k)]


def signature(loader: Callable, path: Any, frames: range) -> Optional[np.ndarray]:
    """A video's ``FRAMES`` frame hashes (uint64), read with the dataset's ``loader``; None if it cannot be read."""
    if len(frames) == 0:
        return None
    try:
        clip, _ = loader(path, positions(frames))
    except Exception:  # noqa: BLE001 - an unreadable video is check_dataset's other report, not this one's
        return None
    clip = clip.decode_for().transpose(0, 1) if hasattr(clip, 'decode_for') else clip  # T x C x H x W
    return np.array([frame_hash(f.permute(1, 2, 0).numpy()) for f in clip], dtype=np.uint64)


def _bands(signatures: np.ndarray) -> np.ndarray:
    """N x BANDS uint32 bands of N x FRAMES uint64 signatures."""
    return np.ascontiguousarray(signatures).view(np.uint32).reshape(len(signatures), BANDS)


def _popcount(x: np.ndarray) -> np.ndarray:
    """Set bits per uint64."""
    return np.unpackbits(x.view(np.uint8).reshape(*x.shape, 8), axis=-1).sum(axis=(-1, -2))


def near_duplicates(train: np.ndarray, val: np.ndarray, max_bits: int = 24) -> List[Tuple[int, int, int]]:
    """(training row, validation row, differing bits) of every pair within ``max_bits`` of 256, closest first."""
    if len(train) == 0 or len(val) == 0:
        return []
    a, b = _bands(train), _bands(val)
    pairs = set()
    for band in range(BANDS):
        keys = np.concatenate([a[:, band], b[:, band]])
        side = np.concatenate([np.zeros(len(a), bool), np.ones(len(b), bool)])
        rows = np.argsort(keys, kind='stable')
        keys, side = keys[rows], side[rows]
        starts = np.concatenate([[0], np.flatnonzero(np.diff(keys)) + 1])
        counts = np.diff(np.concatenate([starts, [len(keys)]]))
        on_val = np.add.reduceat(side.astype(np.int64), starts)
        mixed = (on_val > 0) & (on_val < counts) & (counts <= MAX_BUCKET)  # both sides share this band value
        for start, count in zip(starts[mixed], counts[mixed]):
            group, group_side = rows[start:start + count], side[start:start + count]
            pairs.update((int(i), int(j)) for i in group[~group_side] for j in group[group_side] - len(a))
    if not pairs:
        return []
    ij = np.array(sorted(pairs))
    bits = _popcount(train[ij[:, 0]] ^ val[ij[:, 1]])
    keep = bits <= max_bits
    found = [(int(i), int(j), int(d)) for (i, j), d in zip(ij[keep], bits[keep])]
    return sorted(found, key=lambda t: (t[2], t[0], t[1]))


def duplicate_problems(records: Dict[str, Sequence[Any]], signatures: Dict[str, List[Optional[np.ndarray]]],
                       max_bits: int) -> List[Tuple[str, str, str, str]]:
    """check_dataset's rows for the training/validation pairs: (validation id, subset, problem, detail)."""
    sides = {}
    for subset in ('training', 'validation'):
        kept = [(r, s) for r, s in zip(records.get(subset, []), signatures.get(subset, [])) if s is not None]
        sides[subset] = ([r for r, _ in kept], np.array([s for _, s in kept], np.uint64).reshape(-1, FRAMES))
    (train_records, train), (val_records, val) = sides['training'], sides['validation']
    return [(val_records[j].video_id, 'validation', 'near duplicate',
             f'of training video {train_records[i].video_id} ({d} of {FRAMES * 64} hash bits differ)')
            for i, j, d in near_duplicates(train, val, max_bits)]
