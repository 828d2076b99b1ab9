"""generate_video_hdf5, generate_video_mp4, the frame helpers and the one video-file policy."""
import io
from fractions import Fraction

import av
import h5py
import numpy as np
import pytest
from PIL import Image

from conversion import frames
from datasets.formats import video_files
from tests.conversion_tree import (SIZE, copy_videos, frame_dir, jpg_run, run_main, src,  # noqa: F401
                                   temps_left)
from util_scripts import generate_video_hdf5, generate_video_mp4


def test_pick_by_time_on_variable_frame_rate():
    ms = [0, 33, 99, 132, 232, 265]
    timed = [(Fraction(t, 1000), Fraction(33, 1000), i) for i, t in enumerate(ms)]
    # 10 fps: times 0, .1, .2 show frames 0, 2, 3 (frame 3 is shown from .132 to .232)
    assert list(frames.pick_by_time(timed, Fraction(10))) == [0, 2, 3]
    # 20 fps until .298: 0 -> 0, .05 -> 1, .1 -> 2, .15 and .2 -> 3, .25 -> 4
    assert list(frames.pick_by_time(timed, Fraction(20))) == [0, 1, 2, 3, 3, 4]
    assert list(frames.pick_by_time([], Fraction(5))) == []


def test_output_size_rounding():
    assert frames.output_size(320, 240, 240) == (320, 240)
    assert frames.output_size(340, 256, 240) == (319, 240)
    assert frames.output_size(256, 340, 240) == (240, 319)
    assert frames.output_size(340, 256, 240, even=True) == (318, 240)
    assert frames.output_size(64, 48, 33, even=True) == (44, 34)


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
    assert rc == 0
    assert out.splitlines()[:2] == ['converted 4, skipped 0 (already done), failed 0, warnings 0',
                                    'ignored: 1 .txt']
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
        'converted 0, skipped 4 (already done), failed 0, warnings 0'


# ----------------------------------------------------------------------------- video_files

def test_one_policy_for_opening_video_files(src):
    # metadata that is not UTF-8 does not make a good video unreadable
    assert video_files.probe_video(src / 'run/badmeta.mp4') == (12, 10.0)
    assert video_files.video_fps(src / 'walk/mpeg4.avi') == 10.0
    for name, reason in [('run/empty.mp4', 'empty file'), ('run/notes.txt', 'not a video'),
                         ('run/audio.mkv', 'no video stream')]:
        with pytest.raises(video_files.UnreadableVideo, match=reason):
            video_files.probe_video(src / name)
    for name in ('run/truncated.mp4', 'run/text.mp4'):
        with pytest.raises(video_files.UNREADABLE):
            video_files.probe_video(src / name)
    assert video_files.has_video_extension('clip.MKV')
    assert not video_files.has_video_extension('notes.txt')


def test_still_images_named_as_videos_are_not_videos(tmp_path):
    frame = (np.arange(48 * 64 * 3) % 251).astype(np.uint8).reshape(48, 64, 3)
    for fmt, kind in [('JPEG', 'a JPEG image'), ('PNG', 'a PNG image'), ('GIF', 'a GIF image'),
                      ('BMP', 'a BMP image'), ('WEBP', 'a WebP image'), ('TIFF', 'a TIFF image')]:
        path = tmp_path / f'{fmt}.mp4'
        Image.fromarray(frame).save(path, format=fmt)
        with pytest.raises(video_files.UnreadableVideo, match=f'^not a video: {kind}$'):
            video_files.probe_video(path)
    # an animated GIF is a video of its frames
    images = [Image.fromarray(np.roll(frame, 8 * i, axis=1)) for i in range(4)]
    images[0].save(tmp_path / 'anim.gif', save_all=True, append_images=images[1:], duration=40)
    assert video_files.probe_video(tmp_path / 'anim.gif')[0] == 4
