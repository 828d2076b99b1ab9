"""Per-window scores in time order made labelled segments that cover the video without overlap.

Each window owns the time from the midpoint between its centre and its neighbour's centre to
the next such midpoint (the first from the video's start, the last to its end); consecutive
windows whose top label is the same make a segment. ``smooth`` averages each window's scores
with its neighbours' first (a centred moving average of that many windows); a segment shorter
than ``min_length`` seconds takes the label of the neighbour that scores higher over its
windows, until none is shorter (or one is left). A segment's score is the mean, over its
windows, of its label's (smoothed) score.
"""
from dataclasses import dataclass
from typing import List, Sequence

import numpy as np


@dataclass
class Segment:
    """Seconds [start, end) under one label; ``first`` and ``last`` are its windows (inclusive)."""
    start: float
    end: float
    label: int
    score: float
    first: int
    last: int


def smoothed(scores: np.ndarray, n: int) -> np.ndarray:
    """W x C scores averaged over a centred window of ``n`` windows (fewer at the ends)."""
    if n <= 1 or len(scores) < 2:
        return scores
    sums = np.concatenate([np.zeros((1, scores.shape[1])), np.cumsum(scores, axis=0)])
    lo = np.clip(np.arange(len(scores)) - (n - 1) // 2, 0, len(scores))
    hi = np.clip(np.arange(len(scores)) + n // 2 + 1, 0, len(scores))
    return (sums[hi] - sums[lo]) / (hi - lo)[:, None]


def cells(starts: Sequence[float], ends: Sequence[float], duration: float) -> List[float]:
    """The W + 1 boundaries of the windows' shares of [0, duration]: midpoints between their centres."""
    centres = [(a + b) / 2 for a, b in zip(starts, ends)]
    inner = [(a + b) / 2 for a, b in zip(centres, centres[1:])]
    return [0.0] + inner + [max(duration, inner[-1] if inner else 0.0)]


def _runs(labels: np.ndarray) -> List[tuple]:
    """(first, last, label) of each run of equal labels."""
    runs, first = [], 0
    for k in range(1, len(labels) + 1):
        if k == len(labels) or labels[k] != labels[first]:
            runs.append((first, k - 1, int(labels[first])))
            first = k
    return runs


def segments(scores: np.ndarray, starts: Sequence[float], ends: Sequence[float], duration: float,
             smooth: int = 1, min_length: float = 0.0) -> List[Segment]:
    """The segments of W windows' W x C ``scores`` (windows in time order, seconds [start, end))."""
    if len(scores) == 0:
        return []
    probs = smoothed(np.asarray(scores, dtype=np.float64), smooth)
    bounds = cells(starts, ends, duration)
    labels = probs.argmax(axis=1)
    while True:
        runs = _runs(labels)
        short = [r for r in runs if bounds[r[1] + 1] - bounds[r[0]] < min_length]
        if not short or len(runs) == 1:
            break
        first, last, _ = min(short, key=lambda r: (bounds[r[1] + 1] - bounds[r[0]], r[0]))
        k = runs.index(next(r for r in runs if r[0] == first))
        neighbours = [runs[j][2] for j in (k - 1, k + 1) if 0 <= j < len(runs)]
        labels[first:last + 1] = max(neighbours, key=lambda c: probs[first:last + 1, c].mean())
    return [Segment(bounds[a], bounds[b + 1], c, float(probs[a:b + 1, c].mean()), a, b) for a, b, c in _runs(labels)]
