"""remove_dataparallel, model_summary and the model flags of opts.py."""
import argparse
import collections
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from models import MODEL_DEFAULTS, generate_model, load_model
from models.summary import summarize
from opts import add_model_arguments, model_options
from util_scripts import model_summary, remove_dataparallel

TINY = dict(model='resnet', model_depth=10, n_classes=5)


def _prefixed_checkpoint(path):
    model = generate_model(**TINY)
    sd = collections.OrderedDict(('module.' + k, v) for k, v in model.state_dict().items())
    torch.save({'epoch': 3, 'arch': 'resnet-10', 'state_dict': sd, 'optimizer': {'lr': 0.1}}, path)
    return model


def test_remove_dataparallel_strips_in_place_and_keeps_other_keys(tmp_path):
    model = _prefixed_checkpoint(tmp_path / 'dp.pth')
    assert remove_dataparallel.main([str(tmp_path / 'dp.pth')]) == 0
    ckpt = torch.load(tmp_path / 'dp.pth', weights_only=True)
    assert list(ckpt['state_dict']) == list(model.state_dict())
    assert ckpt['epoch'] == 3 and ckpt['optimizer'] == {'lr': 0.1} and ckpt['arch'] == 'resnet-10'


def test_remove_dataparallel_leaves_clean_files_intact(tmp_path, capsys):
    torch.save({'state_dict': generate_model(**TINY).state_dict()}, tmp_path / 'clean.pth')
    before = (tmp_path / 'clean.pth').read_bytes()
    mtime = (tmp_path / 'clean.pth').stat().st_mtime_ns
    assert remove_dataparallel.main([str(tmp_path / 'clean.pth')]) == 0
    assert 'left unchanged' in capsys.readouterr().out
    assert (tmp_path / 'clean.pth').read_bytes() == before
    assert (tmp_path / 'clean.pth').stat().st_mtime_ns == mtime


def test_remove_dataparallel_to_another_file_and_bare_state_dicts(tmp_path):
    model = generate_model(**TINY)
    torch.save({'module.' + k: v for k, v in model.state_dict().items()}, tmp_path / 'bare.pth')
    before = (tmp_path / 'bare.pth').read_bytes()
    assert remove_dataparallel.main([str(tmp_path / 'bare.pth'), '--dst_file_path',
                                     str(tmp_path / 'out.pth')]) == 0
    assert (tmp_path / 'bare.pth').read_bytes() == before
    assert list(torch.load(tmp_path / 'out.pth', weights_only=True)) == list(model.state_dict())
    load_model(tmp_path / 'out.pth', **TINY)


def test_remove_dataparallel_bad_file_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / 'junk.pth').write_text('junk')
    assert remove_dataparallel.main([str(tmp_path / 'junk.pth')]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ') and 'junk.pth' in err and '\n' not in err


def test_model_summary_reports_parameters_and_gmacs(capsys):
    assert model_summary.main(['--model', 'resnet', '--model_depth', '18']) == 0
    out = capsys.readouterr().out
    assert '33,409,104 parameters' in out and '8.31 GMACs per clip' in out
    s = summarize(dict(MODEL_DEFAULTS, model='resnet2p1d', model_depth=18))
    assert s['params'] == 33_421_164 and round(s['gmacs'], 2) == 8.48
    # torchvision r3d_18's shape: 40.70 GMACs without the max pool and with a 3-frame stem
    s = summarize(dict(MODEL_DEFAULTS, conv1_t_size=3, no_max_pool=True))
    assert round(s['gmacs'], 2) == 40.70
    s = summarize(dict(MODEL_DEFAULTS, model='densenet', model_depth=121), 64, 16)
    assert s['output_shape'] == (1, 400) and s['input_shape'] == (1, 3, 16, 64, 64)


def test_model_summary_bad_options_are_one_line_errors(capsys):
    assert model_summary.main(['--model', 'resnext', '--model_depth', '18']) == 2
    assert capsys.readouterr().err.strip() == ('error: resnext has no depth 18: '
                                               'choose one of 50, 101, 152, 200')
    # DenseNet halves time in every transition: 8 frames are too few with the max pool
    assert model_summary.main(['--model', 'densenet', '--model_depth', '121',
                               '--sample_duration', '8', '--sample_size', '64']) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: a 3x8x64x64 clip is too small for densenet-121') and '\n' not in err


def test_model_flags_have_the_original_defaults_and_feed_generate_model():
    parser = add_model_arguments(argparse.ArgumentParser())
    args = parser.parse_args([])
    assert model_options(args) == MODEL_DEFAULTS
    assert (args.model, args.model_depth, args.n_classes, args.conv1_t_size, args.conv1_t_stride,
            args.no_max_pool, args.resnet_shortcut, args.resnet_widen_factor, args.wide_resnet_k,
            args.resnext_cardinality) == ('resnet', 18, 400, 7, 1, False, 'B', 1.0, 2, 32)
    args = parser.parse_args('--model resnet2p1d --model_depth 10 --n_classes 3 --conv1_t_size 3 '
                             '--no_max_pool --resnet_shortcut A'.split())
    model = generate_model(**model_options(args))
    assert model.conv1_t.weight.shape[2] == 3 and model.fc.out_features == 3


@pytest.mark.parametrize('module', ['model_summary', 'remove_dataparallel', 'convert_torchvision_weights'])
def test_tools_run_as_modules(module):
    done = subprocess.run([sys.executable, '-m', f'util_scripts.{module}', '--help'],
                          capture_output=True, text=True)
    assert done.returncode == 0 and 'usage:' in done.stdout


ALL_TOOLS = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / 'util_scripts').glob('*.py')
                   if 'def main(' in p.read_text())  # video_conversion is the converters' shared parsing


@pytest.mark.parametrize('module', ALL_TOOLS)
def test_every_tool_keeps_its_command_line(module, capsys):
    """The original's commands (python -m util_scripts.NAME) still answer --help from their thin front ends."""
    import importlib
    tool = importlib.import_module(f'util_scripts.{module}')
    with pytest.raises(SystemExit) as done:
        tool.main(['--help'])
    assert done.value.code == 0 and 'usage: python -m util_scripts.' in capsys.readouterr().out


def test_the_original_imports_still_work():
    from models import generate_model, resnet
    from models.resnet import ResNet
    assert isinstance(generate_model(model='resnet', model_depth=10, n_classes=3), ResNet)
    assert isinstance(resnet.resnet(10, n_classes=3), ResNet)
