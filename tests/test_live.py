"""inference.py --live: a stream scored as it arrives, one JSON line per window, drops counted, clean ends."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conversion.writers import encode_video
from preprocessing import Preprocessing
from streams.live import LiveReader
from streams.windows import ClipWindows
from tests.video_fixtures import moving_frames, write_video

ROOT = Path(__file__).resolve().parents[1]


def transport_stream(path, n):
    """An MPEG-TS of ``n`` frames at 25 fps: what another program would pipe in."""
    encode_video(path, moving_frames(n, 36, 48), 'libx264', 25, {'g': '8'}, container_format='mpegts')
    return path


def live(checkpoint, source, *extra, stdin=None, timeout=60):
    cmd = [sys.executable, str(ROOT / 'inference.py'), '--live', source, '--resume_path', str(checkpoint),
           '--no_cuda', '--output_topk', '2', *extra]
    return subprocess.run(cmd, stdin=stdin, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_a_piped_stream_gives_windows_in_time_order_and_one_that_ends_mid_window(tmp_path, checkpoint):
    ts = transport_stream(tmp_path / 'cam.ts', 44)  # 5 windows of 8 frames and 4 frames more
    writer = subprocess.Popen(['cat', str(ts)], stdout=subprocess.PIPE)
    done = live(checkpoint, '-', '--live_smooth', '2', stdin=writer.stdout)
    writer.wait()
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    summary = done.stderr.strip().splitlines()[-1]
    dropped = int(summary.split(' dropped')[0].rsplit(' ', 1)[1])
    assert summary.startswith(f'live: {len(lines)} windows, {dropped} dropped') and len(lines) + dropped == 6
    assert [w['end'] for w in lines] == sorted(w['end'] for w in lines) and all(w['t'] == w['end'] for w in lines)
    assert lines[-1]['end'] == pytest.approx(44 / 25) and lines[-1]['start'] == pytest.approx(40 / 25)  # padded
    assert all(0 <= w['start'] < w['end'] <= 44 / 25 + 1e-6 and w['latency_ms'] >= 0 for w in lines)
    assert all(len(w['top']) == 2 and w['top'][0][1] >= w['top'][1][1] for w in lines)


def test_a_file_plays_at_its_own_rate_and_annotates(tmp_path, checkpoint):
    video = write_video(tmp_path / 'clip.mp4', moving_frames(24, 36, 48))  # 0.96 s
    done = live(checkpoint, str(video), '--annotate', str(tmp_path / 'out.mp4'))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [round(w['end'], 2) for w in lines] == [0.32, 0.64, 0.96]  # at its own rate: nothing dropped
    assert '24 frames annotated' in done.stderr and (tmp_path / 'out.mp4').stat().st_size > 0


def test_a_stream_that_stalls_ends_cleanly_with_what_it_had(tmp_path, checkpoint):
    ts = tmp_path / 'cam.ts'  # 120 KB: more than the 64 KB a live source is probed on before its first frame
    encode_video(ts, moving_frames(150, 120, 160), 'libx264', 25, {'g': '8'}, container_format='mpegts')
    stall = ('import sys, time; data = open(sys.argv[1], "rb").read(); sys.stdout.buffer.write(data[:len(data) * 4 // 5]);'
             ' sys.stdout.flush(); time.sleep(60)')  # the sender goes quiet and keeps the pipe open
    writer = subprocess.Popen([sys.executable, '-c', stall, str(ts)], stdout=subprocess.PIPE)
    try:
        done = live(checkpoint, '-', '--live_timeout', '2', stdin=writer.stdout)
    finally:
        writer.kill()
    assert done.returncode == 0, done.stderr
    assert 'no frame for 2 s: the stream stalled' in done.stderr.splitlines()[-1]
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines and lines[-1]['end'] < 150 / 25  # what had arrived, not the whole stream


def test_a_source_that_cannot_be_opened_is_one_line(tmp_path, checkpoint):
    done = live(checkpoint, str(tmp_path / 'missing.mp4'))
    errors = [line for line in done.stderr.splitlines() if not line.startswith('math: ')]
    assert done.returncode == 2 and errors == [f'error: {tmp_path / "missing.mp4"}: cannot open: No such file or directory']
    refused = live(checkpoint, 'rtsp://127.0.0.1:9/cam', '--live_timeout', '2')
    assert refused.returncode == 2 and 'error: rtsp://127.0.0.1:9/cam: cannot open: ' in refused.stderr


def test_windows_that_complete_while_the_model_is_busy_are_dropped_and_counted(tmp_path):
    video = write_video(tmp_path / 'clip.mp4', moving_frames(40, 36, 48))
    prep = Preprocessing(sample_size=32, sample_duration=4)
    spatial = lambda clip: clip  # noqa: E731
    reader = LiveReader(str(video), ClipWindows(spatial, prep.sample_duration), paced=False, timeout=5)
    reader.start()
    reader.join()  # the model never took one: each window replaced the one before
    last = reader.take(0)
    assert reader.drops == 9 and last.window.start == 36 and reader.take(0) is None


def test_ctrl_c_ends_with_the_summary_and_exit_0(tmp_path, checkpoint):
    import signal
    video = write_video(tmp_path / 'long.mp4', moving_frames(250, 36, 48))  # 10 s at its own rate
    cmd = [sys.executable, str(ROOT / 'inference.py'), '--live', str(video), '--resume_path', str(checkpoint),
           '--no_cuda']
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    first = json.loads(proc.stdout.readline())  # a window printed: the stream is playing
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and first['end'] == pytest.approx(0.32)
    assert err.strip().splitlines()[-1].endswith(f'stopped by signal {int(signal.SIGINT)}')
    assert len(out.splitlines()) + 1 < 250 // 8  # it stopped before the end


def test_flags_for_files_are_refused_with_live_in_one_line(tmp_path, checkpoint):
    done = live(checkpoint, 'x.mp4', '--output', str(tmp_path / 'out.json'))
    assert done.returncode == 2 and done.stderr.strip().endswith(
        'error: --live prints one JSON line per window: --output is for video files')


def test_a_camera_is_opened_with_v4l2_and_a_url_with_the_live_probe(monkeypatch):
    import os
    import stat

    from datasets.formats import live_sources, video_files
    opened = []

    class Container:
        format = type('F', (), {'name': 'video4linux2,v4l2'})()

        def close(self):
            pass

    monkeypatch.setattr(video_files.av, 'open', lambda source, **kw: opened.append((source, kw)) or Container())
    real_stat = os.stat
    monkeypatch.setattr(video_files.os, 'stat', lambda p, *a, **k: os.stat_result((stat.S_IFCHR | 0o660,) + (0,) * 9)
                        if str(p) == '/dev/video0' else real_stat(p, *a, **k))
    live_sources.open_stream('/dev/video0', timeout=3)
    live_sources.open_stream('rtsp://127.0.0.1:8554/cam', timeout=3)
    live_sources.open_stream('-', timeout=3)
    assert [(s, kw.get('format'), kw['timeout'], kw['options']) for s, kw in opened] == [
        ('/dev/video0', 'v4l2', (3, 3), live_sources.LIVE_PROBE),
        ('rtsp://127.0.0.1:8554/cam', None, (3, 3), live_sources.LIVE_PROBE),
        ('pipe:0', None, (3, 3), live_sources.LIVE_PROBE)]


def test_live_smooth_ranks_the_mean_of_the_last_n_windows(tmp_path, checkpoint):
    video = write_video(tmp_path / 'clip.mp4', moving_frames(24, 36, 48))  # 3 windows
    runs = {}
    for n in (1, 2):
        done = live(checkpoint, str(video), '--live_smooth', str(n), '--output_topk', '0', '--precision', 'fp32')
        assert done.returncode == 0, done.stderr
        runs[n] = [dict(json.loads(line)['top']) for line in done.stdout.splitlines()]
    assert len(runs[1]) == len(runs[2]) == 3 and runs[2][0] == runs[1][0]
    for k in (1, 2):
        mean = {label: (runs[1][k - 1][label] + runs[1][k][label]) / 2 for label in runs[1][k]}
        assert runs[2][k] == pytest.approx(mean, abs=1e-4)
