"""The demo's action dataset, rendered as real encoded videos in the UCF-101 layout with split files.

Six classes that a single frame cannot tell apart — a shape moving left, right, up or down,
growing or shrinking — over random textured backgrounds lit from above (as most real scenes
are: self-supervised pretexts such as the cubic puzzles rely on it), with random shapes,
colours, sizes, speeds and start positions. Writes ``DST/videos/<Class>/v_<Class>_gGG_cCC.avi`` (MPEG-4 Part
2 in AVI, like UCF-101) and ``DST/splits/`` with ``classInd.txt``, ``trainlist0{1,2,3}.txt`` and
``testlist0{1,2,3}.txt`` (groups 1-2 are the test set of split 1, 3-4 of split 2, 5-6 of
split 3). Existing videos are kept, so rerunning is cheap; ``VERSION`` in ``DST`` names the renderer
that made them (``demo.prepare_demo_data`` starts over when it changes).
"""
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from common.atomic import atomic_write
from conversion.writers import encode_video

CLASSES = ['MoveLeft', 'MoveRight', 'MoveUp', 'MoveDown', 'Grow', 'Shrink']
WIDTH, HEIGHT = 80, 64
GROUPS = 8
VERSION = '2'  # bump when the rendering changes: demo folders of another version are re-made
LIGHT = 45.0   # brightness added at the top of the frame and taken away at the bottom


def background(rng: np.random.Generator) -> np.ndarray:
    """A smooth random colour texture with fine grain, H x W x 3 float."""
    coarse = rng.uniform(70, 185, (HEIGHT // 8 + 2, WIDTH // 8 + 2, 3))
    ys = np.linspace(0, coarse.shape[0] - 1.001, HEIGHT)
    xs = np.linspace(0, coarse.shape[1] - 1.001, WIDTH)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
    c = coarse
    smooth = ((1 - fy) * (1 - fx) * c[y0][:, x0] + (1 - fy) * fx * c[y0][:, x0 + 1]
              + fy * (1 - fx) * c[y0 + 1][:, x0] + fy * fx * c[y0 + 1][:, x0 + 1])
    lighting = np.linspace(LIGHT, -LIGHT, HEIGHT)[:, None, None]
    return smooth + rng.normal(0, 6, smooth.shape) + lighting


def shape_mask(kind: str, cx: float, cy: float, radius: float) -> np.ndarray:
    """Boolean H x W mask of a circle, square or triangle centred at (cx, cy)."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    dx, dy = x - cx, y - cy
    if kind == 'circle':
        return dx ** 2 + dy ** 2 <= radius ** 2
    if kind == 'square':
        return (np.abs(dx) <= radius * 0.85) & (np.abs(dy) <= radius * 0.85)
    return (dy <= radius * 0.8) & (dy >= -radius) & (np.abs(dx) <= (dy + radius) * 0.6)


def trajectory(label: str, n: int, rng: np.random.Generator) -> List[Tuple[float, float, float]]:
    """(cx, cy, radius) per frame for one video of class ``label``."""
    if label in ('Grow', 'Shrink'):
        r_small, r_big = rng.uniform(6, 10), rng.uniform(20, 28)
        r0, r1 = (r_small, r_big) if label == 'Grow' else (r_big, r_small)
        cx, cy = rng.uniform(25, WIDTH - 25), rng.uniform(22, HEIGHT - 22)
        return [(cx, cy, r0 + (r1 - r0) * t / (n - 1)) for t in range(n)]
    radius = rng.uniform(10, 17)
    travel = rng.uniform(1.2, 1.8) * (n - 1)  # pixels over the whole video
    horizontal = label in ('MoveLeft', 'MoveRight')
    span = (WIDTH if horizontal else HEIGHT) - 2 * radius - travel
    start = radius + rng.uniform(0, max(span, 1.0)) + (travel if label in ('MoveLeft', 'MoveUp') else 0)
    step = travel / (n - 1) * (-1 if label in ('MoveLeft', 'MoveUp') else 1)
    other = rng.uniform(radius, (HEIGHT if horizontal else WIDTH) - radius)
    path = [start + step * t for t in range(n)]
    return [(p, other, radius) if horizontal else (other, p, radius) for p in path]


def render(label: str, n_frames: int, rng: np.random.Generator) -> List[np.ndarray]:
    """The frames (uint8 H x W x 3) of one video."""
    bg = background(rng)
    kind = rng.choice(['circle', 'square', 'triangle'])
    colour = rng.uniform(0, 255, 3)
    frames = []
    for cx, cy, radius in trajectory(label, n_frames, rng):
        frame = bg.copy()
        frame[shape_mask(kind, cx, cy, radius)] = colour
        frames.append(np.clip(frame + rng.normal(0, 3, frame.shape), 0, 255).astype(np.uint8))
    return frames


def write_avi(path: Path, frames: List[np.ndarray]) -> None:
    """Encode frames as MPEG-4 Part 2 in AVI at 25 fps, written atomically."""
    atomic_write(path, lambda f: encode_video(f, frames, 'mpeg4', 25, bit_rate=800_000,
                                              container_format='avi'))


def write_splits(split_dir: Path, names: List[Tuple[str, int]], classes: Sequence[str] = CLASSES) -> None:
    """classInd.txt and three train/test splits by group, in UCF-101's formats (names ``v_<Class>_...``)."""
    split_dir.mkdir(parents=True, exist_ok=True)
    (split_dir / 'classInd.txt').write_text(''.join(f'{i + 1} {c}\n' for i, c in enumerate(classes)))
    for k in (1, 2, 3):
        test_groups = {2 * k - 1, 2 * k}
        train = [f'{n.split("_")[1]}/{n} {classes.index(n.split("_")[1]) + 1}\n' for n, g in names if g not in test_groups]
        test = [f'{n.split("_")[1]}/{n}\n' for n, g in names if g in test_groups]
        (split_dir / f'trainlist0{k}.txt').write_text(''.join(train))
        (split_dir / f'testlist0{k}.txt').write_text(''.join(test))


def make_demo_dataset(dst: Path, videos_per_class: int = 24, n_frames: int = 32, seed: int = 0,
                      show_progress: bool = True) -> Path:
    """Render the dataset into ``dst``; returns the split folder."""
    rng = np.random.default_rng(seed)
    names: List[Tuple[str, int]] = []
    jobs = []
    for label in CLASSES:
        for i in range(videos_per_class):
            group, clip = i % GROUPS + 1, i // GROUPS + 1
            name = f'v_{label}_g{group:02d}_c{clip:02d}.avi'
            names.append((name, group))
            jobs.append((label, dst / 'videos' / label / name, int(rng.integers(1 << 31))))
    for label, path, video_seed in tqdm(jobs, desc='rendering demo videos', disable=not show_progress):
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_avi(path, render(label, n_frames, np.random.default_rng(video_seed)))
    write_splits(dst / 'splits', names)
    (dst / 'VERSION').write_text(VERSION + '\n')
    return dst / 'splits'
