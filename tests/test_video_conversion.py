"""generate_video_jpgs / generate_video_hdf5 / generate_video_mp4 and util_scripts.video_conversion.

Tiny videos (12-20 frames of 64x48 or 48x64) are made with PyAV once per module.
"""
import contextlib
import functools
import io
import os
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import h5py
import numpy as np
import pytest
from PIL import Image

from util_scripts import generate_video_hdf5, generate_video_jpgs, generate_video_mp4
from util_scripts import video_conversion as vc

REPO = Path(__file__).resolve().parents[1]
SIZE = 32  # 64x48 -> 43x32, 48x64 -> 32x43
LANDSCAPE, PORTRAIT = (43, 32), (32, 43)  # PIL (width, height)
VFR_GAPS_MS = [33, 66, 33, 100, 33, 33, 200, 33, 66, 33, 33]

# name -> (frames expected from generate_video_jpgs, PIL size of the frames)
GOOD = {
    'walk/h264.mp4': (12, LANDSCAPE),
    'walk/mpeg4.avi': (12, LANDSCAPE),
    'walk/vp9.webm': (12, PORTRAIT),
    'walk/h264.mkv.mkv': (12, LANDSCAPE),
    'run/vfr.mp4': (12, PORTRAIT),
    'run/badmeta.mp4': (12, LANDSCAPE),
    'run/midcorrupt.mp4': (6, LANDSCAPE),  # a broken packet at frame 7: 6 frames kept
}
BAD = ['run/empty.mp4', 'run/notes.txt', 'run/truncated.mp4', 'run/headeronly.webm',
       'run/audio.wav']


# ----------------------------------------------------------------------------- making videos

def moving_frames(n, width, height):
    for i in range(n):
        a = np.zeros((height, width, 3), np.uint8)
        a[..., 0] = (np.arange(width)[None, :] * 4 + i * 12) % 256
        a[..., 1] = (np.arange(height)[:, None] * 5) % 256
        x = (i * 3) % (width - 8)
        a[4:12, x:x + 8, 2] = 255
        yield a


def make_video(path, n=12, width=64, height=48, codec='libx264', fmt=None, rate=10,
               pts_ms=None, title=None, rotation=None, options=None, frames=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), 'w', format=fmt) as out:
        if title:
            out.metadata['title'] = title
        stream = out.add_stream(codec, rate=rate, options=options or {})
        stream.width, stream.height = width, height
        stream.pix_fmt = 'yuv420p'
        if pts_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i, array in enumerate(frames if frames is not None else
                                  moving_frames(n, width, height)):
            frame = av.VideoFrame.from_ndarray(array, format='rgb24')
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def packet_positions(path):
    with av.open(str(path)) as c:
        return [p.pos for p in c.demux(video=0) if p.size]


def make_tree(root):
    make_video(root / 'walk/h264.mp4')
    make_video(root / 'walk/mpeg4.avi', codec='mpeg4')
    make_video(root / 'walk/vp9.webm', width=48, height=64, codec='libvpx-vp9')
    make_video(root / 'walk/h264.mkv.mkv', fmt='matroska')
    make_video(root / 'run/vfr.mp4', width=48, height=64, pts_ms=np.cumsum([0] + VFR_GAPS_MS))
    # metadata that is not UTF-8: PyAV writes str only, so patch the bytes of the written tag
    path = make_video(root / 'run/badmeta.mp4', title='QQQQQQQQQQQQ')
    data = path.read_bytes()
    assert data.count(b'QQQQQQQQQQQQ') == 1
    path.write_bytes(data.replace(b'QQQQQQQQQQQQ', b'\xff\xfe\xc3(Q\x80QQQQQQ'))
    # H.264 in mp4 (no B-frames): an impossible NAL size in packet 7 stops the decoder there
    path = make_video(root / 'run/midcorrupt.mp4', options={'bf': '0'})
    data = bytearray(path.read_bytes())
    pos = packet_positions(path)[6]
    data[pos:pos + 4] = b'\x7f\xff\xff\xff'
    path.write_bytes(bytes(data))
    (root / 'run/empty.mp4').write_bytes(b'')
    (root / 'run/notes.txt').write_text('FFmpeg reads text as ANSI art.\n' * 100)
    data = (root / 'walk/h264.mp4').read_bytes()
    (root / 'run/truncated.mp4').write_bytes(data[:len(data) // 2])
    webm = root / 'walk/vp9.webm'
    (root / 'run/headeronly.webm').write_bytes(webm.read_bytes()[:packet_positions(webm)[0]])
    with av.open(str(root / 'run/audio.wav'), 'w') as out:
        stream = out.add_stream('pcm_s16le', rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format='s16',
                                           layout='mono')
        frame.sample_rate = 8000
        for packet in list(stream.encode(frame)) + list(stream.encode()):
            out.mux(packet)


def run_main(module, argv):
    """Run a script's main in-process; return (exit code, stdout)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        rc = module.main([str(a) for a in argv])
    return rc, out.getvalue()


def copy_videos(src_root, names, dst_root):
    for name in names:
        (dst_root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src_root / name, dst_root / name)
    return dst_root


def frame_dir(root, name):
    return root / Path(name).parent / Path(name).stem


def jpg_names(n):
    return [f'image_{i:05d}.jpg' for i in range(1, n + 1)]


def temps_left(root):
    return [p for p in root.rglob('*') if '.tmp-' in p.name]


@pytest.fixture(scope='module')
def src(tmp_path_factory):
    root = tmp_path_factory.mktemp('videos')
    make_tree(root)
    return root


@pytest.fixture(scope='module')
def jpg_run(src, tmp_path_factory):
    dst = tmp_path_factory.mktemp('jpgs')
    rc, out = run_main(generate_video_jpgs, [src, dst, 'kinetics', '--size', SIZE,
                                             '--n_jobs', 1])
    return rc, out, dst


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
    assert 'not a video' in failed['run/notes.txt']
    assert 'no frames decoded' in failed['run/headeronly.webm']
    assert 'no video stream' in failed['run/audio.wav']
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


def test_pick_by_time_on_variable_frame_rate():
    ms = [0, 33, 99, 132, 232, 265]
    timed = [(Fraction(t, 1000), Fraction(33, 1000), i) for i, t in enumerate(ms)]
    # 10 fps: times 0, .1, .2 show frames 0, 2, 3 (frame 3 is shown from .132 to .232)
    assert list(vc.pick_by_time(timed, Fraction(10))) == [0, 2, 3]
    # 20 fps until .298: 0 -> 0, .05 -> 1, .1 -> 2, .15 and .2 -> 3, .25 -> 4
    assert list(vc.pick_by_time(timed, Fraction(20))) == [0, 1, 2, 3, 3, 4]
    assert list(vc.pick_by_time([], Fraction(5))) == []


def test_output_size_rounding():
    assert vc.output_size(320, 240, 240) == (320, 240)
    assert vc.output_size(340, 256, 240) == (319, 240)
    assert vc.output_size(256, 340, 240) == (240, 319)
    assert vc.output_size(340, 256, 240, even=True) == (318, 240)
    assert vc.output_size(64, 48, 33, even=True) == (44, 34)


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
                                     'something', '--n_jobs', '1']) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("note: unknown dataset 'something'")
    assert out[1] == 'converted 0, skipped 0 (already done), failed 0, warnings 0'


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
    return generate_video_jpgs.write_jpgs(src_path, tmp, size, Fraction(-1))


def test_a_dying_worker_fails_only_its_video(src, tmp_path):
    names = ['a.mp4', 'crash.mp4', 'b.mp4', 'c.mp4']
    tree = tmp_path / 'src/c'
    tree.mkdir(parents=True)
    for name in names:
        shutil.copy(src / 'walk/h264.mp4', tree / name)
    videos = vc.find_videos(tmp_path / 'src', tmp_path / 'dst', 'kinetics')
    writer = functools.partial(crash_on_purpose, size=SIZE)
    outcomes = {o.video.src.name: o for o in vc.convert_all(videos, writer, n_jobs=2)}
    assert sorted(outcomes) == sorted(names)
    assert outcomes['crash.mp4'].status == 'failed'
    assert outcomes['crash.mp4'].reason == 'the worker process died'
    assert all(outcomes[n].status == 'converted' for n in names if n != 'crash.mp4')
    assert sorted(os.listdir(tmp_path / 'dst/c')) == ['a', 'b', 'c']


# ----------------------------------------------------------------------------- hdf5

def test_hdf5_readable_like_the_original_and_matches_jpgs(src, jpg_run, tmp_path):
    names = ['walk/h264.mp4', 'walk/vp9.webm', 'run/vfr.mp4', 'run/midcorrupt.mp4',
             'run/empty.mp4']
    tree = copy_videos(src, names, tmp_path / 'src')
    argv = [tree, tmp_path / 'dst', 'kinetics', '--size', SIZE, '--n_jobs', 1]
    (tmp_path / 'dst/walk').mkdir(parents=True)
    (tmp_path / 'dst/walk/.h264.hdf5.tmp-0123456789abcdef').write_bytes(b'half')  # killed run
    rc, out = run_main(generate_video_hdf5, argv)
    assert rc == 1
    assert out.splitlines()[0] == 'converted 4, skipped 0 (already done), failed 1, warnings 1'
    assert not (tmp_path / 'dst/run/empty.hdf5').exists()
    for name in names[:4]:
        jpgs = sorted(frame_dir(jpg_run[2], name).iterdir())
        path = (tmp_path / 'dst' / name).with_suffix('.hdf5')
        with h5py.File(path, 'r') as f:
            assert list(f) == ['video']
            video = f['video']
            assert video.shape == (len(jpgs),)
            assert h5py.check_vlen_dtype(video.dtype) == np.dtype('uint8')
            for i, jpg in enumerate(jpgs):
                image = np.asarray(Image.open(io.BytesIO(video[i])), dtype=np.int16)
                reference = np.asarray(Image.open(jpg), dtype=np.int16)
                assert np.abs(image - reference).max() <= 2, (name, i)
    assert temps_left(tmp_path / 'dst') == []
    rc, out = run_main(generate_video_hdf5, argv)
    assert out.splitlines()[0] == 'converted 0, skipped 4 (already done), failed 1, warnings 0'


def test_hdf5_pool_and_fps(src, tmp_path):
    tree = copy_videos(src, ['walk/h264.mp4', 'walk/mpeg4.avi'], tmp_path / 'src')
    rc, out = run_main(generate_video_hdf5, [tree, tmp_path / 'dst', 'kinetics',
                                             '--size', SIZE, '--n_jobs', 2, '--fps', 5])
    assert rc == 0, out
    for name in ['h264', 'mpeg4']:
        with h5py.File(tmp_path / f'dst/walk/{name}.hdf5', 'r') as f:
            assert f['video'].shape == (6,)  # 12 frames at 10 fps = 1.2 s -> 6 at 5 fps


# ----------------------------------------------------------------------------- mp4

def test_mp4_keyframe_every_gop_and_same_frames(src, tmp_path):
    names = ['walk/h264.mp4', 'walk/vp9.webm', 'run/vfr.mp4', 'walk/mpeg4.avi',
             'run/notes.txt']
    tree = copy_videos(src, names, tmp_path / 'src')
    argv = [tree, tmp_path / 'dst', 'kinetics', '--size', 33, '--gop', 4, '--n_jobs', 1]
    rc, out = run_main(generate_video_mp4, argv)
    assert rc == 1
    assert out.splitlines()[0] == 'converted 4, skipped 0 (already done), failed 1, warnings 0'
    for name in names[:4]:
        with av.open(str(tree / name)) as source:
            rate = source.streams.video[0].average_rate
            n_source = sum(1 for _ in source.decode(video=0))
        with av.open(str((tmp_path / 'dst' / name).with_suffix('.mp4'))) as c:
            assert [s.type for s in c.streams] == ['video']
            stream = c.streams.video[0]
            assert stream.codec_context.name == 'h264'
            packets = [p for p in c.demux(stream) if p.size]
            assert [i for i, p in enumerate(packets) if p.is_keyframe] == \
                list(range(0, len(packets), 4)), name
            pts = [p.pts for p in packets]
            assert pts == sorted(set(pts)) and [p.dts for p in packets] == pts  # no B-frames
            # a clip starting at frame 9 decodes from the keyframe 8
            c.seek(pts[9], stream=stream, backward=True)
            assert next(c.decode(stream)).pts == pts[8]
            c.seek(0)
            frames = list(c.decode(stream))
            assert len(frames) == n_source == 12, name
            w, h = frames[0].width, frames[0].height
            assert w % 2 == 0 and h % 2 == 0 and min(w, h) == 34
            assert (w > h) == (name != 'walk/vp9.webm' and name != 'run/vfr.mp4')
            if name != 'run/vfr.mp4':
                assert stream.average_rate == rate
    assert temps_left(tmp_path / 'dst') == []
    assert run_main(generate_video_mp4, argv)[1].splitlines()[0] == \
        'converted 0, skipped 4 (already done), failed 1, warnings 0'
