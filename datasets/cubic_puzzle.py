"""Space-Time Cubic Puzzles: self-supervised samples from unlabeled videos.

A cuboid of a video is a grid of 2 x 2 x 4 cells (rows x columns x temporal slots), each
``cell_t`` frames by ``cell_s`` x ``cell_s`` pixels. A puzzle takes 4 cells either
*spatially* (the 2 x 2 cells of one slot) or *temporally* (the 4 slots of one spatial cell),
cuts one piece out of each at a random offset in t, y and x (pieces are smaller than their
cells, so neighbours are separated by a gap of random width and edges cannot simply be
continued), shuffles them with one of 24 permutations, turns them all upside down half of
the time and copies one random colour channel of each piece into all three. The label is
``perm_index + 24 * flipped`` (see ``models.cubic_puzzle``).

Cells are numbered in natural order: raster order (top-left, top-right, bottom-left,
bottom-right) for spatial tuples, time order for temporal ones. Slot ``k`` of a puzzle with
permutation ``p`` holds the piece of cell ``p[k]``.
"""
import random
from typing import Any, Callable, Dict, List, Sequence, Tuple

import torch
from torch.utils.data import Dataset

from datasets.annotations import VideoList
from datasets.decode import VideoReadError
from datasets.samplers import Item, sample_rng, with_fallbacks
from datasets.video_dataset import Sample, collate
from models.cubic_puzzle import N_PIECES, PERMUTATIONS, puzzle_class_names, puzzle_label
from spatial_transforms import resize_clip
from temporal_transforms import loop_pad

KINDS = ('spatial', 'temporal')
CROP_SCALE = (0.8, 1.0)  # side of the cropped square, as a fraction of the frame's short side
GRID = 2                 # the spatial grid is GRID x GRID cells; GRID * GRID == N_PIECES slots


def cell_size(piece: int, jitter: float) -> int:
    """Cell extent holding a ``piece`` with ``jitter`` of room: ``round(piece * (1 + jitter))``."""
    if jitter < 0:
        raise ValueError(f'jitter must be >= 0, not {jitter}')
    return int(round(piece * (1 + jitter)))


def _cell_origins(clip: torch.Tensor, kind: str, rng: random.Random, cell_t: int,
                  cell_s: int) -> List[Tuple[int, int, int]]:
    """(t, y, x) corners of the tuple's 4 cells, in natural order, from a randomly chosen slot or cell."""
    t, h, w = clip.shape[-3:]
    if t % cell_t or h % cell_s or w % cell_s:
        raise ValueError(f'clip {tuple(clip.shape)} is not a grid of {cell_t} x {cell_s} x {cell_s} cells')
    if kind == 'spatial':
        if h != GRID * cell_s or w != GRID * cell_s:
            raise ValueError(f'a spatial tuple needs {GRID} x {GRID} cells, not {h // cell_s} x {w // cell_s}')
        t0 = rng.randrange(t // cell_t) * cell_t
        return [(t0, r * cell_s, c * cell_s) for r in range(GRID) for c in range(GRID)]
    if kind == 'temporal':
        if t != N_PIECES * cell_t:
            raise ValueError(f'a temporal tuple needs {N_PIECES} slots, not {t // cell_t}')
        y0, x0 = rng.randrange(h // cell_s) * cell_s, rng.randrange(w // cell_s) * cell_s
        return [(k * cell_t, y0, x0) for k in range(N_PIECES)]
    raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")


def make_puzzle(clip: torch.Tensor, kind: str, rng: random.Random, piece_duration: int, piece_size: int,
                cell_t: int, cell_s: int, channel_replication: bool = True,
                rotation: bool = True) -> Tuple[torch.Tensor, int]:
    """Cut, jitter, shuffle, maybe flip and colour-strip the 4 pieces of one tuple of ``clip``.

    ``clip`` (C x T x H x W, any dtype) is a whole grid of cells: a spatial tuple needs 2 x 2
    cells and takes a random temporal slot; a temporal tuple needs 4 slots and takes a random
    spatial cell. Returns the 4 x C x piece_duration x piece_size x piece_size pieces in slot
    order and the label ``perm_index + 24 * flipped``.
    """
    if piece_duration > cell_t or piece_size > cell_s:
        raise ValueError(f'pieces {piece_duration} x {piece_size} do not fit cells {cell_t} x {cell_s}')
    pieces = []
    for t0, y0, x0 in _cell_origins(clip, kind, rng, cell_t, cell_s):
        t = t0 + rng.randint(0, cell_t - piece_duration)
        y = y0 + rng.randint(0, cell_s - piece_size)
        x = x0 + rng.randint(0, cell_s - piece_size)
        pieces.append(clip[:, t:t + piece_duration, y:y + piece_size, x:x + piece_size])
    perm_index = rng.randrange(len(PERMUTATIONS))
    out = torch.stack([pieces[i] for i in PERMUTATIONS[perm_index]])
    flipped = rotation and rng.random() < 0.5
    if flipped:
        out = out.flip(-2)
    if channel_replication and out.shape[1] == 3:
        channels = torch.tensor([rng.randrange(3) for _ in range(len(out))])
        out = out[torch.arange(len(out)), channels].unsqueeze(1).expand_as(out).contiguous()
    return out, puzzle_label(perm_index, flipped)


def random_window(indices: Sequence[int], size: int, rng: random.Random) -> List[int]:
    """``size`` consecutive entries of ``indices`` at a random start, loop-padded when too few."""
    begin = rng.randint(0, max(0, len(indices) - size))
    return loop_pad(list(indices[begin:begin + size]), size)


def random_square(clip: torch.Tensor, rng: random.Random, share: float, size: int) -> torch.Tensor:
    """A random square of ``share`` x (0.8 to 1) x the short side, resized to ``size`` (uint8 in, uint8 out)."""
    h, w = clip.shape[-2:]
    side = max(1, int(round(min(h, w) * share * rng.uniform(*CROP_SCALE))))
    top, left = rng.randint(0, h - side), rng.randint(0, w - side)
    return resize_clip(clip[..., top:top + side, left:left + side], (size, size))


class CubicPuzzleDataset(Dataset):
    """One cubic puzzle per video and draw: ``clip`` is 4 x C x piece_duration x piece_size x piece_size.

    ``fixed`` seeds every sample from its index alone (validation: the same puzzles each
    epoch). ``loader`` gives RGB T x C x H x W frames (``build.get_loader``).
    """

    def __init__(self, videos: VideoList, loader: Callable, piece_duration: int, piece_size: int,
                 jitter: float = 0.25, channel_replication: bool = True, rotation: bool = True,
                 fixed: bool = False):
        self.videos = videos
        self.records = videos.records
        self.class_names = list(puzzle_class_names())
        self.loader = loader
        self.piece_duration, self.piece_size = piece_duration, piece_size
        self.cell_t, self.cell_s = cell_size(piece_duration, jitter), cell_size(piece_size, jitter)
        self.channel_replication, self.rotation, self.fixed = channel_replication, rotation, fixed

    def __len__(self) -> int:
        return len(self.records)

    def _failed(self, index: int, reason: str) -> Sample:
        return {'failed': reason, 'video_id': self.records[index].video_id}

    def __getitem__(self, item: Item) -> Sample:
        """The puzzle of ``item``; a training item whose video fails gets one of its fallbacks' (``samplers.with_fallbacks``)."""
        return with_fallbacks(self._sample, item)

    def _sample(self, item: Item) -> Sample:
        index, rng = sample_rng(item, self.fixed)
        record = self.records[index]
        kind = rng.choice(KINDS)
        # A spatial tuple needs one slot of frames and 2 x 2 cells; a temporal one 4 slots of one cell.
        slots, cells = (1, GRID) if kind == 'spatial' else (N_PIECES, 1)
        if not record.frames:
            return self._failed(index, f'{record.path}: no frames')
        indices = random_window(record.frames, slots * self.cell_t, rng)
        try:
            frames, bad = self.loader(record.path, indices)
        except VideoReadError as e:
            return self._failed(index, str(e))
        region = random_square(frames.transpose(0, 1), rng, cells / GRID, cells * self.cell_s)
        pieces, label = make_puzzle(region, kind, rng, self.piece_duration, self.piece_size, self.cell_t,
                                    self.cell_s, self.channel_replication, self.rotation)
        return {'clip': pieces, 'label': label, 'video_id': record.video_id,
                'segment': (min(indices), max(indices) + 1), 'bad_frames': bad}


def collate_puzzles(samples: Sequence[Sample]) -> Dict[str, Any]:
    """``collate`` with the pieces flattened into the batch: ``clip`` is (N * 4) x C x T x H x W."""
    batch = collate(samples)
    if batch['clip'] is not None:
        batch['clip'] = batch['clip'].flatten(0, 1)
    return batch
