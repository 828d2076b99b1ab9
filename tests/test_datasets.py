"""From files on disk to batches: loaders, datasets, annotation merging, bad data."""
import json
import random
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import datasets
import opts
from datasets import AnnotationError, Hdf5Loader, JpgLoader, VideoLoader, collate, load_video_list
from tests.video_fixtures import (entry, jpeg_bytes, make_dataset, moving_frames, write_annotation,
                                  write_hdf5, write_jpg_folder, write_video)


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    """The same two-class dataset as jpg folders, hdf5 files and mp4 files."""
    root = tmp_path_factory.mktemp('data')
    return {ft: (root / ft, make_dataset(root / ft, ft)) for ft in ('jpg', 'hdf5', 'video')}


def options(data, file_type, *extra):
    root, ann = data[file_type]
    return opts.parse_opts(['--video_path', str(root), '--annotation_path', str(ann), '--file_type', file_type,
                            '--sample_size', '32', '--sample_duration', '8', '--n_threads', '0', *extra])


def test_jpg_hdf5_and_video_loaders_agree(data):
    indices = [0, 1, 2, 5, 11, 11]
    jpg, bad_j = JpgLoader()(data['jpg'][0] / 'jump' / 'jump_0', [i + 1 for i in indices])
    h5, bad_h = Hdf5Loader()(data['hdf5'][0] / 'jump' / 'jump_0.hdf5', indices)
    vid, bad_v = VideoLoader()(data['video'][0] / 'jump' / 'jump_0.mp4', indices)
    assert jpg.shape == h5.shape == vid.shape == (6, 3, 48, 64) and jpg.dtype == torch.uint8
    assert bad_j == bad_h == bad_v == 0
    assert torch.equal(jpg, h5)  # the same JPEG bytes
    assert (jpg.float() - vid.float()).abs().mean() < 6  # two lossy codecs of one source
    truth = torch.from_numpy(np.stack(moving_frames(12, seed=0))).permute(0, 3, 1, 2)[indices]
    assert (jpg.float() - truth.float()).abs().mean() < 3


def test_video_loader_seeks_to_any_clip(tmp_path):
    frames = moving_frames(30)
    path = write_video(tmp_path / 'v.mp4', frames, gop=8)
    loader = VideoLoader()
    whole, _ = loader(path, list(range(30)))
    for start in (0, 7, 8, 13, 22):
        clip, bad = loader(path, list(range(start, start + 8)))
        assert bad == 0 and torch.equal(clip, whole[start:start + 8])
    assert len(loader.index(path)) == 30 and loader.index(path).keyframes == [0, 8, 16, 24]
    past_end, bad = loader(path, [28, 29, 30, 31])  # beyond the last frame: nearest good one
    assert bad == 2 and torch.equal(past_end[3], whole[29])


@pytest.mark.parametrize('file_type', ['jpg', 'hdf5', 'video'])
def test_training_validation_and_inference_data(data, file_type):
    opt = options(data, file_type)
    train = datasets.get_training_data(opt)
    assert len(train) == 2 and train.class_names == ['jump', 'wave']
    batch = collate([train[i] for i in range(len(train))])
    assert batch['clip'].shape == (2, 3, 8, 32, 32) and batch['clip'].dtype == torch.uint8
    assert batch['label'].tolist() == [0, 1] and batch['bad_frames'] == 0 and batch['failed'] == []
    val = datasets.get_validation_data(opt)
    batch = collate([val[i] for i in range(len(val))])
    first = 1 if file_type == 'jpg' else 0
    # jump_1 has 20 frames: starts every 6 frames; wave_1 has 16: every 4 (the original's rule)
    assert batch['video_id'] == ['jump_1'] * 3 + ['wave_1'] * 3
    assert batch['segment'][:3] == [(first, first + 8), (first + 6, first + 14), (first + 12, first + 20)]
    assert batch['segment'][3:] == [(first, first + 8), (first + 4, first + 12), (first + 8, first + 16)]
    assert batch['clip'].shape == (6, 3, 8, 32, 32) and batch['label'].tolist() == [0, 0, 0, 1, 1, 1]
    infer = datasets.get_inference_data(opt)
    batch = collate([infer[i] for i in range(len(infer))])
    assert batch['segment'][:2] == [(first, first + 8), (first + 16, first + 20)]
    normalized = datasets.get_normalization(opt)(batch['clip'])
    assert normalized.dtype == torch.float32 and -3 < normalized.mean() < 3


def test_clips_stay_consistent_through_a_multiprocess_dataloader(data):
    opt = options(data, 'jpg', '--n_val_samples', '1', '--sample_t_stride', '2')
    val = datasets.get_validation_data(opt)
    loader = DataLoader(val, batch_size=2, num_workers=2, collate_fn=collate)
    batch = next(iter(loader))
    assert batch['clip'].shape == (2, 3, 8, 32, 32) and batch['video_id'] == ['jump_1', 'wave_1']
    assert batch['segment'][0] == (3, 18)  # centre 8 of frames 1, 3, ..., 19: 3, 5, ..., 17


def test_augmentation_draws_only_from_the_sample_seed_never_the_global_random(data):
    """One (index, seed) gives one sample whatever the global ``random`` did; seeds differ."""
    train = datasets.get_training_data(options(data, 'jpg', '--colorjitter'))
    random.seed(0)
    first = train[(1, 7)]
    random.seed(12345)
    random.random()
    state = random.getstate()
    second = train[(1, 7)]
    assert random.getstate() == state  # the sample drew nothing from the global generator
    assert torch.equal(first['clip'], second['clip']) and first['segment'] == second['segment']
    other = train[(1, 8)]
    assert not torch.equal(first['clip'], other['clip'])
    random.seed(3)
    plain = train[1]  # a plain index follows the global seed (one draw seeds the sample's generator)
    random.seed(3)
    assert torch.equal(plain['clip'], train[1]['clip'])
    val = datasets.get_validation_data(options(data, 'jpg'))
    state = random.getstate()
    val[0]
    assert random.getstate() == state  # deterministic transforms: no generator, no global draw


def test_bad_frames_are_replaced_by_the_nearest_good_one_and_counted(tmp_path):
    frames = moving_frames(10)
    folder = write_jpg_folder(tmp_path / 'v', frames)
    good, _ = JpgLoader()(folder, list(range(1, 11)))
    data = (folder / 'image_00004.jpg').read_bytes()
    (folder / 'image_00004.jpg').write_bytes(data[:len(data) // 2])   # truncated
    (folder / 'image_00006.jpg').write_bytes(b'')                     # zero bytes
    (folder / 'image_00008.jpg').unlink()                             # missing middle frame
    (folder / 'image_00002.jpg').write_bytes(jpeg_bytes(frames[1], 'CMYK'))
    (folder / 'image_00009.jpg').write_bytes(jpeg_bytes(frames[8], 'L'))
    clip, bad = JpgLoader()(folder, list(range(1, 11)))
    assert bad == 3 and clip.shape == (10, 3, 48, 64)
    assert torch.equal(clip[3], good[2]) and torch.equal(clip[5], good[4]) and torch.equal(clip[7], good[6])
    assert (clip[1].float() - good[1].float()).abs().mean() < 4  # CMYK read as RGB
    luma = (torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1) * good[8].float()).sum(0)
    assert (clip[8].float() - luma).abs().mean() < 4  # greyscale -> 3 equal channels
    lone, bad = JpgLoader()(folder, [6, 6, 6])  # nothing good in the clip: look next door
    assert bad == 3 and torch.equal(lone[0], good[4])


def test_unusable_videos_leave_the_batch_and_are_counted(tmp_path):
    root = tmp_path / 'jpg'
    write_jpg_folder(root / 'a' / 'ok', moving_frames(8))
    write_jpg_folder(root / 'a' / 'emptied', moving_frames(8))
    (root / 'a' / 'no_frames').mkdir(parents=True)
    ann = write_annotation(tmp_path / 'ann.json', ['a'], {
        'ok': entry('training', 'a', (1, 9)), 'emptied': entry('training', 'a', (1, 9)),
        'never_there': entry('training', 'a', (1, 9)), 'no_frames': entry('training', 'a', (1, 1)),
    })
    opt = opts.parse_opts(['--video_path', str(root), '--annotation_path', str(ann), '--sample_size', '16',
                           '--sample_duration', '4'])
    train = datasets.get_training_data(opt)
    assert [r.video_id for r in train.records] == ['ok', 'emptied']
    assert train.videos.missing == ['never_there'] and train.videos.empty == ['no_frames']
    assert '1 missing on disk (never_there)' in train.videos.summary()
    for p in (root / 'a' / 'emptied').iterdir():
        p.unlink()
    with pytest.warns(UserWarning, match='emptied'):
        batch = collate([train[0], train[1]])
    assert batch['clip'].shape[0] == 1 and batch['video_id'] == ['ok']
    assert [vid for vid, _ in batch['failed']] == ['emptied']
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        assert collate([train[1]])['clip'] is None


def test_corrupt_hdf5_is_a_failed_sample(tmp_path):
    path = write_hdf5(tmp_path / 'a' / 'v.hdf5', moving_frames(6))
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 3])
    with pytest.raises(datasets.VideoReadError, match='v.hdf5'):
        Hdf5Loader()(path, [0, 1, 2])
    (tmp_path / 'a' / 'w.hdf5').write_bytes(b'')
    with pytest.raises(datasets.VideoReadError):
        Hdf5Loader()(tmp_path / 'a' / 'w.hdf5', [0])


def test_flow_hdf5_gives_two_channel_clips(tmp_path):
    path = write_hdf5(tmp_path / 'a' / 'v.hdf5', moving_frames(6), names=('video_u', 'video_v'))
    clip, bad = Hdf5Loader(('video_u', 'video_v'))(path, [0, 1, 2, 3])
    assert clip.shape == (4, 2, 48, 64) and bad == 0
    ann = write_annotation(tmp_path / 'ann.json', ['a'], {'v': entry('training', 'a', (0, 6))})
    opt = opts.parse_opts(['--video_path', str(tmp_path), '--annotation_path', str(ann), '--file_type', 'hdf5',
                           '--input_type', 'flow', '--sample_size', '16', '--sample_duration', '4'])
    assert opt.n_input_channels == 2
    assert datasets.get_training_data(opt)[0]['clip'].shape == (2, 4, 16, 16)


def test_merged_annotation_files_share_one_label_space(tmp_path):
    write_jpg_folder(tmp_path / 'k' / 'run' / 'k1', moving_frames(5))
    write_jpg_folder(tmp_path / 'k' / 'swim' / 'k2', moving_frames(5))
    write_jpg_folder(tmp_path / 'm' / 'run' / 'm1', moving_frames(5))
    write_jpg_folder(tmp_path / 'm' / 'cook' / 'm2', moving_frames(5))
    k = write_annotation(tmp_path / 'kinetics.json', ['run', 'swim'],
                         {'k1': entry('training', 'run', (1, 6)), 'k2': entry('training', 'swim', (1, 6))})
    m = write_annotation(tmp_path / 'mit.json', ['cook', 'run'],
                         {'m1': entry('training', 'run', (1, 6)), 'm2': entry('training', 'cook', (1, 6))})
    videos = load_video_list([k, m], [tmp_path / 'k', tmp_path / 'm'], 'training')
    assert videos.labels == ['kinetics:run', 'swim', 'cook', 'mit:run']
    assert {r.video_id: r.label for r in videos.records} == {'k1': 0, 'k2': 1, 'm1': 3, 'm2': 2}
    with pytest.raises(AnnotationError, match='2 annotation files but 3 video paths'):
        load_video_list([k, m], [tmp_path] * 3, 'training')


def test_class_and_instance_fractions_are_seeded(tmp_path):
    videos = {}
    labels = [f'c{i}' for i in range(10)]
    for c in labels:
        for k in range(4):
            write_jpg_folder(tmp_path / c / f'{c}_{k}', moving_frames(2, 8, 8))
            videos[f'{c}_{k}'] = entry('training', c, (1, 3))
    ann = write_annotation(tmp_path / 'ann.json', labels, videos)
    half = load_video_list([ann], [tmp_path], 'training', class_fraction=0.5, seed=3)
    assert len(half.labels) == 5 and len(half.records) == 20
    assert {r.label for r in half.records} == set(range(5))
    assert [r.video_id for r in half.records] == [r.video_id for r in load_video_list(
        [ann], [tmp_path], 'training', class_fraction=0.5, seed=3).records]
    quarter = load_video_list([ann], [tmp_path], 'training', instance_fraction=0.25, seed=3)
    assert len(quarter.labels) == 10 and len(quarter.records) == 10  # one of 4 per class
    assert quarter.records != load_video_list([ann], [tmp_path], 'training', instance_fraction=0.25,
                                              seed=4).records


def test_annotation_mistakes_are_one_line_errors(tmp_path):
    bad = tmp_path / 'bad.json'
    bad.write_text('{"labels": ["a"], "database": {')
    with pytest.raises(AnnotationError, match='bad.json: not valid JSON'):
        load_video_list([bad], [tmp_path], 'training')
    with pytest.raises(AnnotationError, match='missing.json: annotation file not found'):
        load_video_list([tmp_path / 'missing.json'], [tmp_path], 'training')
    write_jpg_folder(tmp_path / 'Biking' / 'v', moving_frames(2, 8, 8))
    wrong = write_annotation(tmp_path / 'wrong.json', ['biking'], {'v': entry('training', 'Biking', (1, 3))})
    videos = load_video_list([wrong], [tmp_path], 'training')  # dropped, and said so
    assert videos.records == [] and "1 dropped (label not in 'labels': 'Biking'): v" in videos.summary()


def test_unlabeled_test_subset(tmp_path):
    write_jpg_folder(tmp_path / 'test' / 'x', moving_frames(8))
    ann = write_annotation(tmp_path / 'ann.json', ['a'], {'x': entry('testing', segment=(1, 9))})
    opt = opts.parse_opts(['--video_path', str(tmp_path), '--annotation_path', str(ann), '--inference_subset',
                           'test', '--sample_size', '16', '--sample_duration', '4', '--inference_stride', '4'])
    batch = collate([datasets.get_inference_data(opt)[0]])
    assert batch['label'].tolist() == [-1, -1] and batch['segment'] == [(1, 5), (5, 9)]


def test_activitynet_segments_in_seconds(tmp_path):
    write_jpg_folder(tmp_path / 'v_abc', moving_frames(40, 16, 16))
    taxonomy = [{'nodeId': 0, 'parentId': None, 'nodeName': 'Root'},
                {'nodeId': 1, 'parentId': 0, 'nodeName': 'Sports'},
                {'nodeId': 2, 'parentId': 1, 'nodeName': 'Surfing'},
                {'nodeId': 3, 'parentId': 1, 'nodeName': 'Skiing'}]
    db = {'abc': {'subset': 'training', 'fps': 10.0, 'n_frames': 40,
                  'annotations': [{'segment': [0.5, 1.5], 'label': 'Skiing'},
                                  {'segment': [2.0, 9.0], 'label': 'Surfing'}]}}
    (tmp_path / 'anet.json').write_text(json.dumps({'taxonomy': taxonomy, 'database': db}))
    videos = load_video_list([tmp_path / 'anet.json'], [tmp_path], 'training', dataset='activitynet')
    assert videos.labels == ['Surfing', 'Skiing']
    assert [(r.label, r.frames) for r in videos.records] == [(1, range(6, 16)), (0, range(21, 41))]
    whole = load_video_list([tmp_path / 'anet.json'], [tmp_path], 'training', dataset='activitynet',
                            whole_videos=True)
    assert [r.frames for r in whole.records] == [range(1, 41)]
    opt = opts.parse_opts(['--video_path', str(tmp_path), '--annotation_path', str(tmp_path / 'anet.json'),
                           '--dataset', 'activitynet', '--inference_subset', 'train', '--sample_size', '16'])
    assert len(collate([datasets.get_inference_data(opt)[0]])['segment']) == 3


def test_invalid_option_combinations_are_one_line_errors(capsys):
    with pytest.raises(SystemExit):
        opts.parse_opts(['--input_type', 'flow', '--file_type', 'jpg'])
    assert '--input_type flow needs --file_type hdf5' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        opts.parse_opts(['--class_fraction', '0'])


def test_video_frames_kept_as_planes_convert_to_the_same_rgb(data):
    """4:2:0 clips stay planes until cropped and resized; the result matches swscale's RGB closely."""
    import spatial_transforms as st
    from datasets.planar_clip import PlanarClip
    path = data['video'][0] / 'jump' / 'jump_0.mp4'
    rgb, _ = VideoLoader()(path, list(range(8)))
    planar, _ = VideoLoader(planar=True)(path, list(range(8)))
    assert isinstance(planar, PlanarClip) and planar.shape == (3, 8, 48, 64)
    whole = planar.decode_for()
    assert whole.shape == rgb.transpose(0, 1).shape and whole.dtype == torch.uint8
    assert (whole.float() - rgb.transpose(0, 1).float()).abs().mean() < 1.5
    for box in [(0, 0, 48, 64), (5, 7, 31, 33), (1, 0, 47, 63)]:  # odd corners cut chroma samples in half
        reference = st.crop_resize(rgb.transpose(0, 1), box, (20, 24))
        got = st.crop_resize(planar, box, (20, 24))
        assert got.shape == reference.shape == (3, 8, 20, 24)
        assert (got.float() - reference.float()).abs().mean() < 2.5, box


def test_a_planar_clip_of_undecodable_frames_is_filled_with_rgb_neighbours(data):
    """When no frame of a clip decodes, the neighbours read for it come back RGB like the clip,
    not as packed 4:2:0 planes (which once left the loader as a 1-channel clip)."""
    path = data['video'][0] / 'jump' / 'jump_0.mp4'
    clips = {}
    for planar in (False, True):
        loader = VideoLoader(planar=planar)
        decode = loader._decode
        # the clip's frames fail; single-frame reads of the neighbours succeed
        loader._decode = lambda p, idx, wanted, *a: {i: None for i in wanted} if len(wanted) > 1 else \
            decode(p, idx, wanted, *a)
        clips[planar], bad = loader(path, [3, 4, 5])
        assert bad == 3
    assert clips[True].shape == clips[False].shape == (3, 3, 48, 64)
    assert (clips[True].float() - clips[False].float()).abs().mean() < 1.5


def test_video_clips_of_any_pixel_format_come_out_rgb(tmp_path):
    """Full-range MJPEG and 4:4:4 H.264 are not 4:2:0 planes: the loader converts them, and the
    dataset's colours stay right (they were converted twice when the pipeline assumed YUV)."""
    from fractions import Fraction
    import av
    colour = np.array([216, 162, 130], np.uint8)
    for name, codec, pix in [('a.avi', 'mjpeg', 'yuvj420p'), ('b.mkv', 'libx264', 'yuv444p'),
                             ('c.mp4', 'libx264', 'yuv420p')]:
        with av.open(str(tmp_path / name), 'w') as c:
            stream = c.add_stream(codec, rate=25)
            stream.height, stream.width, stream.pix_fmt = 48, 64, pix
            for i in range(4):
                image = av.VideoFrame.from_ndarray(np.broadcast_to(colour, (48, 64, 3)).copy(), format='rgb24')
                image.pts, image.time_base = i, Fraction(1, 25)
                c.mux(stream.encode(image))
            c.mux(stream.encode())
        clip, _ = VideoLoader(planar=True)(tmp_path / name, [0, 1, 2])
        out = st_compose_resize(clip)
        assert (out[:, :, 8, 8].float().mean(1) - torch.tensor(colour).float()).abs().max() < 6, name


def st_compose_resize(clip):
    import spatial_transforms as st
    from spatial_transforms import is_encoded
    return st.Compose([st.Resize(32)])(clip if is_encoded(clip) else clip.transpose(0, 1))


def test_merged_files_with_the_same_name_get_distinct_prefixes(tmp_path):
    for name in ('k', 'm'):
        write_jpg_folder(tmp_path / name / 'run' / f'{name}1', moving_frames(5))
    anns = [write_annotation(tmp_path / name / 'train.json', ['run'], {f'{name}1': entry('training', 'run', (1, 6))})
            for name in ('k', 'm')]
    videos = load_video_list(anns, [tmp_path / 'k', tmp_path / 'm'], 'training')
    assert videos.labels == ['k/train:run', 'm/train:run']
