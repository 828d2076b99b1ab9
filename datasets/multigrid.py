"""The multigrid schedule (Wu, Girshick, He, Feichtenhofer, Krähenbühl, CVPR 2020): each iteration's clip shape.

Training moves through coarse space-time grids with proportionally larger batches, so that an
iteration costs about as much as one at the full shape while an epoch takes fewer of them:

- the *long cycle* holds one grid for several epochs: T/4 x (S/√2)² with 8 x the batch, then
  T/2 x (S/√2)² (4x), T/2 x S² (2x) and T x S² (1x), each for the same number of iterations
  (so for epochs in the ratio 8 : 4 : 2 : 1). The cycle runs once in every learning-rate stage
  but the last (up to each ``--multistep_milestones`` step); the last stage, after the last
  step, trains at the full shape: its BatchNorm statistics are those of the full-shape
  clips the evaluation sees. A schedule with no step inside the run (cosine, plateau) holds one
  cycle over its first 90% of epochs and trains the rest at the full shape.
- the *short cycle* changes the side from one iteration to the next: S'/2 (4 x the batch), S'/√2
  (2x), S' (1x), where S' is the long cycle's side; it runs wherever the long cycle does (alone:
  over the same epochs, the final stage again at the full shape).

Fewer frames keep the clip's time span: the temporal stride grows as the frames shrink. The
learning rate follows the linear scaling rule: base x (batch / ``--batch_size``), where a batch of
``--repeat_aug K`` clips per video counts its videos (never below the base rate). Every grid is
a pure function of the options and the iteration's place in its epoch, so every rank uses the
same shape at the same step and a resumed run continues the cycle where it stopped.
"""
import math
from argparse import Namespace
from dataclasses import dataclass, field
from typing import Any, List, Mapping, Optional, Sequence, Tuple, Union

import torch

from common.errors import UserError
from datasets.samplers import count_batches, epoch_length, sample_seed
from models.summary import shape_problem

# (frames, side) as fractions of --sample_duration and --sample_size; the batch grows as 1 / (t s²)
LONG_CYCLE: Tuple[Tuple[float, float], ...] = ((1 / 4, 2 ** -0.5), (1 / 2, 2 ** -0.5), (1 / 2, 1.0), (1.0, 1.0))
SHORT_CYCLE: Tuple[float, ...] = (1 / 2, 2 ** -0.5, 1.0)  # side fractions, iteration by iteration
FINAL_SHARE = 0.1  # of the epochs, at the full shape, when no learning-rate step marks a last stage
Shape = Tuple[int, int, int]  # (frames, side, temporal stride) of one iteration's clips
# full-shape clips that re-estimate BatchNorm after a coarse epoch: on the bench's checkpoints 64 gave the
# validation loss of 128 within 3% in two thirds of the time, 32 up to twice it (docs/benchmarks.md)
BN_CLIPS = 64


@dataclass(frozen=True)
class Grid:
    """One iteration's per-rank batch, its clip shape (None: the options' own) and learning-rate factor."""
    batch: int
    shape: Optional[Shape] = None
    lr_factor: float = 1.0


@dataclass(frozen=True)
class Stage:
    """Epochs ``first``..``last`` (inclusive) at one long-cycle grid; ``cycle``: its grids, iteration by iteration."""
    first: int
    last: int
    cycle: Tuple[Grid, ...]


def batch_factor(frames: float, side: float) -> int:
    """How many times the batch grows when clips have these fractions of the frames and side (8 for 1/4, 1/√2)."""
    return max(1, round(1 / (frames * side * side)))


def grids(frames: int, size: int, t_stride: int, batch: int, t: float, s: float, short: bool,
          max_batch: int, repeat: int = 1) -> Tuple[Grid, ...]:
    """The grids of one long-cycle shape ``(t, s)``: one, or the short cycle's three; batches up to ``max_batch``.

    The learning rate counts videos: a grid of ``repeat`` clips per video rises above the base rate
    only once it holds more videos than ``batch``."""
    long_factor = batch_factor(t, s)
    n_frames = max(1, round(frames * t))
    stride = max(1, round(t_stride * frames / n_frames))
    out = []
    for side in (SHORT_CYCLE if short else (1.0,)):
        grown = min(batch * long_factor * batch_factor(1.0, side), max(batch, max_batch))
        shape = (n_frames, max(1, round(size * s * side)), stride)
        out.append(Grid(grown, None if shape == (frames, size, t_stride) else shape, max(1.0, grown / repeat / batch)))
    return tuple(out)


def split_epochs(first: int, last: int, weights: Sequence[float]) -> List[Tuple[int, int]]:
    """Epochs ``first``..``last`` cut into consecutive runs in proportion to ``weights`` (empty runs dropped)."""
    n, total, runs, start = last - first + 1, sum(weights), [], first
    cumulative = 0.0
    for w in weights:
        cumulative += w
        end = first - 1 + round(n * cumulative / total)
        if end >= start:
            runs.append((start, end))
            start = end + 1
    return runs


def schedule(n_epochs: int, milestones: Sequence[int], frames: int, size: int, t_stride: int, batch: int, *,
             long: bool = True, short: bool = True, epoch_samples: Optional[int] = None,
             min_steps: int = 1, repeat: int = 1) -> List[Stage]:
    """The stages of epochs 1..``n_epochs``: long cycles (and short ones) per learning-rate stage, then the full shape.

    ``epoch_samples`` (a rank's clips per epoch) caps every batch at ``epoch_samples // min_steps``
    (never below ``batch``): on a small training set the paper's 32-fold batch would make a coarse
    epoch one step at 32 x the learning rate; capped, it still takes ``min_steps`` steps and the
    learning rate follows the batch it gets. With ``repeat`` clips of each video in a batch
    (``--repeat_aug``) the rate follows its videos, not its clips: K clips of one video are not K
    independent samples, and counting them set 2 x the rate of the same schedule without repeats
    (on the 16-frame bench task the runs diverged in their first epoch and never recovered).
    The epochs split 8 : 4 : 2 : 1 also where the cap makes the batches alike, so that the coarse
    shapes then take more steps than the fine ones: split by the capped batches instead (the same
    steps at every shape) the bench task's runs ended 5-6 points lower in 3 of 4 seeds (docs/benchmarks.md).
    """
    max_batch = epoch_samples // max(1, min_steps) if epoch_samples else batch * 32
    full = (Grid(batch),)
    steps = sorted({m for m in milestones if 1 <= m < n_epochs})  # the rate drops after epoch m: m + 1 is decayed
    if steps:
        stage_starts, final = [1] + [m + 1 for m in steps[:-1]], steps[-1] + 1
    else:
        stage_starts, final = [1], n_epochs + 1 - math.ceil(FINAL_SHARE * n_epochs)
        final = max(final, 2)  # a one-epoch run is one (short) cycle
    bounds = stage_starts + [final]
    stages: List[Stage] = []
    shapes = LONG_CYCLE if long else ((1.0, 1.0),)
    for start, end in zip(bounds[:-1], bounds[1:]):
        for (a, b), (t, s) in zip_runs(split_epochs(start, end - 1, [batch_factor(t, s) for t, s in shapes]), shapes):
            stages.append(Stage(a, b, grids(frames, size, t_stride, batch, t, s, short, max_batch, repeat)))
    if final <= n_epochs:
        stages.append(Stage(final, n_epochs, full))
    return stages


def zip_runs(runs: List[Tuple[int, int]], shapes: Sequence[Tuple[float, float]]) -> List[tuple]:
    """Runs of epochs paired with the long cycle's shapes; with fewer runs than shapes, the finest shapes."""
    return list(zip(runs, shapes[len(shapes) - len(runs):]))


def stage_of(stages: Sequence[Stage], epoch: int) -> Stage:
    """The stage that holds ``epoch``."""
    for stage in stages:
        if stage.first <= epoch <= stage.last:
            return stage
    raise ValueError(f'epoch {epoch} is outside the schedule (epochs {stages[0].first}-{stages[-1].last})')


def smallest_shapes(stages: Sequence[Stage], frames: int, size: int) -> List[Tuple[int, int]]:
    """(frames, side) of the schedule's clips with the fewest frames and with the smallest side."""
    shapes = [(g.shape or (frames, size))[:2] for st in stages for g in st.cycle]
    return sorted({min(shapes), min(shapes, key=lambda x: (x[1], x[0]))})


def table(stages: Sequence[Stage], full: Shape, learning_rate: float) -> str:
    """The schedule as printed at the start: epochs, then each grid's batch, frames, side, stride and learning rate."""
    lines = ['multigrid schedule (per-rank batch x frames x side, temporal stride; learning rate before the '
             'schedule\'s own decay):', '  epochs  | grids, iteration by iteration']
    for st in stages:
        cells = []
        for g in st.cycle:
            f, s, stride = g.shape or full
            cells.append(f'{g.batch} x {f} x {s}² /{stride} lr {learning_rate * g.lr_factor:.4g}')
        lines.append(f'  {st.first:>3}-{st.last:<4}| ' + ', '.join(cells))
    return '\n'.join(lines)


def multigrid_schedule(opt: Namespace, epoch_videos: int, per_rank_batch: int, model_options: Mapping[str, Any],
                       say: bool = True, bn_clips: int = 0) -> List[Stage]:
    """``--multigrid``'s schedule for the options, a rank's videos per epoch and batch of clips; printed (``say``)
    with the ``bn_clips`` that re-estimate BatchNorm after a coarse epoch.

    A rank's epoch holds ``--repeat_aug`` clips of each of its videos. A model that cannot take its
    coarsest clips is a UserError naming the shape."""
    stages = schedule(opt.n_epochs, opt.multistep_milestones if opt.lr_scheduler == 'multistep' else [],
                      opt.sample_duration, opt.sample_size, opt.sample_t_stride, per_rank_batch,
                      long=opt.multigrid in ('both', 'long'), short=opt.multigrid in ('both', 'short'),
                      epoch_samples=epoch_videos * opt.repeat_aug, min_steps=opt.multigrid_min_steps,
                      repeat=opt.repeat_aug)
    problem = shape_problem(dict(model_options), smallest_shapes(stages, opt.sample_duration, opt.sample_size))
    if problem:
        raise UserError(f"--multigrid: --model {model_options['model']} cannot take the schedule's {problem}")
    if say:
        print(table(stages, (opt.sample_duration, opt.sample_size, opt.sample_t_stride), opt.learning_rate))
        print(f'  BatchNorm after a coarse epoch: re-estimated on {bn_clips} full-shape training clips (batches of '
              f'{per_rank_batch})' if bn_clips else
              '  BatchNorm after a coarse epoch: kept (--multigrid_bn_batches 0); the final stage sets it')
    return stages


@dataclass
class Batching:
    """How a run's training epochs are batched: ``batch`` clips per rank, ``repeat`` clips per video
    (``--repeat_aug``), and the grids of ``stages`` where ``--multigrid`` gives them."""
    batch: int
    repeat: int = 1
    stages: List[Stage] = field(default_factory=list)

    @property
    def videos(self) -> int:
        """Videos per batch at the options' shape."""
        return max(1, self.batch // self.repeat)

    def cycle(self, epoch: int) -> List[Grid]:
        """The grids of the epoch's batches, in turn."""
        return list(stage_of(self.stages, epoch).cycle) if self.stages else [Grid(self.batch)]

    def batches(self, epoch: int) -> List[Tuple[int, Optional[Shape]]]:
        """(videos, clip shape) of the epoch's batches, in turn: a grid's clips / ``repeat`` videos."""
        return [(max(1, g.batch // self.repeat), g.shape) for g in self.cycle(epoch)]

    def batches_in(self, epoch: int, n: int, world: int) -> int:
        """A rank's batches in ``epoch`` of ``n`` videos over ``world`` ranks."""
        sizes = [videos for videos, _ in self.batches(epoch)]
        return count_batches(epoch_length(n, world, sizes=sizes), sizes)

    def iterations_before(self, epoch: int, n: int, world: int) -> int:
        """A rank's batches in the epochs before ``epoch``."""
        if not self.stages:
            return (epoch - 1) * self.batches_in(1, n, world)
        return sum(self.batches_in(e, n, world) for e in range(1, epoch))


def calibration_videos(batches: Union[int, str], per_rank_batch: int, repeat: int = 1) -> int:
    """A rank's videos for the BatchNorm re-estimation: ``--multigrid_bn_batches`` batches of ``per_rank_batch``
    clips (``auto``: the batches that hold ``BN_CLIPS``), ``repeat`` clips (``--repeat_aug``) per video."""
    n = math.ceil(BN_CLIPS / per_rank_batch) if batches == 'auto' else int(batches)
    return math.ceil(n * per_rank_batch / repeat)


def calibration_items(n: int, seed: int, videos: int, rank: int, world: int, contiguous: bool = False
                      ) -> List[Tuple[int, int]]:
    """This rank's ``videos`` training items (a share of ``videos`` x ``world``) for the BatchNorm recalibration
    after a coarse epoch (``--multigrid_bn_batches``): the same videos and draws every epoch. ``contiguous``
    (shards): consecutive samples from a seeded place, so that they are read from a shard or two, not all."""
    g = torch.Generator().manual_seed(seed)
    if contiguous:
        start = int(torch.randint(max(1, n), (1,), generator=g))
        order = [(start + i) % n for i in range(min(n, videos * world))]
    else:
        order = torch.randperm(n, generator=g)[:min(n, videos * world)].tolist()
    return [(i, sample_seed(seed, 0, i)) for i in order[rank::world]]
