"""inference.py --timeline: windows streamed over a whole video, in time order, merged into segments."""
import itertools
import json

import numpy as np
import pytest
import torch
import torch.nn as nn

import inference
import temporal_transforms as tt
from preprocessing import Preprocessing, normalization
from streams import frames as stream_frames
from streams.segments import segments
from streams.timeline import video_timeline
from streams.windows import ClipWindows
from tests.video_fixtures import moving_frames, write_video

NAMES = ['cook', 'dance', 'swim']


@pytest.mark.parametrize('duration,t_stride,stride', [(1, 1, None), (4, 1, None), (4, 2, None), (4, 2, 3),
                                                      (8, 1, 1), (8, 3, 20), (4, 1, 9)])
def test_windows_are_the_sliding_window_of_inference_holding_one_clip_at_most(duration, t_stride, stride):
    for n in (1, 3, 7, 8, 16, 17, 33):
        temporal = tt.TemporalCompose(([tt.TemporalSubsampling(t_stride)] if t_stride > 1 else []) +
                                      [tt.SlidingWindow(duration, max(1, (stride or duration * t_stride) // t_stride))])
        windows = ClipWindows(lambda clip: clip, duration, t_stride, stride)
        got = []
        for i in range(n):
            got += windows.push(i, i / 25, torch.full((1, 1, 1, 1), float(i)))
        got += [w for w in [windows.finish()] if w is not None]
        assert [w.clip.flatten().long().tolist() for w in got] == temporal(list(range(n))), n
        assert windows.peak <= duration  # frames held at once: never more than one clip's
        assert [w.start for w in got] == sorted(w.start for w in got)
        if (stride or duration * t_stride) <= duration * t_stride:  # no gaps between windows: they cover it all
            assert got[-1].end >= n


def test_segments_cover_the_video_without_overlap_and_follow_smoothing_and_minimum_length():
    scores = np.array([[.9, .1], [.8, .2], [.4, .6], [.9, .1], [.1, .9], [.2, .8]])
    starts, ends = [0, 2, 4, 6, 8, 10], [2, 4, 6, 8, 10, 11]
    plain = segments(scores, starts, ends, 11.0)
    assert [(s.start, s.end, s.label) for s in plain] == [(0, 4, 0), (4, 6, 1), (6, 8, 0), (8, 11, 1)]
    assert plain[0].score == pytest.approx(0.85)
    longer = segments(scores, starts, ends, 11.0, min_length=3)  # the 2-second blip takes its neighbours' label
    assert [(s.start, s.end, s.label) for s in longer] == [(0, 8, 0), (8, 11, 1)]
    smooth = segments(scores, starts, ends, 11.0, smooth=3)
    assert [(s.start, s.end, s.label) for s in smooth] == [(0, 6, 0), (6, 11, 1)]
    overlapping = segments(scores, [0, 1, 2, 3, 4, 5], [4, 5, 6, 7, 8, 9], 9.0)  # stride 1, windows of 4
    assert overlapping[0].start == 0 and overlapping[-1].end == 9
    assert all(a.end == b.start for a, b in zip(overlapping, overlapping[1:]))


class Colour(nn.Module):
    """Class 0 for reddish clips, 1 for bluish ones: a model whose right answer is known."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        red, blue = x[:, 0].mean((1, 2, 3)), x[:, 2].mean((1, 2, 3))
        return torch.stack([red - blue, blue - red, torch.zeros_like(red)], 1) * 20


def solid(n, colour, h=36, w=48):
    return [np.full((h, w, 3), colour, np.uint8) for _ in range(n)]


PREP = Preprocessing(sample_size=32, sample_duration=4, sample_t_stride=2, mean=(0.5,) * 3, std=(0.5,) * 3)


def test_a_cut_between_two_classes_gives_a_boundary_within_one_stride_and_the_right_labels(tmp_path):
    video = write_video(tmp_path / 'cut.mp4', solid(44, (220, 30, 30)) + solid(36, (30, 30, 220)))  # cut at 1.76 s
    for stride in (None, 4):
        timeline = video_timeline(video, Colour(), PREP, torch.device('cpu'), normalization(PREP), stride=stride)
        step = (stride or 8) / 25
        assert [s.label for s in timeline.segments] == [0, 1]
        assert abs(timeline.segments[0].end - 44 / 25) <= step
        assert timeline.segments[0].start == 0 and timeline.segments[-1].end == pytest.approx(80 / 25)
        assert timeline.starts == sorted(timeline.starts) and timeline.duration == pytest.approx(80 / 25)


def test_three_windows_and_a_video_shorter_than_one_clip(tmp_path):
    three = video_timeline(write_video(tmp_path / 'three.mp4', moving_frames(24, 36, 48)), Colour(), PREP,
                           torch.device('cpu'), normalization(PREP))
    assert len(three.starts) == 3 and three.first_frames == [0, 8, 16] and three.end_frames == [8, 16, 24]
    assert three.starts == pytest.approx([0, 0.32, 0.64]) and three.ends == pytest.approx([0.32, 0.64, 0.96])
    short = video_timeline(write_video(tmp_path / 'short.mp4', solid(5, (30, 30, 220))), Colour(), PREP,
                           torch.device('cpu'), normalization(PREP))
    assert len(short.starts) == 1 and short.end_frames == [5] and short.sampled == [(0, 5)]
    assert [(s.start, s.end, s.label) for s in short.segments] == [(0.0, pytest.approx(0.2), 1)]


def test_memory_stays_flat_on_a_long_video(tmp_path, monkeypatch):
    alive = {'now': 0, 'most': 0}

    class Counted:  # each decoded frame, counted while something holds it
        def __init__(self, clip):
            self.clip = clip
            alive['now'] += 1
            alive['most'] = max(alive['most'], alive['now'])

        def __del__(self):
            alive['now'] -= 1

    real = stream_frames.as_clip
    monkeypatch.setattr(stream_frames, 'as_clip', lambda frame: Counted(real(frame)))
    monkeypatch.setattr('streams.windows.frame_view', lambda spatial, counted: torch.zeros(3, 1, 32, 32))
    video = write_video(tmp_path / 'long.mp4', list(itertools.islice(itertools.cycle(moving_frames(20, 36, 48)), 600)))
    timeline = video_timeline(video, Colour(), PREP, torch.device('cpu'), normalization(PREP), batch_size=4)
    assert timeline.frames == 600 and len(timeline.starts) == 75
    assert timeline.peak_frames <= PREP.sample_duration  # the window's frames
    assert alive['most'] <= 2  # decoded frames: the current one (and the one before, being released)


def test_inference_py_writes_the_timeline_and_its_windows_are_the_clips_of_the_whole_video_path(
        tmp_path, checkpoint, capsys):
    video = write_video(tmp_path / 'in' / 'v.mp4', moving_frames(50, 36, 48))
    run = [str(video), '--resume_path', str(checkpoint), '--no_cuda', '--precision', 'fp32', '--inference_no_average',
           '--output_topk', '0']
    assert inference.predict(run + ['--output', str(tmp_path / 'whole.json')]) == 0
    assert inference.predict(run + ['--output', str(tmp_path / 'streamed.json'), '--timeline', str(tmp_path / 'tl'),
                                    '--annotate', str(tmp_path / 'ann.mp4')]) == 0
    out = capsys.readouterr().out
    assert '7 windows' in out and '50 frames annotated with their segment' in out
    whole = json.loads((tmp_path / 'whole.json').read_text())['results']['v.mp4']
    streamed = json.loads((tmp_path / 'streamed.json').read_text())['results']['v.mp4']
    assert [w['segment'] for w in whole] == [w['segment'] for w in streamed]
    for a, b in zip(whole, streamed):
        assert {r['label']: r['score'] for r in a['result']} == pytest.approx(
            {r['label']: r['score'] for r in b['result']}, abs=1e-4)
    data = json.loads((tmp_path / 'tl' / 'v.timeline.json').read_text())
    assert data['video'] == str(video) and data['fps'] == 25.0 and data['duration'] == pytest.approx(2.0)
    assert data['window'] == {'frames': 8, 'stride': 8} and len(data['windows']) == 7
    assert data['windows'][0]['start'] == 0 and data['windows'][-1]['end'] == pytest.approx(2.0)
    assert set(data['windows'][0]['scores']) == set(NAMES)
    cover = data['segments']
    assert cover[0]['start'] == 0 and cover[-1]['end'] == pytest.approx(2.0)
    assert all(a['end'] == b['start'] and a['label'] != b['label'] for a, b in zip(cover, cover[1:]))
    assert (tmp_path / 'tl' / 'v.timeline.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_an_unreadable_video_is_one_line_and_the_others_go_on(tmp_path, checkpoint, capsys):
    bad = tmp_path / 'notes.mp4'
    bad.write_text('not a video')
    good = write_video(tmp_path / 'good.mp4', moving_frames(12, 36, 48))
    assert inference.predict([str(bad), str(good), '--resume_path', str(checkpoint), '--no_cuda',
                              '--timeline', str(tmp_path / 'tl')]) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith('math: ')]
    assert len(err) == 1 and err[0].startswith(f'{bad}: error: ')
    assert (tmp_path / 'tl' / 'good.timeline.json').is_file() and not (tmp_path / 'tl' / 'notes.timeline.json').exists()


def test_a_named_pipe_streams_into_a_timeline_and_a_url_is_kept_as_written(tmp_path, checkpoint, capsys):
    import os
    import subprocess

    from conversion.writers import encode_video
    ts = tmp_path / 'cam.ts'
    encode_video(ts, moving_frames(30, 36, 48), 'libx264', 25, {'g': '8'}, container_format='mpegts')
    fifo = tmp_path / 'cam.fifo'
    os.mkfifo(fifo)
    writer = subprocess.Popen(f'cat {ts} > {fifo}', shell=True)
    try:
        assert inference.predict([str(fifo), '--resume_path', str(checkpoint), '--no_cuda',
                                  '--timeline', str(tmp_path / 'tl')]) == 0, capsys.readouterr()
    finally:
        writer.wait(timeout=30)
    data = json.loads((tmp_path / 'tl' / 'cam.timeline.json').read_text())
    assert len(data['windows']) == 4 and data['duration'] == pytest.approx(30 / 25)
    with pytest.raises(SystemExit) as exited:  # the whole-video path reads a file twice: a pipe is refused
        inference.predict([str(fifo), '--resume_path', str(checkpoint)])
    assert exited.value.code == 2
    with pytest.raises(SystemExit):
        inference.predict(['rtsp://127.0.0.1:8554/cam', '--resume_path', str(checkpoint)])
    err = capsys.readouterr().err
    assert f'{fifo}: a stream can be read only once' in err and 'use --live rtsp://127.0.0.1:8554/cam,' in err


def test_non_finite_scores_write_no_timeline_and_say_so(tmp_path):
    class Broken(Colour):
        def forward(self, x):
            return super().forward(x) * float('nan')

    video = write_video(tmp_path / 'v.mp4', moving_frames(16, 36, 48))
    with pytest.raises(Exception, match=r'v.mp4: the model gave non-finite scores for 2 of 2 windows'):
        video_timeline(video, Broken(), PREP, torch.device('cpu'), normalization(PREP))


def test_flags_of_the_whole_video_path_are_refused_with_timeline_before_the_model_is_read(tmp_path, capsys):
    for flag in (['--features', str(tmp_path / 'f.hdf5')], ['--cam']):
        with pytest.raises(SystemExit) as exited:
            inference.predict(['v.mp4', '--resume_path', str(tmp_path / 'no.pth'), '--timeline', str(tmp_path), *flag])
        assert exited.value.code == 2
        assert f'--timeline streams the frames: {flag[0]} needs the whole-video path' in capsys.readouterr().err
