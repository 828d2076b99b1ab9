"""Issue 17: --input_type rgb_flow clips: RGB and flow of the same frames, transformed alike (a flip
reverses u only), 5-channel normalisation, mismatched flow files reported, and main.py on them."""
import warnings

import numpy as np
import pytest
import torch
import torchvision

import inference
import main as main_module
import spatial_transforms as st
from datasets import build, collate
from common.faults import DataFault
from datasets.decode import VideoReadError
from datasets.paired import PairedLoader
from models import load_checkpoint
from opts import parse_opts
from tests.video_fixtures import entry, make_dataset, write_annotation, write_hdf5

H, W = 48, 64
RAMP = (40 + 3 * np.arange(W)).astype(np.uint8)  # 40 ... 229, left to right


def frames(n, rgb, u, v):
    """``n`` frames; ``rgb``, ``u``, ``v`` map a frame index to an H x W grey image."""
    return ([np.repeat(rgb(t)[..., None], 3, -1) for t in range(n)],
            [np.stack([u(t), v(t), v(t)], -1) for t in range(n)])


def constant(value):
    return np.full((H, W), value, np.uint8)


def ramp(_t):
    return np.broadcast_to(RAMP, (H, W)).copy()


# 'index': every channel encodes the frame index; 'ramp': RGB and v share one left-to-right ramp, u is constant
VIDEOS = {
    'index': frames(12, lambda t: constant(20 + 10 * t), lambda t: constant(30 + 10 * t),
                    lambda t: constant(200 - 10 * t)),
    'ramp': frames(12, ramp, lambda t: constant(100), ramp),
}


@pytest.fixture(scope='module')
def paired(tmp_path_factory):
    """RGB files under rgb/, flow files of the same names under flow/, one annotation file; two extra
    videos whose flow does not fit (too few frames, another size)."""
    root = tmp_path_factory.mktemp('paired')
    videos = {}
    for name, (rgb, flow) in VIDEOS.items():
        write_hdf5(root / 'rgb' / 'a' / f'{name}.hdf5', rgb)
        write_hdf5(root / 'flow' / 'a' / f'{name}.hdf5', flow, ('video_u', 'video_v'))
        videos[name] = entry('training', 'a', (0, 12))
    rgb, flow = VIDEOS['index']
    write_hdf5(root / 'rgb' / 'a' / 'short.hdf5', rgb)
    write_hdf5(root / 'flow' / 'a' / 'short.hdf5', flow[:11], ('video_u', 'video_v'))
    write_hdf5(root / 'rgb' / 'a' / 'small.hdf5', rgb)
    write_hdf5(root / 'flow' / 'a' / 'small.hdf5', [f[::2, ::2] for f in flow], ('video_u', 'video_v'))
    for name in ('short', 'small'):
        videos[name] = entry('validation', 'a', (0, 12))
    ann = write_annotation(root / 'ann.json', ['a'], videos)
    return root, ann


def options(paired, *extra):
    root, ann = paired
    return parse_opts(['--video_path', str(root / 'rgb'), '--flow_path', str(root / 'flow'), '--annotation_path',
                       str(ann), '--file_type', 'hdf5', '--input_type', 'rgb_flow', '--sample_size', '32',
                       '--sample_duration', '4', '--n_classes', '1', '--train_crop_min_scale', '0.3', *extra])


def sample_of(data, name, seed):
    index = [r.video_id for r in data.records].index(name)
    return data[(index, seed)]


def test_paired_clips_hold_rgb_and_flow_of_the_same_frames(paired):
    data = build.get_training_data(options(paired))
    for seed in range(12):
        sample = sample_of(data, 'index', seed)
        clip = sample['clip'].float().mean((2, 3))  # 5 x T: each frame is constant
        assert sample['clip'].shape == (5, 4, 32, 32) and sample['clip'].dtype == torch.uint8
        start = sample['segment'][0]
        frames_rgb = ((clip[0] - 20) / 10).round()
        frames_v = ((200 - clip[4]) / 10).round()
        frames_u = (((clip[3] - 30) / 10).round(), ((255 - clip[3] - 30) / 10).round())  # as is, or flipped
        expected = torch.arange(start, start + 4).float()
        assert torch.equal(frames_rgb, expected) and torch.equal(frames_v, expected)
        assert torch.equal(frames_u[0], expected) or torch.equal(frames_u[1], expected)


def test_crops_resizes_and_flips_are_the_same_for_rgb_and_flow(paired):
    data = build.get_training_data(options(paired))
    flips = set()
    for seed in range(16):
        clip = sample_of(data, 'ramp', seed)['clip'].float()
        rgb, u, v = clip[0], clip[3], clip[4]
        assert (rgb - v).abs().max() <= 4  # one geometry for both
        flipped = bool(rgb[0, 0, 0] > rgb[0, 0, -1])
        assert (u - (155 if flipped else 100)).abs().max() <= 2  # the flip reverses u ...
        assert (clip[1] - rgb).abs().max() <= 2 and (clip[2] - rgb).abs().max() <= 2  # ... and no other channel
        flips.add(flipped)
    assert flips == {True, False}


def test_hflip_reverses_u_only():
    clip = torch.arange(5 * 2 * 2 * 3, dtype=torch.uint8).view(5, 2, 2, 3)
    out = st.hflip(clip, flow=True)
    assert torch.equal(out[[0, 1, 2, 4]], clip[[0, 1, 2, 4]].flip(-1))
    assert torch.equal(out[3], 255 - clip[3].flip(-1))
    assert torch.equal(st.hflip(clip[3:], flow=True), out[3:])  # a flow clip alone: the same rule
    assert torch.equal(st.hflip(clip[:3]), clip[:3].flip(-1))


def test_five_channel_normalisation_and_option_errors(paired, capsys):
    opt = options(paired)
    assert opt.n_input_channels == 5
    assert opt.mean == pytest.approx([0.4345, 0.4051, 0.3775, 0.5, 0.5])
    assert opt.std == pytest.approx([0.2768, 0.2713, 0.2737, 0.5, 0.5])
    batch = torch.full((1, 5, 1, 1, 1), 128, dtype=torch.uint8)
    assert build.get_normalization(opt)(batch)[0, 3:].flatten().tolist() == pytest.approx([1 / 255] * 2, abs=1e-6)
    base = ['--video_path', 'v', '--annotation_path', 'a.json', '--file_type', 'hdf5', '--sample_duration', '4']
    paired_ts = ['--input_type', 'rgb_flow', '--flow_path', 'f', '--model', 'two_stream', '--model_depth', '22']
    for argv, words in [(['--input_type', 'rgb_flow'], 'needs --flow_path'),
                        (['--input_type', 'rgb_flow', '--flow_path', 'f', '--file_type', 'jpg'], 'needs --file_type hdf5'),
                        (['--flow_path', 'f'], 'only read with --input_type rgb_flow'),
                        (['--model', 'two_stream', '--model_depth', '22'], 'add --input_type rgb_flow'),
                        (paired_ts, 'shorter than the 10 flow frames'),
                        (paired_ts + ['--flow_frames', '2', '--channels_last'], '--channels_last is a layout of 3D')]:
        with pytest.raises(SystemExit):
            parse_opts(base + argv)
        assert words in capsys.readouterr().err
    assert parse_opts(base + paired_ts + ['--flow_frames', '4']).n_input_channels == 5


def test_a_flow_file_that_does_not_fit_its_rgb_file_is_a_named_data_fault(paired):
    root, _ = paired
    loader = PairedLoader([(root / 'rgb', root / 'flow')])
    clip, bad = loader(root / 'rgb' / 'a' / 'index.hdf5', [0, 1, 1, 11])
    assert clip.shape == (4, 5, H, W) and bad == 0
    with pytest.raises(VideoReadError, match=r'flow/a/short.hdf5: 11 flow frames but .*rgb/a/short.hdf5 has 12'):
        loader(root / 'rgb' / 'a' / 'short.hdf5', [0, 1])
    with pytest.raises(VideoReadError, match=r'flow/a/small.hdf5: flow frames of 32x24 but .* has 64x48'):
        loader(root / 'rgb' / 'a' / 'small.hdf5', [0, 1])
    with pytest.raises(VideoReadError, match='flow file of .* not found'):
        PairedLoader([(root / 'rgb', root / 'nowhere')])(root / 'rgb' / 'a' / 'index.hdf5', [0])
    data = build.get_validation_data(options(paired))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        failed = [data[i] for i in range(len(data))]
    assert [s['failed'].split(': ')[0].split('/')[-1] for s in failed] == ['short.hdf5', 'small.hdf5']
    assert len([w for w in caught if issubclass(w.category, DataFault)]) == 2
    batch = collate(failed)  # counted with the other failed videos
    assert batch['clip'] is None and [v for v, _ in batch['failed']] == ['short', 'small']


@pytest.fixture(scope='module')
def tiny_dataset(tmp_path_factory):
    """make_dataset's tiny RGB hdf5 videos and flow files of the same names and frame counts."""
    root = tmp_path_factory.mktemp('rgbflow')
    ann = make_dataset(root / 'hdf5', 'hdf5', n_frames=(12, 10, 9, 11), n_train=2)
    for path in (root / 'hdf5').rglob('*.hdf5'):
        import h5py
        with h5py.File(path, 'r') as f:
            n = len(f['video'])
        rng = np.random.default_rng(n)
        flow = [rng.integers(90, 166, (H, W, 3), dtype=np.uint8) for _ in range(n)]
        write_hdf5(root / 'flow' / path.relative_to(root / 'hdf5'), flow, ('video_u', 'video_v'))
    return root, ann


def test_main_trains_and_infers_a_two_stream_model_on_rgb_flow_clips(tiny_dataset, tmp_path, capsys):
    root, ann = tiny_dataset
    result = tmp_path / 'run'
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / 'resnet18.pth')  # as torchvision's ImageNet file
    argv = ['--video_path', str(root / 'hdf5'), '--flow_path', str(root / 'flow'), '--annotation_path', str(ann),
            '--result_path', str(result), '--file_type', 'hdf5', '--input_type', 'rgb_flow', '--model', 'two_stream',
            '--model_depth', '18', '--flow_frames', '2', '--n_classes', '2', '--sample_size', '32',
            '--sample_duration', '4', '--batch_size', '2', '--n_threads', '0', '--no_progress', '--n_epochs', '1',
            '--learning_rate', '0.01', '--n_val_samples', '1', '--inference', '--inference_flip',
            '--ft_begin_module', 'layer4', '--backbone_weights', str(tmp_path / 'resnet18.pth')]
    assert main_module.main(argv) == 0
    assert '2D network initialised from' in capsys.readouterr().out
    ckpt = load_checkpoint(result / 'save_latest.pth')
    assert ckpt['arch'] == 'two_stream-18' and ckpt['model_options']['flow_frames'] == 2
    assert ckpt['preprocessing']['input_type'] == 'rgb_flow' and len(ckpt['preprocessing']['mean']) == 5
    assert ckpt['ft_begin_module'] == 'layer4'
    assert (result / 'val.json').is_file() and (result / 'val.log').is_file()
    # video files give RGB frames only: inference.py refuses the model in one line
    assert inference.predict(['--resume_path', str(result / 'save_latest.pth'), str(tmp_path / 'v.mp4')]) == 2
    assert 'a --input_type rgb_flow model: run main.py --inference' in capsys.readouterr().err


@pytest.mark.parametrize('broken', ['rgb', 'flow'])
def test_a_frame_unreadable_in_one_stream_is_replaced_in_both_from_one_neighbour(tmp_path, broken):
    """RGB and flow stay in step: a frame bad in either is a bad 5-channel frame, replaced whole."""
    import h5py
    rgb, flow = VIDEOS['index']
    write_hdf5(tmp_path / 'rgb' / 'a' / 'v.hdf5', rgb)
    write_hdf5(tmp_path / 'flow' / 'a' / 'v.hdf5', flow, ('video_u', 'video_v'))
    with h5py.File(tmp_path / broken / 'a' / 'v.hdf5', 'r+') as f:
        f['video' if broken == 'rgb' else 'video_u'][5] = np.frombuffer(b'not a jpeg', np.uint8)
    clip, bad = PairedLoader([(tmp_path / 'rgb', tmp_path / 'flow')])(tmp_path / 'rgb' / 'a' / 'v.hdf5', [3, 4, 5, 6])
    level = clip.float().mean((2, 3))  # T x 5: every frame is constant
    from_rgb = ((level[:, 0] - 20) / 10).round()
    from_v = ((200 - level[:, 4]) / 10).round()
    from_u = ((level[:, 3] - 30) / 10).round()
    assert bad == 1 and torch.equal(from_rgb, from_v) and torch.equal(from_rgb, from_u)
    assert from_rgb.tolist()[:2] == [3, 4] and from_rgb[2] in (4, 6) and from_rgb[3] == 6


def test_check_dataset_checks_each_rgb_files_flow_file(paired, capsys):
    from util_scripts import check_dataset
    root, ann = paired
    argv = [str(ann), str(root / 'rgb'), '--file_type', 'hdf5', '--sample_duration', '4', '--n_jobs', '1']
    assert check_dataset.main(argv + ['--input_type', 'rgb_flow', '--flow_path', str(root / 'flow')]) == 1
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1].endswith('2 with problems that lose data; 2 flow mismatch')
    assert '11 flow frames but' in out and 'flow frames of 32x24 but the RGB file has 64x48' in out
    assert check_dataset.main(argv) == 0  # the RGB files alone are fine
    capsys.readouterr()
    for extra, words in [(['--input_type', 'rgb_flow'], 'give --file_type hdf5 and --flow_path'),
                         (['--flow_path', str(root / 'flow')], 'only read with --input_type rgb_flow'),
                         (['--input_type', 'rgb_flow', '--flow_path', str(root / 'none')], 'flow root not found')]:
        assert check_dataset.main(argv + extra) == 2
        assert words in capsys.readouterr().err
