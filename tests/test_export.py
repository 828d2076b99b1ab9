"""Export (issue 16.2): every family to ONNX with a dynamic batch, checked against PyTorch; .pt2;
metadata read back; a model the exporter cannot handle is a one-line error naming its module."""
import json

import pytest
import torch
import torch.nn as nn

from preprocessing import Preprocessing
from models import MODEL_DEPTHS, frame_nets, generate_model
from models.densenet import DENSENET_CONFIGS
from models.checkpoint import save_checkpoint
from models.export import ExportError, export_metadata, export_model, random_clip, read_metadata, run_onnx
from tests.conftest import randomize_bn_stats, tiny_resnet_trunk
from util_scripts import export_model as export_cli

NARROW = dict(resnet_widen_factor=0.25)
TINY = {  # family -> (model options, frames); 32-pixel clips
    'resnet': (dict(model_depth=10, **NARROW), 8),
    'resnet2p1d': (dict(model_depth=10, **NARROW), 8),
    'preresnet': (dict(model_depth=10, **NARROW), 8),
    'wideresnet': (dict(model_depth=50, wide_resnet_k=1, **NARROW), 8),
    'resnext': (dict(model_depth=50, resnext_cardinality=4, **NARROW), 8),
    'densenet': (dict(model_depth=121), 16),  # four halvings of time; two layers per block (see SHORT_DENSENET)
    'i3d': (dict(), 8),
    'c3d': (dict(), 4),  # narrowed by the fixture below
    'lstm': (dict(model_depth=18), 4),  # eval mode: the last step's logits
    # RGB + flow clips; streams narrowed by the fixture below (5 snapshots of 2 flow frames in 6 frames)
    'two_stream': (dict(model_depth=18, n_input_channels=5, flow_frames=2), 4),
    'fused_two_stream': (dict(model_depth=18, n_input_channels=5, flow_frames=2), 6),
}
CLASSES = ['jump', 'wave', 'run']
TOLERANCE = 1e-4  # of the logits' scale: |logits| reach 100 in the tiny I3D with random BatchNorm statistics
SHORT_DENSENET = (2, 2, 2, 2)  # the same modules as DenseNet-121's (6, 12, 24, 16) blocks, exported in a third of the time


@pytest.fixture(autouse=True)
def short_densenet(monkeypatch, narrow_c3d):  # and C3D's layers at 4-8 channels, 32-unit fc6/fc7
    monkeypatch.setitem(DENSENET_CONFIGS, 121, SHORT_DENSENET)
    monkeypatch.setitem(frame_nets.BACKBONES, 18, tiny_resnet_trunk)  # 8-channel ResNet-shaped 2D networks


def tiny_checkpoint(family: str) -> dict:
    """A checkpoint dict (as ``load_checkpoint`` returns) of a tiny model of ``family``."""
    options, frames = TINY[family]
    options = dict(model=family, n_classes=len(CLASSES), **options)
    model = randomize_bn_stats(generate_model(**options))
    prep = Preprocessing(sample_size=32, sample_duration=frames, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))
    if options.get('n_input_channels') == 5:
        prep = Preprocessing(sample_size=32, sample_duration=frames, mean=(0.5, 0.4, 0.3, 0.5, 0.5),
                             std=(0.2, 0.25, 0.3, 0.5, 0.5), input_type='rgb_flow')
    return {'state_dict': model.state_dict(), 'model_options': options, 'class_names': CLASSES,
            'preprocessing': prep.to_dict(), 'arch': f'{family}-tiny', 'epoch': 7, 'model': model.eval()}


def test_every_family_of_the_zoo_is_covered():
    assert set(TINY) == set(MODEL_DEPTHS)


@pytest.mark.parametrize('family', list(TINY))
def test_every_family_exports_to_onnx_with_a_dynamic_batch_and_matches_pytorch(family, tmp_path):
    ckpt = tiny_checkpoint(family)
    metadata = export_metadata(ckpt, 'tiny.pth')
    out = tmp_path / f'{family}.onnx'
    result = export_model(ckpt['model'], out, metadata, trace_batch=2, check_batch=3)
    assert result.max_abs_diff <= TOLERANCE * max(1, result.max_abs_logit) and result.check_batch == 3
    channels = TINY[family][0].get('n_input_channels', 3)
    clip = random_clip((channels, TINY[family][1], 32, 32), 1, seed=5)  # batch 1 too
    with torch.no_grad():
        expected = ckpt['model'](clip)
    assert (run_onnx(out, clip) - expected).abs().max() <= TOLERANCE * max(1, expected.abs().max())
    back = read_metadata(out)
    assert back['class_names'] == CLASSES and back['epoch'] == 7
    assert back['preprocessing'] == ckpt['preprocessing']
    assert back['input']['shape'] == ['batch', channels, TINY[family][1], 32, 32]
    assert list(tmp_path.iterdir()) == [out]  # no temp file left


def test_pt2_export_is_checked_and_records_the_same_metadata(tmp_path):
    ckpt = tiny_checkpoint('resnet')
    metadata = export_metadata(ckpt, 'tiny.pth')
    result = export_model(ckpt['model'], tmp_path / 'm.pt2', metadata, trace_batch=2, check_batch=1)
    assert result.max_abs_diff <= 1e-5 and result.checked_with == 'torch.export.load'
    program = torch.export.load(str(tmp_path / 'm.pt2')).module()
    clip = random_clip((3, 8, 32, 32), 4, seed=2)
    with torch.no_grad():
        assert torch.allclose(program(clip), ckpt['model'](clip), atol=1e-5)
    assert read_metadata(tmp_path / 'm.pt2') == json.loads(json.dumps(metadata))


@pytest.mark.parametrize('input_type, channels', [('rgb', 3), ('flow', 2), ('rgb_flow', 5)])
def test_metadata_without_recorded_channels_takes_them_from_the_input_type(input_type, channels):
    prep = Preprocessing(sample_size=32, sample_duration=4, mean=(0.5,) * channels, std=(0.5,) * channels,
                         input_type=input_type)
    ckpt = {'model_options': {'model': 'resnet', 'n_classes': 3}, 'class_names': CLASSES,
            'preprocessing': prep.to_dict()}
    assert export_metadata(ckpt, 'old.pth')['input']['shape'] == ['batch', channels, 4, 32, 32]


class Cummax(nn.Module):
    """An operator with no ONNX translation."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cummax(x, 1)[0]


class DataDependent(nn.Module):
    """Python control flow on a tensor's value: torch.export cannot trace it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2 if x.sum() > 0 else x


@pytest.mark.parametrize('odd, words', [
    (Cummax(), ["to ONNX", "aten.cummax", "module 'layer2.0.relu.1' (Cummax)"]),
    (DataDependent(), ["torch.export cannot trace", "module 'layer2.0.relu.1' (DataDependent)"]),
])
def test_a_model_the_exporter_cannot_handle_is_one_line_naming_the_module(odd, words, tmp_path):
    ckpt = tiny_checkpoint('resnet')
    model = ckpt['model']
    model.layer2[0].relu = nn.Sequential(nn.ReLU(), odd)
    with pytest.raises(ExportError) as error:
        export_model(model, tmp_path / 'm.onnx', export_metadata(ckpt, 'tiny.pth'))
    message = str(error.value)
    assert '\n' not in message and all(w in message for w in words), message
    assert list(tmp_path.iterdir()) == []


def saved(tmp_path, family='resnet'):
    ckpt = tiny_checkpoint(family)
    return save_checkpoint(tmp_path / 'save_7.pth', ckpt['model'], ckpt['model_options'], epoch=7,
                           class_names=CLASSES, preprocessing=ckpt['preprocessing'])


def test_the_command_reports_the_check_and_writes_the_file(tmp_path, capsys):
    assert export_cli.main([str(saved(tmp_path)), str(tmp_path / 'out' / 'm.onnx')]) == 0
    line = capsys.readouterr().out
    assert 'max |logits - PyTorch|' in line and 'ONNX Runtime' in line and 'batch 3 (traced at 2)' in line
    assert read_metadata(tmp_path / 'out' / 'm.onnx')['class_names'] == CLASSES


def test_the_command_names_the_failing_module_in_one_line_exit_2(tmp_path, capsys, monkeypatch):
    import models.checkpoint as checkpoint

    def with_cummax(**options):
        model = generate_model(**options)
        model.layer3[0].relu = nn.Sequential(nn.ReLU(), Cummax())
        return model
    path = saved(tmp_path)
    monkeypatch.setattr(checkpoint, 'generate_model', with_cummax)
    assert export_cli.main([str(path), str(tmp_path / 'm.onnx')]) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith('error: cannot export resnet-10 to ONNX')
    assert "module 'layer3.0.relu.1' (Cummax)" in err
    assert not (tmp_path / 'm.onnx').exists()


@pytest.mark.parametrize('argv, words', [
    (['missing.pth', 'm.onnx'], 'no such checkpoint file'),
    (['save_7.pth', 'm.tflite'], 'must end in .onnx'),
    (['save_7.pth', 'm.onnx', '--check_batch', '2'], 'must differ from the trace batch'),
])
def test_usage_mistakes_are_one_line(argv, words, tmp_path, capsys, monkeypatch):
    saved(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert export_cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and words in err, err


def off_by_one(monkeypatch, suffix: str) -> None:
    """Make the loaded-back model's logits differ from PyTorch's by exactly 1."""
    import models.export as export
    runner = 'run_onnx' if suffix == '.onnx' else 'run_pt2'
    real = getattr(export, runner)
    monkeypatch.setattr(export, runner, lambda path, clip: real(path, clip) + 1)


@pytest.mark.parametrize('suffix', ['.onnx', '.pt2'])
def test_logits_beyond_the_tolerance_write_nothing(suffix, tmp_path, monkeypatch):
    ckpt = tiny_checkpoint('resnet')
    off_by_one(monkeypatch, suffix)
    with pytest.raises(ExportError) as error:
        export_model(ckpt['model'], tmp_path / f'm{suffix}', export_metadata(ckpt, 'tiny.pth'))
    message = str(error.value)
    assert '\n' not in message and 'differs from PyTorch by up to 1 ' in message, message
    assert message.endswith(': not written'), message
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temp


def test_the_command_exits_2_when_the_check_fails_and_passes_within_tolerance(tmp_path, capsys, monkeypatch):
    path = saved(tmp_path)
    off_by_one(monkeypatch, '.pt2')
    assert export_cli.main([str(path), str(tmp_path / 'out' / 'm.pt2')]) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith('error: the exported model differs from PyTorch'), err
    assert not (tmp_path / 'out').exists() or list((tmp_path / 'out').iterdir()) == []
    # the same difference within --tolerance (relative to the largest |logit|, at least 1) is written
    assert export_cli.main([str(path), str(tmp_path / 'out' / 'm.pt2'), '--tolerance', '1.01']) == 0
    assert 'max |logits - PyTorch| = 1 ' in capsys.readouterr().out
    assert [p.name for p in (tmp_path / 'out').iterdir()] == ['m.pt2']


@pytest.mark.parametrize('views', [{}, {'inference_crop': 'three', 'inference_flip': True, 'inference_clips': 2,
                                        'sample_t_stride': 2}])
def test_the_onnx_predictor_beside_the_export_prints_what_inference_py_prints(views, tmp_path, capsys):
    import subprocess
    import sys

    import inference
    from tests.video_fixtures import moving_frames, write_video
    torch.manual_seed(3)
    cfg = dict(model='resnet', model_depth=10, n_classes=4, resnet_widen_factor=0.25)
    prep = Preprocessing(sample_size=32, sample_duration=4, mean=(0.45, 0.4, 0.4), std=(0.25, 0.25, 0.25), **views)
    checkpoint = save_checkpoint(tmp_path / 'm.pth', randomize_bn_stats(generate_model(**cfg)).eval(), cfg,
                                 class_names=['cook', 'dance', 'swim', 'run'], preprocessing=prep.to_dict())
    assert export_cli.main([str(checkpoint), str(tmp_path / 'model.onnx')]) == 0
    assert 'model.preprocessing.json (its preprocessing) and model_predict.py' in capsys.readouterr().out
    video = write_video(tmp_path / 'v.mp4', moving_frames(30, 48, 64))
    done = subprocess.run([sys.executable, str(tmp_path / 'model_predict.py'), str(video), '--topk', '0'],
                          capture_output=True, text=True, cwd=tmp_path, env={'PATH': '/usr/bin:/bin'})
    assert done.returncode == 0, done.stderr
    assert inference.predict([str(video), '--resume_path', str(checkpoint), '--no_cuda', '--precision', 'fp32',
                              '--output_topk', '0']) == 0
    ours = capsys.readouterr().out.strip().splitlines()[0]

    def ranked(line):
        return [(pair.rsplit(' ', 1)[0], float(pair.rsplit(' ', 1)[1])) for pair in line.split(': ', 1)[1].split(', ')]
    theirs = ranked(done.stdout.strip())
    assert done.stdout.startswith(f'{video}: ')
    assert [label for label, _ in theirs] == [label for label, _ in ranked(ours)]
    assert [score for _, score in theirs] == pytest.approx([score for _, score in ranked(ours)], abs=0.02)
