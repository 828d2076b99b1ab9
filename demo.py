"""``python main.py --demo``: the whole framework on a built-in dataset, the way a user runs it.

Steps, each the code behind the real tool: render the demo videos (``conversion.demo_videos``,
``make_demo_dataset``), convert them to JPG frames (``conversion.runner``, ``generate_video_jpgs``),
build the annotation files (``datasets.builders.ucf101``, ``ucf101_json``), train a small 3D ResNet
(``main.py``), infer on the validation videos and evaluate them (``evaluation.scoring``,
``eval_accuracy``). Any ``main.py`` flag given with ``--demo`` overrides the demo's own,
e.g. ``python main.py --demo --n_epochs 1`` or ``--result_path elsewhere``.
"""
import functools
import shutil
import sys
import time
from fractions import Fraction
from pathlib import Path
from typing import Callable, List

DEMO_ROOT = Path('demo_data')
VIDEOS_PER_CLASS = 64
# A small, fast model on small clips; no horizontal flip: it would swap MoveLeft and MoveRight.
DEMO_FLAGS = ['--dataset', 'ucf101', '--model', 'resnet', '--model_depth', '10', '--resnet_widen_factor', '0.25',
              '--n_classes', '6', '--sample_size', '56', '--sample_duration', '8', '--sample_t_stride', '2',
              '--train_crop', 'random', '--train_crop_min_scale', '0.5', '--no_hflip',
              '--batch_size', '16', '--n_threads', '2', '--learning_rate', '0.05', '--weight_decay', '1e-3',
              '--n_epochs', '30', '--multistep_milestones', '20', '--checkpoint', '10', '--n_val_samples', '2',
              '--inference', '--inference_subset', 'val', '--inference_stride', '8', '--output_topk', '5']


def _step(title: str) -> float:
    print(f'\n== {title}', flush=True)
    return time.perf_counter()


def prepare_demo_data(root: Path = DEMO_ROOT) -> int:
    """Steps 1-3: render the videos, extract JPG frames, write ``ucf101_0{1,2,3}.json``; 0 on success."""
    from conversion import demo_videos

    stamp = root / 'VERSION'
    if stamp.is_file() and stamp.read_text().strip() != demo_videos.VERSION or \
            not stamp.is_file() and (root / 'videos').is_dir():
        print(f'{root} was rendered by an older version of the demo: rendering it again')
        for generated in ('videos', 'jpg', 'splits'):
            shutil.rmtree(root / generated, ignore_errors=True)
    _step(f'1/5 rendering the demo dataset into {root / "videos"}')
    demo_videos.make_demo_dataset(root, videos_per_class=VIDEOS_PER_CLASS)
    _step('2/5 converting the videos to JPG frames (conversion.runner, as generate_video_jpgs does)')
    code = convert_to_jpgs(root, size=64)
    if code != 0:
        return code
    _step('3/5 building the annotation files (datasets.builders.ucf101, as ucf101_json does)')
    return build_annotations(root)


def convert_to_jpgs(root: Path, size: int) -> int:
    """``root/videos`` (UCF-101 class folders) to JPG frame folders in ``root/jpg`` at short side ``size``; 0: done."""
    from common.cli import run
    from conversion.runner import run_conversion
    from conversion.writers import write_jpgs

    every_frame = functools.partial(write_jpgs, size=size, fps=Fraction(-1))
    code = run(lambda: run_conversion(root / 'videos', root / 'jpg', 'ucf101', '', every_frame))
    if code != 0:
        print('error: frame extraction failed', file=sys.stderr)
    return code


def build_annotations(root: Path) -> int:
    """``root/ucf101_0{1,2,3}.json`` from ``root/splits`` and the frame folders in ``root/jpg``; 0 on success."""
    from common.cli import run
    from datasets.builders import ucf101

    return run(lambda: ucf101.build(root / 'splits', root / 'jpg', root))


def run_demo(user_args: List[str], train: Callable[[List[str]], int]) -> int:
    """Run every step; ``user_args`` are main.py flags that override the demo's; ``train`` is main.py's entry point."""
    from conversion.demo_videos import CLASSES
    from evaluation.scoring import evaluate_files
    from opts import parse_opts

    start = time.perf_counter()
    root = DEMO_ROOT
    code = prepare_demo_data(root)
    if code != 0:
        return code
    results = root / 'results'
    args = ['--video_path', str(root / 'jpg'), '--annotation_path', str(root / 'ucf101_01.json'),
            '--result_path', str(results), *DEMO_FLAGS, *user_args]
    opt_result = parse_opts(args).result_path  # the user's --result_path wins
    t = _step('4/5 training a 3D ResNet-10 and running inference (main.py ' + ' '.join(args) + ')')
    code = train(args)
    if code != 0:
        return code
    train_minutes = (time.perf_counter() - t) / 60
    _step('5/5 evaluating the inference results (evaluation.scoring, as eval_accuracy does)')
    metrics = evaluate_files(root / 'ucf101_01.json', opt_result / 'val.json', 'validation')
    chance = 1 / len(CLASSES)
    print(f"\nDemo video-level top-1 accuracy: {metrics['top1']:.1%} (chance: {chance:.1%}); "
          f'training and inference took {train_minutes:.1f} min, the whole demo '
          f'{(time.perf_counter() - start) / 60:.1f} min.')
    print(f'In {opt_result}/: the training curves (curves.png), right and wrong examples (val_examples.png), '
          'per-class accuracy (val_classes.png, val_per_class.tsv, val_confusion.tsv), checkpoints (save_*.pth), '
          'logs (train.log, train_batch.log, val.log) and results (val.json)')
    return 0
