"""Temporal transforms: the original's clip placement, with its bugs fixed."""
import random

import pytest

import temporal_transforms as tt


def r(a, b):
    return list(range(a, b + 1))


def test_loop_padding_repeats_cyclically_without_mutating():
    src = [1, 2, 3]
    assert tt.LoopPadding(8)(src) == [1, 2, 3, 1, 2, 3, 1, 2] and src == [1, 2, 3]
    assert tt.LoopPadding(2)(src) == [1, 2, 3]
    assert tt.LoopPadding(4)([]) == []


def test_begin_and_center_crop():
    assert tt.TemporalBeginCrop(4)(r(1, 10)) == [1, 2, 3, 4]
    assert tt.TemporalCenterCrop(4)(r(1, 10)) == [4, 5, 6, 7]
    assert tt.TemporalCenterCrop(16)(r(1, 5)) == (r(1, 5) * 4)[:16]
    assert tt.TemporalCenterCrop(4)([7]) == [7, 7, 7, 7]  # 1-frame video


def test_random_crop_reaches_every_window_including_the_last():
    rng = random.Random(0)
    starts = {tt.TemporalRandomCrop(4)(r(1, 10), rng)[0] for _ in range(500)}
    assert starts == set(range(1, 8))  # the original never picked 7
    assert tt.TemporalRandomCrop(10)(r(1, 10), rng) == r(1, 10)  # exact fit
    assert tt.TemporalRandomCrop(4)([3], rng) == [3, 3, 3, 3]


def test_even_crop_matches_the_original_placement():
    clips = tt.TemporalEvenCrop(16, 3)(r(1, 100))
    assert [c[0] for c in clips] == [1, 43, 85] and all(len(c) == 16 for c in clips)
    assert [c[0] for c in tt.TemporalEvenCrop(16, 3)(r(1, 20))] == [1, 3, 5]
    short = tt.TemporalEvenCrop(16, 3)(r(1, 10))
    assert short == [(r(1, 10) * 2)[:16]]  # one looped clip, as in the original
    # exact fit: the original's step of 1 gives a second, looped clip
    assert tt.TemporalEvenCrop(16, 3)(r(1, 16)) == [r(1, 16), r(2, 16) + [2]]
    assert tt.TemporalEvenCrop(4, 2)([5]) == [[5, 5, 5, 5]]
    assert tt.TemporalEvenCrop(4, 2)([]) == []


def test_even_crop_with_one_sample_takes_the_centre():
    assert tt.TemporalEvenCrop(4, 1)(r(1, 10)) == [[4, 5, 6, 7]]  # the original divided by zero
    assert tt.TemporalEvenCrop(16, 1)(r(1, 5)) == [(r(1, 5) * 4)[:16]]
    with pytest.raises(ValueError):
        tt.TemporalEvenCrop(4, 0)


def test_sliding_window():
    assert tt.SlidingWindow(16, 16)(r(1, 40)) == [r(1, 16), r(17, 32), (r(33, 40) * 2)[:16]]
    windows = tt.SlidingWindow(16, 8)(r(1, 40))
    assert [w[0] for w in windows] == [1, 9, 17, 25, 33] and windows[-1] == (r(33, 40) * 2)[:16]
    assert tt.SlidingWindow(16, 16)(r(1, 48)) == [r(1, 16), r(17, 32), r(33, 48)]
    assert tt.SlidingWindow(16, 0)(r(1, 32)) == [r(1, 16), r(17, 32)]
    assert tt.SlidingWindow(4)([9]) == [[9, 9, 9, 9]]


def test_subsampling_is_honoured_in_validation_and_inference():
    """The original rebuilt contiguous ranges after subsampling (its issue #254)."""
    even = tt.TemporalCompose([tt.TemporalSubsampling(2), tt.TemporalEvenCrop(4, 2)])
    assert even(r(1, 20)) == [[1, 3, 5, 7], [11, 13, 15, 17]]
    window = tt.TemporalCompose([tt.TemporalSubsampling(2), tt.SlidingWindow(4, 4)])
    assert window(r(1, 16)) == [[1, 3, 5, 7], [9, 11, 13, 15]]
    train = tt.TemporalCompose([tt.TemporalSubsampling(3), tt.TemporalRandomCrop(4)])
    clip = train(r(1, 30), random.Random(1))
    assert len(clip) == 4 and all(b - a == 3 for a, b in zip(clip, clip[1:]))
    with pytest.raises(ValueError):
        tt.TemporalSubsampling(0)


def test_compose_applies_later_transforms_per_clip():
    compose = tt.TemporalCompose([tt.TemporalEvenCrop(4, 2), tt.TemporalSubsampling(2)])
    assert compose(r(1, 10)) == [[1, 3], [6, 8]]


def test_compose_hands_its_generator_only_to_random_transforms():
    train = tt.TemporalCompose([tt.TemporalSubsampling(2), tt.TemporalRandomCrop(4)])
    assert train.needs_rng and not tt.TemporalCompose([tt.TemporalCenterCrop(4)]).needs_rng
    random.seed(0)
    state = random.getstate()
    clips = [train(r(1, 40), random.Random(seed)) for seed in range(20)]
    assert random.getstate() == state and len({c[0] for c in clips}) > 1
    assert clips[3] == train(r(1, 40), random.Random(3))
    assert tt.TemporalCompose([tt.TemporalCenterCrop(4)])(r(1, 10)) == [4, 5, 6, 7]
    with pytest.raises(TypeError, match='TemporalRandomCrop draws random parameters'):
        train(r(1, 40))
