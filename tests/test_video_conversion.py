"""generate_video_jpgs and the conversion runner (conversion.runner): layouts, failures, resume, pool."""
import functools
import io
import os
import shutil
import subprocess
import sys
from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from conversion import runner
from conversion.sources import find_sources
from conversion.writers import write_jpgs
from tests.conversion_tree import (BAD, GOOD, LANDSCAPE, REPO, SIZE, copy_videos,  # noqa: F401
                                   frame_dir, jpg_names, jpg_run, make_video, run_main, src,
                                   temps_left)
from util_scripts import generate_video_jpgs


# ----------------------------------------------------------------------------- jpgs

def test_jpgs_one_file_per_decoded_frame_with_original_names(jpg_run):
    _, _, dst = jpg_run
    for name, (n, _) in GOOD.items():
        assert sorted(os.listdir(frame_dir(dst, name))) == jpg_names(n), name


def test_jpgs_short_side_scaled_and_aspect_kept(jpg_run):
    _, _, dst = jpg_run
    for name, (n, size) in GOOD.items():
        for jpg in frame_dir(dst, name).iterdir():
            with Image.open(jpg) as im:
                assert im.size == size, (name, jpg.name)


def test_jpgs_fixed_quality(jpg_run):
    _, _, dst = jpg_run
    buffer = io.BytesIO()
    Image.new('RGB', (8, 8)).save(buffer, format='JPEG', quality=90)
    expected = Image.open(buffer).quantization
    for name in GOOD:
        for jpg in frame_dir(dst, name).iterdir():
            with Image.open(jpg) as im:
                assert im.quantization == expected, (name, jpg.name)


def test_failures_are_listed_and_good_videos_still_converted(jpg_run):
    rc, out, dst = jpg_run
    assert rc == 1
    lines = out.splitlines()
    assert lines[0] == (f'converted {len(GOOD)}, skipped 0 (already done), '
                        f'failed {len(BAD)}, warnings 1')
    failed = {line.split(': ')[0].split()[1]: line for line in lines if line.startswith('FAILED')}
    assert sorted(failed) == sorted(BAD)
    assert 'empty file' in failed['run/empty.mp4']
    assert 'Invalid data found' in failed['run/text.mp4']
    assert 'no frames decoded' in failed['run/headeronly.webm']
    assert 'no video stream' in failed['run/audio.mkv']
    assert lines[1] == 'ignored: 1 .txt'  # notes.txt: no video extension
    for name in BAD:  # nothing left behind for a failed video
        assert not frame_dir(dst, name).exists()
    assert temps_left(dst) == []


def test_decoding_error_mid_file_keeps_frames_and_warns(jpg_run):
    _, out, dst = jpg_run
    warnings = [line for line in out.splitlines() if line.startswith('WARNING')]
    assert len(warnings) == 1 and warnings[0].startswith('WARNING run/midcorrupt.mp4: ')
    assert 'after 6 frames' in warnings[0]
    assert len(os.listdir(dst / 'run/midcorrupt')) == 6


def test_non_utf8_metadata_is_tolerated(src, jpg_run):
    with pytest.raises(UnicodeDecodeError):  # the file really carries invalid UTF-8
        av.open(str(src / 'run/badmeta.mp4')).close()
    assert len(os.listdir(jpg_run[2] / 'run/badmeta')) == 12


def test_display_rotation_is_applied(tmp_path):
    corner = np.zeros((48, 64, 3), np.uint8)
    corner[:8, :8] = 255  # white top-left corner
    make_video(tmp_path / 'src/c/rot.mp4', n=2, rotation=90, frames=[corner, corner])
    assert run_main(generate_video_jpgs, [tmp_path / 'src', tmp_path / 'dst', 'hmdb51',
                                          '--size', SIZE, '--n_jobs', 1])[0] == 0
    image = np.asarray(Image.open(tmp_path / 'dst/c/rot/image_00001.jpg').convert('L'))
    assert image.shape == (43, 32)  # displayed as portrait
    # 90 degrees counterclockwise, as ffmpeg's autorotate: the corner goes to the bottom left
    assert image[-3:, :3].mean() > 200 and image[:3, :3].mean() < 50


def test_rerun_skips_finished_and_redoes_half_written(src, tmp_path):
    tree = copy_videos(src, ['walk/h264.mp4', 'walk/mpeg4.avi'], tmp_path / 'src')
    dst = tmp_path / 'dst'
    argv = [tree, dst, 'kinetics', '--size', SIZE, '--n_jobs', 1]
    assert run_main(generate_video_jpgs, argv)[0] == 0
    done = dst / 'walk/h264/image_00001.jpg'
    mtime = done.stat().st_mtime_ns
    # a killed run: the mpeg4 video was half written into a temp folder, never renamed,
    # and an older killed run left a temp folder beside the finished h264 one
    shutil.rmtree(dst / 'walk/mpeg4')
    half = dst / 'walk/.mpeg4.tmp-0123456789abcdef'
    half.mkdir()
    shutil.copy(done, half / 'image_00001.jpg')
    stale = dst / 'walk/.h264.tmp-fedcba9876543210'
    stale.mkdir()
    rc, out = run_main(generate_video_jpgs, argv)
    assert rc == 0
    assert out.splitlines()[0] == 'converted 1, skipped 1 (already done), failed 0, warnings 0'
    assert sorted(os.listdir(dst / 'walk/mpeg4')) == jpg_names(12)
    assert done.stat().st_mtime_ns == mtime
    assert temps_left(dst) == []


def test_fps_picks_frames_by_presentation_time(tmp_path):
    make_video(tmp_path / 'src/c/v.mp4', n=20, rate=10)
    argv = [tmp_path / 'src', None, 'kinetics', '--size', SIZE, '--n_jobs', 1]
    argv[1] = tmp_path / 'all'
    assert run_main(generate_video_jpgs, argv)[0] == 0
    argv[1] = tmp_path / 'half'
    assert run_main(generate_video_jpgs, argv + ['--fps', 5])[0] == 0
    half = sorted(os.listdir(tmp_path / 'half/c/v'))
    assert half == jpg_names(10)
    for k, name in enumerate(half):  # output time k/5 s shows source frame 2k
        source = tmp_path / 'all/c/v' / f'image_{2 * k + 1:05d}.jpg'
        assert (tmp_path / 'half/c/v' / name).read_bytes() == source.read_bytes()


def test_activitynet_flat_layout(src, tmp_path):
    tree = tmp_path / 'src'
    tree.mkdir()
    shutil.copy(src / 'walk/h264.mp4', tree / 'v_one.mp4')
    shutil.copy(src / 'walk/vp9.webm', tree / 'v_two.webm')
    (tree / 'subfolder').mkdir()  # not a video: ignored in a flat layout
    rc, out = run_main(generate_video_jpgs, [tree, tmp_path / 'dst', 'activitynet',
                                             '--size', SIZE, '--n_jobs', 1])
    assert rc == 0
    assert sorted(os.listdir(tmp_path / 'dst')) == ['v_one', 'v_two']
    assert sorted(os.listdir(tmp_path / 'dst/v_two')) == jpg_names(12)


def test_same_stem_twice_is_a_failure_not_an_overwrite(src, tmp_path):
    tree = tmp_path / 'src/c'
    tree.mkdir(parents=True)
    shutil.copy(src / 'walk/h264.mkv.mkv', tree / 'a.mkv')
    shutil.copy(src / 'walk/vp9.webm', tree / 'a.webm')
    rc, out = run_main(generate_video_jpgs, [tmp_path / 'src', tmp_path / 'dst', 'kinetics',
                                             '--size', SIZE, '--n_jobs', 1])
    assert rc == 1
    assert 'FAILED  c/a.webm: same output name as a.mkv' in out
    assert Image.open(tmp_path / 'dst/c/a/image_00001.jpg').size == LANDSCAPE  # from a.mkv


def test_missing_src_and_unknown_dataset(tmp_path, capsys):
    assert generate_video_jpgs.main([str(tmp_path / 'nope'), str(tmp_path / 'dst'),
                                     'kinetics']) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ') and 'nope' in err and '\n' not in err
    (tmp_path / 'empty').mkdir()
    assert generate_video_jpgs.main([str(tmp_path / 'empty'), str(tmp_path / 'dst'),
                                     'something', '--n_jobs', '1']) == 2
    out, err = capsys.readouterr()
    assert out.splitlines()[0] == \
        "note: unknown dataset 'something', using the class-folder layout ('folder': SRC/<class>/<video>)"
    assert err == f"error: no video file to convert in {tmp_path / 'empty'} (it is empty)\n"
    assert generate_video_jpgs.main([str(tmp_path / 'empty'), str(tmp_path / 'dst'), 'folder', '--n_jobs', '1']) == 2
    assert 'note:' not in capsys.readouterr().out  # your own class folders: a layout with a name


def test_module_cli_with_a_pool_of_two(src, jpg_run, tmp_path):
    names = ['walk/h264.mp4', 'walk/vp9.webm', 'run/vfr.mp4', 'run/empty.mp4']
    tree = copy_videos(src, names, tmp_path / 'src')
    result = subprocess.run(
        [sys.executable, '-m', 'util_scripts.generate_video_jpgs', str(tree),
         str(tmp_path / 'dst'), 'ucf101', '--size', str(SIZE), '--n_jobs', '2'],
        cwd=REPO, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines()[0] == ('converted 3, skipped 0 (already done), '
                                             'failed 1, warnings 0')
    for name in names[:3]:  # same bytes as the in-process run
        for jpg in frame_dir(jpg_run[2], name).iterdir():
            assert (frame_dir(tmp_path / 'dst', name) / jpg.name).read_bytes() == \
                jpg.read_bytes()


def crash_on_purpose(src_path, tmp, size):
    """A writer whose process dies on videos named crash*: a segfault in FFmpeg, say."""
    if src_path.name.startswith('crash'):
        os._exit(3)
    return write_jpgs(src_path, tmp, size, Fraction(-1))


def test_a_dying_worker_fails_only_its_video(src, tmp_path):
    names = ['a.mp4', 'crash.mp4', 'b.mp4', 'c.mp4']
    tree = tmp_path / 'src/c'
    tree.mkdir(parents=True)
    for name in names:
        shutil.copy(src / 'walk/h264.mp4', tree / name)
    videos = find_sources(tmp_path / 'src', tmp_path / 'dst', 'kinetics').videos
    writer = functools.partial(crash_on_purpose, size=SIZE)
    outcomes = {o.video.src.name: o for o in runner.convert_all(videos, writer, n_jobs=2)}
    assert sorted(outcomes) == sorted(names)
    assert outcomes['crash.mp4'].status == 'failed'
    assert outcomes['crash.mp4'].reason == 'the worker process died'
    assert all(outcomes[n].status == 'converted' for n in names if n != 'crash.mp4')
    assert sorted(os.listdir(tmp_path / 'dst/c')) == ['a', 'b', 'c']
