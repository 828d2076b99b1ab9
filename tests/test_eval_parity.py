"""Validation and inference figures are those of one process whatever the number of processes.

A dataset's clips are split over simulated ranks in several ways (a video's segments on
different ranks among them); merging the ranks' dicts must give exactly the one-process
result: the same video sums and metrics, the same results JSON, byte for byte. One test runs
the gathers in two real processes (gloo).
"""
import json
import random
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence, Tuple

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn

from inference import ClipScores, gather_clips, infer, merge_clips, results_json, video_scores
from validation import (VideoScores, _score_batch, gather_videos, merge_videos, multilabel_metrics,
                        video_metrics)

N_CLASSES = 7
NAMES = [f'class{k}' for k in range(N_CLASSES)]
Item = Tuple[str, Tuple[int, int], torch.Tensor, Any]  # (video id, segment, logits, label)


def dataset(multilabel: bool = False) -> List[Item]:
    """ActivityNet-like entries in annotation order: several segments per video, some repeated or differently labelled."""
    g = torch.Generator().manual_seed(3)
    items: List[Item] = []
    for v in range(9):
        n_segments = 1 + v % 4
        for s in range(n_segments):
            segment = (16 * s, 16 * s + 16)
            if multilabel:
                label: Any = (v % N_CLASSES, (v + 2 + s % 2) % N_CLASSES)
            else:
                label = (v + (s == 2 and v == 6)) % N_CLASSES  # v6: its third segment has another label
            items.append((f'v{v}', segment, torch.randn(N_CLASSES, generator=g) * 3, label))
    items.append(('v3', (0, 16), torch.randn(N_CLASSES, generator=g) * 3, items[6][3]))  # v3's first segment twice
    random.Random(1).shuffle(items)
    return items


def splits(n: int) -> Dict[str, List[List[int]]]:
    """Ways to share ``n`` entries among ranks, as lists of indices per rank, each rank in dataset order."""
    mask = [random.Random(7).random() < 0.5 for _ in range(n)]
    return {'strided over 2': [list(range(r, n, 2)) for r in range(2)],
            'strided over 3': [list(range(r, n, 3)) for r in range(3)],
            'halves': [list(range(n // 2)), list(range(n // 2, n))],
            'at random': [[i for i in range(n) if mask[i]], [i for i in range(n) if not mask[i]]],
            'one rank empty': [[], list(range(n))]}


def batches(items: Sequence[Item], multilabel: bool, size: int = 3) -> List[Dict[str, Any]]:
    """The items as the loaders batch them: logits as clips (the model is the identity)."""
    out = []
    for start in range(0, len(items), size):
        chunk = items[start:start + size]
        if multilabel:
            label = torch.zeros(len(chunk), N_CLASSES)
            for row, item in enumerate(chunk):
                label[row, list(item[3])] = 1
        else:
            label = torch.tensor([item[3] for item in chunk])
        out.append({'clip': torch.stack([item[2] for item in chunk]), 'label': label,
                    'video_id': [item[0] for item in chunk], 'segment': [item[1] for item in chunk],
                    'bad_frames': 0, 'failed': []})
    return out


def validation_videos(items: Sequence[Item], multilabel: bool = False) -> VideoScores:
    """What ``val_epoch`` accumulates over ``items``."""
    videos: VideoScores = {}
    criterion = nn.BCEWithLogitsLoss() if multilabel else nn.CrossEntropyLoss()
    for batch in batches(items, multilabel):
        _score_batch(batch, nn.Identity(), criterion, torch.device('cpu'), _same, None, False, videos, (0.0, 0, 0))
    return videos


def inference_clips(items: Sequence[Item]) -> ClipScores:
    """What ``infer`` returns for ``items``."""
    return infer(batches(items, False), nn.Identity(), torch.device('cpu'), _same, show_progress=False)[0]


def _same(x: torch.Tensor) -> torch.Tensor:
    return x


def parts_of(items: Sequence[Item], ranks: List[List[int]], make: Callable) -> List[Any]:
    return [make([items[i] for i in indices]) for indices in ranks]


def assert_same_videos(merged: VideoScores, one: VideoScores) -> None:
    assert list(merged) == list(one)
    for vid in one:
        assert merged[vid][1:] == one[vid][1:], vid
        assert merged[vid][0].dtype == torch.float64
        assert torch.allclose(merged[vid][0], one[vid][0], rtol=0, atol=1e-12), vid


def assert_same_clips(merged: ClipScores, one: ClipScores) -> None:
    assert list(merged) == list(one)
    for vid in one:
        assert [s for s, _ in merged[vid]] == [s for s, _ in one[vid]], vid
        assert all(torch.equal(a, b) for (_, a), (_, b) in zip(merged[vid], one[vid])), vid


@pytest.mark.parametrize('split', list(splits(1)))
def test_validation_video_figures_do_not_depend_on_the_split(split):
    items = dataset()
    one = gather_videos(validation_videos(items))  # one process: its own dict, merged alike
    assert sum(count for _, count, _ in one.values()) == len(items) and one['v3'][1] == 5
    assert one['v6'][2] == 0  # segments labelled 6 and 0: the smaller, whichever clip came first
    parts = parts_of(items, splits(len(items))[split], validation_videos)
    merged = merge_videos(parts)
    assert_same_videos(merged, one)
    assert video_metrics(merged) == video_metrics(one)
    if split == 'strided over 2':  # the case dict.update got wrong: v3's segments on both ranks
        assert {**parts[0], **parts[1]}['v3'][1] < one['v3'][1]


@pytest.mark.parametrize('split', ['strided over 2', 'at random'])
def test_multilabel_figures_do_not_depend_on_the_split(split):
    items = dataset(multilabel=True)
    one = gather_videos(validation_videos(items, multilabel=True))
    merged = merge_videos(parts_of(items, splits(len(items))[split], lambda part: validation_videos(part, True)))
    assert_same_videos(merged, one)
    m = multilabel_metrics(merged)
    assert m == multilabel_metrics(one) and m['videos'] == 9 and 0 < m['mAP'] <= 1


def test_float64_sums_still_give_the_metrics_of_float32_ones():
    videos = gather_videos(validation_videos(dataset()))
    as_float32 = {vid: (total.float(), n, label) for vid, (total, n, label) in videos.items()}
    assert video_metrics(videos) == video_metrics(as_float32)
    labelled = {vid: (total, n, (label,)) for vid, (total, n, label) in videos.items()}
    assert multilabel_metrics(labelled) == multilabel_metrics({vid: (t.float(), n, label)
                                                                for vid, (t, n, label) in labelled.items()})


@pytest.mark.parametrize('split', list(splits(1)))
def test_inference_results_do_not_depend_on_the_split(split):
    items = dataset()
    one = gather_clips(inference_clips(items))
    assert len(one['v3']) == 5 and [s for s, _ in one['v3']][:2] == [(0, 16), (0, 16)]
    merged = merge_clips(parts_of(items, splits(len(items))[split], inference_clips))
    assert_same_clips(merged, one)
    for average, topk in ((True, 5), (True, 0), (False, 3)):
        assert json.dumps(results_json(merged, NAMES, topk, average)) == json.dumps(results_json(one, NAMES, topk,
                                                                                                  average))
    means, expected = video_scores(merged), video_scores(one)
    assert all(torch.equal(means[vid], expected[vid]) for vid in expected)


def test_the_mean_over_clips_does_not_depend_on_their_order():
    clips = inference_clips(dataset())
    backwards = {vid: clips[vid][::-1] for vid in reversed(list(clips))}
    means, reversed_means = video_scores(clips), video_scores(backwards)
    assert all(torch.equal(means[vid], reversed_means[vid]) for vid in clips)
    assert json.dumps(results_json(gather_clips(clips), NAMES, 0, False)) == \
        json.dumps(results_json(gather_clips(backwards), NAMES, 0, False))


def _gather_on_rank(rank: int, init: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=init, rank=rank, world_size=2)
    try:
        items = dataset()
        mine = [items[i] for i in range(rank, len(items), 2)]  # main's validation and inference shards
        torch.save({'videos': gather_videos(validation_videos(mine)), 'clips': gather_clips(inference_clips(mine))},
                   Path(out) / f'rank{rank}.pt')
    finally:
        dist.destroy_process_group()


def test_two_processes_gather_what_one_process_computes(tmp_path):
    mp.spawn(_gather_on_rank, args=(f'file://{tmp_path / "init"}', str(tmp_path)), nprocs=2, join=True)
    items = dataset()
    one_videos, one_clips = gather_videos(validation_videos(items)), gather_clips(inference_clips(items))
    for rank in range(2):
        got = torch.load(tmp_path / f'rank{rank}.pt', weights_only=False)
        assert_same_videos(got['videos'], one_videos)
        assert video_metrics(got['videos']) == video_metrics(one_videos)
        assert_same_clips(got['clips'], one_clips)
        assert json.dumps(results_json(got['clips'], NAMES)) == json.dumps(results_json(one_clips, NAMES))
