"""Raw video is frame-exact everywhere (issue 14.1).

For every file of ``tests.video_corpus`` (each container and codec the PyAV wheel can write),
the jpg and hdf5 converters, the annotation builders' count (``video_layout``), the loader's
index and ``check_dataset`` agree with a straight PyAV decode, and the loader's frames equal
that decode's frames pixel for pixel (through the loader's own ``frame_to_tensor``).
"""
import json
import random

import av
import pytest
import torch

from datasets.formats import video_files, video_layout
from datasets.planar_clip import is_planar, pack
from datasets.video_loader import MAX_SEEK_MARGIN, VideoLoader, frame_to_tensor
from tests.conversion_tree import run_main
from tests.video_corpus import CASES, TITLED, build_corpus
from util_scripts import check_dataset, folder_json, generate_video_hdf5, generate_video_jpgs

NAMES = [case.name for case in CASES]
CUT = {'h264_cut.ts', 'mpeg2_cut.ts'}  # packets the decoder must drop: counting packets is wrong


@pytest.fixture(scope='module')
def corpus(tmp_path_factory):
    """The corpus in ``src/clips``, converted once to jpg folders and hdf5 files."""
    root = tmp_path_factory.mktemp('exact')
    made, skipped = build_corpus(root / 'src' / 'clips')
    for module, dst in ((generate_video_jpgs, 'jpg'), (generate_video_hdf5, 'hdf5')):
        rc, out = run_main(module, [root / 'src', root / dst, 'kinetics', '--size', 32, '--n_jobs', 1])
        assert rc == 0 and f'converted {len(made)},' in out, out
    return root, made, skipped


def straight_decode(path, planar=True):
    """Every frame of a plain sequential PyAV decode, as the loader gives it: RGB, or in ``planar``
    mode a 4:2:0 frame's packed planes (``planar_clip.pack``)."""
    with av.open(str(path), metadata_errors='ignore') as container:
        return [pack(frame) if planar and is_planar(frame) else frame_to_tensor(frame)
                for frame in container.decode(video=0)]


def made_or_skip(corpus, name):
    root, made, skipped = corpus
    if name not in made:
        pytest.skip(skipped[name])
    return root, made[name]


def test_the_wheel_writes_the_formats_the_issue_names(corpus):
    _, made, skipped = corpus
    assert {'mpeg1_ps.mpg', 'mpeg2_ps.mpg', 'mpeg1_es.mpv', 'h264_open_gop_mp4.mp4', 'h264_cut.ts',
            'mpeg4_bframes_avi.avi', 'h264_vfr_mkv.mkv', 'latin1_title_avi.avi'} <= set(made), skipped
    for reason in skipped.values():
        assert 'encoder' in reason or 'cannot be encoded' in reason


@pytest.mark.parametrize('name', NAMES)
def test_every_path_counts_the_same_frames(corpus, name):
    root, path = made_or_skip(corpus, name)
    stem = path.name.rsplit('.', 1)[0]
    n = len(straight_decode(path))
    assert n > 0
    assert video_layout.count_jpg_frames(root / 'jpg' / 'clips' / stem) == n
    assert video_layout.count_hdf5_frames(root / 'hdf5' / 'clips' / f'{stem}.hdf5') == n
    assert video_layout.count_frames(path, 'video') == n
    assert video_files.probe_video(path)[0] == n
    assert len(VideoLoader().index(path)) == n
    if name in CUT:  # the case is a real test of the policy: its packets are not its frames
        with av.open(str(path)) as container:
            packets = [p for p in container.demux(video=0) if p.size > 0]
        assert len(packets) > n and video_files.frame_table(path).counted_by == 'decoding'


@pytest.mark.parametrize('name', NAMES)
def test_loader_frames_equal_a_straight_decode(corpus, name):
    _, path = made_or_skip(corpus, name)
    for planar in (True, False):
        reference = straight_decode(path, planar)
        n = len(reference)
        loader = VideoLoader(planar=planar)
        keyframes = len(loader.index(path).keyframes)
        clips = [range(0, 8), range(n // 2 - 4, n // 2 + 4), range(n - 8, n), range(n)]
        order = list(range(n))
        random.Random(name).shuffle(order)
        clips += [range(i, i + 1) for i in order]  # seeks back and forth, after the file's lessons
        for clip in clips:
            frames, replaced = loader(path, list(clip))
            frames = getattr(frames, 'packed', frames)  # a PlanarClip's frames
            assert replaced == 0, (name, clip)
            for k, i in enumerate(clip):
                assert torch.equal(frames[k], reference[i]), (name, planar, i)
        assert loader.missed_seeks <= MAX_SEEK_MARGIN + keyframes  # each lesson is paid once


@pytest.mark.parametrize('name', ['mpeg1_ps.mpg', 'mpeg2_dvd.vob'])
def test_program_stream_seeks_that_land_elsewhere_are_learnt_once(corpus, name):
    _, path = made_or_skip(corpus, name)
    loader = VideoLoader()
    keyframes = list(loader.index(path).keyframes)
    misses = []
    for _ in range(3):
        for start in keyframes[1:]:
            loader(path, [start, start + 1])
        misses.append(loader.missed_seeks)
    assert misses[0] >= 1 and misses[0] == misses[1] == misses[2]


@pytest.mark.parametrize('name', sorted(TITLED))
def test_non_utf8_metadata_is_ignored(corpus, name):
    _, path = made_or_skip(corpus, name)
    with pytest.raises(UnicodeDecodeError):  # the fixture really holds invalid UTF-8
        av.open(str(path)).close()
    with video_files.open_video(path) as container:
        assert video_files.video_stream(container)
    assert video_files.count_frames(path) == len(straight_decode(path))


def test_builders_list_every_video_extension_and_check_dataset_agrees(corpus, tmp_path):
    root, made, _ = corpus
    listed = video_layout.list_class_folder(root / 'src' / 'clips', 'video')
    assert sorted(p.name for p in listed.values()) == sorted(made)
    for name in ('x.mpv', 'x.m2v', 'x.VOB', 'x.ts', 'x.m2ts', 'x.mpeg', 'x.webm'):
        assert video_files.has_video_extension(name)
    annotation = tmp_path / 'video.json'
    assert run_main(folder_json, [root / 'src', annotation, '--file_type', 'video'])[0] == 0
    database = json.loads(annotation.read_text())['database']
    for stem, entry in database.items():
        n = len(straight_decode(listed[stem]))
        assert entry['annotations']['segment'] == [0, n], stem
    rc, out = run_main(check_dataset, [annotation, root / 'src', '--file_type', 'video',
                                       '--sample_duration', 8])
    assert rc == 0, out


def test_inference_reads_every_frame_of_program_streams_and_cut_files(corpus, tmp_path, capsys):
    import h5py

    import inference
    from models import generate_model, save_checkpoint
    config = dict(model='resnet', model_depth=10, n_classes=2, resnet_widen_factor=0.25)
    checkpoint = save_checkpoint(tmp_path / 'model.pth', generate_model(**config).eval(), config,
                                 class_names=['a', 'b'], mean=[0.5] * 3, std=[0.5] * 3,
                                 sample_size=32, sample_duration=8)
    _, made, _ = corpus
    names = [n for n in ('mpeg1_ps.mpg', 'mpeg2_dvd.vob', 'mpeg1_es.mpv', 'mpeg2.ts', 'mpeg2_cut.ts', 'h264_cut.ts')
             if n in made]
    features = tmp_path / 'features.hdf5'
    assert inference.predict([str(made[n]) for n in names] + [
        '--resume_path', str(checkpoint), '--features', str(features), '--no_cuda']) == 0, capsys.readouterr()
    with h5py.File(features) as f:
        for name in names:
            assert f[f'{name}/segments'][()][-1][1] == len(straight_decode(made[name])), name


@pytest.mark.parametrize('name', ['mpeg4_bframes_mp4.mp4', 'h264_open_gop_mkv.mkv', 'mpeg2_ps.mpg'])
def test_clips_in_the_first_gop_seek_like_any_other(corpus, name, monkeypatch):
    """A clip before the second keyframe seeks to keyframe 0 in the open file (verified like every
    seek) instead of reopening the file to decode from its start; a program stream whose seeks land
    late still gives the right frames (the last test) and is opened again only while learning."""
    from datasets import video_loader
    _, path = made_or_skip(corpus, name)
    reference = straight_decode(path)
    n = len(reference)
    opened = []
    real_open = video_loader.open_video
    monkeypatch.setattr(video_loader, 'open_video', lambda p: opened.append(p) or real_open(p))
    loader = VideoLoader(planar=True)
    for _ in range(3):
        for clip in (range(0, 4), range(n - 4, n), range(1, 3)):
            frames, _ = loader(path, list(clip))
            assert all(torch.equal(getattr(frames, 'packed', frames)[k], reference[i]) for k, i in enumerate(clip))
    if name != 'mpeg2_ps.mpg':
        assert loader.missed_seeks == 0 and len(opened) == 1


def test_a_seek_that_misses_the_first_keyframe_drops_it_without_aiming_earlier_elsewhere():
    from fractions import Fraction

    from datasets.video_loader import VideoIndex
    table = video_files.FrameTable(list(range(0, 24 * 10, 10)), {0: 0, 8: 80, 16: 160}, Fraction(1, 100), None,
                                   'packets')
    index = VideoIndex(table)
    assert index.seek_target(3) == 0 and index.position(80) == 8 and index.position(85) is None
    index.missed(3)  # no keyframe before the first: stop aiming at it, and only at it
    assert index.margin == 0 and index.keyframes == [8, 16]
    assert index.seek_target(3) is None and index.seek_target(20) == 160
