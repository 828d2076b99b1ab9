"""Issue 23's second temporal task: a window moving over real camera footage; the class is its motion.

    python bench/moving_task.py [--root moving_data] [--videos_per_class 52] [--frames 20] [--seed 0]

Each video is a ``--window`` crop (96 x 72) travelling in a straight line over a run of consecutive
real frames of the clips in ``shared/media`` (``bikes.mp4``, ``run.mp4``: decoded with PyAV, the short
side scaled to ``--source_side``), at a random speed, in one of 8 directions (the 4 axes and the 4
diagonals). Runs never cross a scene cut, so the footage's own camera motion is the only other
motion. One frame cannot tell the class: only its change over time can. Deterministic from
``--seed``. Writes ``ROOT/videos/<Class>/v_<Class>_gGG_cCC.mp4`` (H.264) and UCF-101 split files,
then converts and annotates them with the demo's code (``demo.convert_to_jpgs``,
``demo.build_annotations``), so that ``main.py --dataset ucf101 --video_path ROOT/jpg
--annotation_path ROOT/ucf101_01.json`` trains on it. Videos whose group is 1 or 2 are the
validation set of split 1 (about a quarter). ``ROOT/SPEC.json`` records the settings; other
settings make it again from scratch.
"""
import argparse
import json
import math
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common.atomic import atomic_write  # noqa: E402
from conversion.demo_videos import write_splits  # noqa: E402
from conversion.frames import FrameReader  # noqa: E402
from conversion.writers import encode_video  # noqa: E402
from demo import build_annotations, convert_to_jpgs  # noqa: E402

VERSION = '2'  # bump when the rendering changes: folders made by another version are made again
SQRT_HALF = math.sqrt(0.5)
# Unit (dx, dy) per class in image coordinates (y grows downwards); no '_' in a name (UCF-101 file names).
MOTIONS: Dict[str, Tuple[float, float]] = {
    'Left': (-1.0, 0.0), 'Right': (1.0, 0.0), 'Up': (0.0, -1.0), 'Down': (0.0, 1.0),
    'UpLeft': (-SQRT_HALF, -SQRT_HALF), 'UpRight': (SQRT_HALF, -SQRT_HALF),
    'DownLeft': (-SQRT_HALF, SQRT_HALF), 'DownRight': (SQRT_HALF, SQRT_HALF)}
SOURCES = ('bikes.mp4', 'run.mp4')
CUT = 30.0  # mean absolute RGB difference of consecutive frames above which a new shot starts
# Videos take groups in this order, so that even 2 videos per class put one in training (group 3)
# and one in validation (group 1), and 52 put 13 in validation (groups 1 and 2, UCF-101's split 1).
GROUP_ORDER = (3, 1, 4, 5, 2, 6, 7, 8)
# main.py flags for this task, next to demo.DEMO_FLAGS: the demo's ResNet-10 at twice its width (real
# footage with camera motion is harder than the demo's shapes; 2 epochs at width 0.25 reached 22% and
# an epoch at 0.5 takes about 3 s on 2 cores, so 40 epochs are about 2-3 minutes) and its schedule
# shape; no horizontal flip (it would swap Left and Right). --n_classes follows the data (spec.classes).
MOVING_FLAGS = ['--dataset', 'ucf101', '--model', 'resnet', '--model_depth', '10', '--resnet_widen_factor', '0.5',
                '--sample_size', '56', '--sample_duration', '8', '--sample_t_stride', '2',
                '--train_crop', 'random', '--train_crop_min_scale', '0.5', '--no_hflip',
                '--batch_size', '16', '--n_threads', '2', '--learning_rate', '0.05', '--weight_decay', '1e-3',
                '--n_epochs', '40', '--multistep_milestones', '30', '--checkpoint', '10', '--n_val_samples', '2']


@dataclass(frozen=True)
class MovingSpec:
    """What a moving-window dataset is made of; equal specs make identical datasets."""
    classes: int = 8
    videos_per_class: int = 52
    frames: int = 20
    window: Tuple[int, int] = (96, 72)  # width, height
    source_side: int = 144  # short side of the decoded footage
    min_speed: float = 1.0  # pixels per frame, at source_side
    max_speed: float = 2.5
    still: bool = False  # one real frame repeated instead of a run of consecutive frames
    seed: int = 0

    @property
    def labels(self) -> List[str]:
        """The class names, in classInd.txt order."""
        return list(MOTIONS)[:self.classes]

    def record(self) -> Dict[str, object]:
        """The JSON form of SPEC.json."""
        return dict(asdict(self), window=list(self.window), version=VERSION)


def media_dir() -> Path:
    """``shared/media`` of this checkout, or of the folder above it (where worktrees share it)."""
    for base in (ROOT, ROOT.parent):
        if (base / 'shared' / 'media' / SOURCES[0]).is_file():
            return base / 'shared' / 'media'
    raise FileNotFoundError(f'no shared/media/{SOURCES[0]} in {ROOT} or {ROOT.parent}')


def decode(path: Path, short_side: int) -> np.ndarray:
    """Every frame of ``path`` as uint8 (T, H, W, 3), the short side scaled to ``short_side``."""
    return np.stack(list(FrameReader(path, short_side)))


def split_shots(frames: np.ndarray, cut: float = CUT) -> List[np.ndarray]:
    """The runs of ``frames`` between scene cuts."""
    change = np.abs(np.diff(frames.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))
    starts = [0] + [i + 1 for i in np.flatnonzero(change > cut)] + [len(frames)]
    return [frames[a:b] for a, b in zip(starts, starts[1:]) if b > a]


def load_shots(media: Path, spec: MovingSpec) -> List[np.ndarray]:
    """The shots of every source clip that are long enough for one video."""
    shots = [s for name in SOURCES for s in split_shots(decode(media / name, spec.source_side))]
    usable = [s for s in shots if len(s) >= spec.frames]
    if not usable:
        raise ValueError(f'no shot of {spec.frames} frames or more in {media}')
    return usable


def window_path(direction: Tuple[float, float], speed: float, spec: MovingSpec, frame_hw: Tuple[int, int],
                rng: np.random.Generator) -> List[Tuple[int, int]]:
    """(x, y) of the window's top-left corner per frame: a straight line that stays inside the frame."""
    travel_x, travel_y = (d * speed * (spec.frames - 1) for d in direction)
    room_x, room_y = frame_hw[1] - spec.window[0], frame_hw[0] - spec.window[1]
    if abs(travel_x) > room_x or abs(travel_y) > room_y:
        raise ValueError(f'a {spec.window[0]}x{spec.window[1]} window moving {speed:.1f} px/frame for '
                         f'{spec.frames} frames leaves a {frame_hw[1]}x{frame_hw[0]} frame: lower --max_speed '
                         'or --frames, or raise --source_side')
    x0 = rng.uniform(max(0.0, -travel_x), room_x - max(0.0, travel_x))
    y0 = rng.uniform(max(0.0, -travel_y), room_y - max(0.0, travel_y))
    steps = np.linspace(0.0, 1.0, spec.frames)
    return [(int(round(x0 + travel_x * s)), int(round(y0 + travel_y * s))) for s in steps]


def render(label: str, shots: Sequence[np.ndarray], spec: MovingSpec, rng: np.random.Generator) -> List[np.ndarray]:
    """The frames of one video of class ``label``: a shot, a start frame, a speed and a start position."""
    starts = np.array([len(s) - spec.frames + 1 for s in shots], dtype=float)
    shot = shots[rng.choice(len(shots), p=starts / starts.sum())]
    t0 = int(rng.integers(len(shot) - spec.frames + 1))
    speed = rng.uniform(spec.min_speed, spec.max_speed)
    path = window_path(MOTIONS[label], speed, spec, shot.shape[1:3], rng)
    width, height = spec.window
    frames = []
    for t, (x, y) in enumerate(path):
        source = shot[t0] if spec.still else shot[t0 + t]
        frames.append(np.ascontiguousarray(source[y:y + height, x:x + width]))
    return frames


def write_mp4(path: Path, frames: List[np.ndarray]) -> None:
    """Encode frames as H.264 in MP4 at 25 fps, written atomically; the same frames give the same bytes."""
    # x264's macroblock-tree rate control made about 1 encode in 50 of the same frames differ here
    # (with one thread too); without it, and on one thread, 800 encodes were identical.
    options = {'crf': '18', 'preset': 'veryfast', 'mbtree': '0', 'threads': '1'}
    atomic_write(path, lambda f: encode_video(f, frames, 'libx264', 25, options, container_format='mp4'))


def video_jobs(spec: MovingSpec) -> List[Tuple[str, str, int, int]]:
    """(label, file name, group, seed) of every video, in a fixed order drawn from ``spec.seed``."""
    rng = np.random.default_rng(spec.seed)
    jobs = []
    for label in spec.labels:
        for i in range(spec.videos_per_class):
            group, clip = GROUP_ORDER[i % len(GROUP_ORDER)], i // len(GROUP_ORDER) + 1
            jobs.append((label, f'v_{label}_g{group:02d}_c{clip:02d}.mp4', group, int(rng.integers(1 << 31))))
    return jobs


def make_moving_dataset(root: Path, spec: MovingSpec, media: Optional[Path] = None) -> Path:
    """Render the videos and split files into ``root`` (existing videos are kept); returns the split folder."""
    shots = load_shots(media or media_dir(), spec)
    jobs = video_jobs(spec)
    for label, name, _, seed in jobs:
        path = root / 'videos' / label / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            write_mp4(path, render(label, shots, spec, np.random.default_rng(seed)))
    write_splits(root / 'splits', [(name, group) for _, name, group, _ in jobs], spec.labels)
    return root / 'splits'


def forget_other_spec(root: Path, spec: MovingSpec) -> None:
    """Remove what ``root`` holds of a dataset made with other settings; record ``spec``."""
    stamp = root / 'SPEC.json'
    if stamp.is_file() and json.loads(stamp.read_text()) == spec.record():
        return
    if (root / 'videos').is_dir():
        print(f'{root} was made with other settings: making it again')
    for generated in ('videos', 'jpg', 'splits'):
        shutil.rmtree(root / generated, ignore_errors=True)
    for old in root.glob('ucf101_0*.json'):
        old.unlink()
    root.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps(spec.record(), indent=1) + '\n')


def prepare_moving_data(root: Path, spec: MovingSpec = MovingSpec(), media: Optional[Path] = None) -> int:
    """Videos, JPG frames and ``ucf101_0{1,2,3}.json`` in ``root``; 0 on success."""
    forget_other_spec(root, spec)
    print(f'rendering {spec.classes} x {spec.videos_per_class} moving-window videos into {root / "videos"}',
          flush=True)
    make_moving_dataset(root, spec, media)
    code = convert_to_jpgs(root, size=min(spec.window))
    return code if code != 0 else build_annotations(root)


def parse_spec(argv: Optional[List[str]] = None) -> Tuple[Path, MovingSpec, Optional[Path]]:
    """(root, spec, media folder or None) from the command line."""
    d = MovingSpec()
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--root', type=Path, default=Path('moving_data'), help='Output folder')
    parser.add_argument('--media', type=Path, default=None, help='Folder of the source clips (default: shared/media)')
    parser.add_argument('--classes', type=int, default=d.classes, choices=range(2, len(MOTIONS) + 1),
                        help=f'The first n of {", ".join(MOTIONS)}')
    parser.add_argument('--videos_per_class', type=int, default=d.videos_per_class)
    parser.add_argument('--frames', type=int, default=d.frames, help='Frames per video')
    parser.add_argument('--window', type=int, nargs=2, default=list(d.window), metavar=('W', 'H'))
    parser.add_argument('--source_side', type=int, default=d.source_side)
    parser.add_argument('--min_speed', type=float, default=d.min_speed, help='Pixels per frame')
    parser.add_argument('--max_speed', type=float, default=d.max_speed, help='Pixels per frame')
    parser.add_argument('--still', action='store_true', help='Move over one real frame, not a run of frames')
    parser.add_argument('--seed', type=int, default=d.seed)
    a = parser.parse_args(argv)
    spec = MovingSpec(a.classes, a.videos_per_class, a.frames, tuple(a.window), a.source_side, a.min_speed,
                      a.max_speed, a.still, a.seed)
    return a.root, spec, a.media


def main(argv: Optional[List[str]] = None) -> int:
    """Make the dataset the command line asks for."""
    root, spec, media = parse_spec(argv)
    return prepare_moving_data(root, spec, media)


if __name__ == '__main__':
    sys.exit(main())
