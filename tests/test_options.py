"""Numeric options are checked as they are parsed: a one-line error naming the flag, exit code 2."""
import subprocess
import sys
from pathlib import Path

import pytest

import opts
from common.cli import float_in, int_in

ROOT = Path(__file__).resolve().parents[1]

BAD = [
    ('batch_size', '0'), ('batch_size', '-3'), ('batch_size', '2.5'), ('batch_size', 'many'), ('batch_size', ''),
    ('n_threads', '-1'), ('sample_size', '0'), ('sample_duration', '0'), ('sample_t_stride', '0'),
    ('n_val_samples', '0'), ('inference_stride', '-1'), ('learning_rate', '-0.1'),
    ('learning_rate', 'nan'), ('learning_rate', 'inf'), ('momentum', '-0.5'), ('momentum', '1'),
    ('dampening', '1.5'), ('weight_decay', '-1e-4'), ('weight_decay', 'nan'), ('n_epochs', '0'),
    ('checkpoint', '-1'), ('inference_batch_size', '-2'), ('accumulate_steps', '0'), ('warmup_epochs', '-1'),
    ('warmup_epochs', 'inf'), ('label_smoothing', '1'), ('label_smoothing', '-0.1'), ('class_fraction', '0'),
    ('class_fraction', '1.01'), ('instance_fraction', 'nan'), ('train_crop_min_scale', '0'),
    ('train_crop_min_ratio', '2'), ('value_scale', '0'), ('n_classes', '0'), ('n_pretrain_classes', '-1'),
    ('model_depth', '0'), ('resnet_widen_factor', '0'), ('resnet_widen_factor', '-inf'), ('conv1_t_size', '0'),
    ('conv1_t_stride', '0'), ('wide_resnet_k', '0'), ('resnext_cardinality', '0'), ('n_input_channels', '0'),
    ('r2p1d_stem_mid_planes', '-1'), ('plateau_patience', '-1'), ('multistep_milestones', '0'),
    ('dist_timeout', '0'), ('world_size', '0'), ('world_size', '-2'), ('puzzle_jitter', '-0.25'),
    ('puzzle_jitter', 'nan'), ('output_topk', 'x'), ('manual_seed', '-1'), ('manual_seed', str(2 ** 32)),
]


def parse_error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        opts.parse_opts(argv)
    assert exit_.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize('flag,value', BAD)
def test_a_bad_number_is_a_one_line_error_naming_the_flag(flag, value, capsys):
    err = parse_error([f'--{flag}={value}'], capsys)
    assert err.count('\n') == 1 and err.startswith(f'error: --{flag} must be '), err
    assert err.rstrip().endswith(f'not {value or repr(value)}')


def test_the_message_wording():
    assert int_in(1).__name__ == 'integer'
    for parse, text, message in [(int_in(1), '0', 'must be an integer >= 1, not 0'),
                                 (float_in(0, 1, open_lo=True), 'nan', 'must be a number in (0, 1], not nan'),
                                 (int_in(1, also=(-1,)), '0', 'must be an integer >= 1 or -1, not 0'),
                                 (float_in(hi=2, open_hi=True), '2', 'must be a number < 2, not 2')]:
        with pytest.raises(Exception) as e:
            parse(text)
        assert str(e.value) == message


def test_edge_values_parse():
    opt = opts.parse_opts(['--n_threads', '0', '--inference_stride', '0', '--checkpoint', '0', '--momentum', '0',
                           '--class_fraction', '1', '--label_smoothing', '0.99', '--world_size', '-1',
                           '--output_topk', '-1', '--manual_seed', str(2 ** 32 - 1), '--model', 'i3d',
                           '--model_depth', '50', '--learning_rate', '0'])
    assert (opt.n_threads, opt.inference_stride, opt.world_size, opt.output_topk) == (0, 0, -1, -1)
    assert opt.arch == 'i3d-22' and opt.learning_rate == 0  # 0: a frozen run, as test_merged_pretraining does


def test_a_depth_outside_the_family_is_refused(capsys):
    err = parse_error(['--model', 'densenet', '--model_depth', '50'], capsys)
    assert err == 'error: --model_depth must be one of 121, 169, 201, 264 for --model densenet, not 50\n'


def test_every_numeric_flag_is_range_checked_and_every_default_passes_its_check():
    checked = 0
    for action in opts.build_parser()._actions:
        assert action.type not in (int, float), f'{action.option_strings} has no range check'
        if callable(action.type) and action.type.__name__ in ('integer', 'number'):
            defaults = action.default if isinstance(action.default, list) else [action.default]
            assert [action.type(str(d)) for d in defaults] == defaults, action.option_strings
            checked += 1
    assert checked >= 35
    opts.parse_opts([])


def test_main_exits_2_with_one_line():
    done = subprocess.run([sys.executable, 'main.py', '--batch_size', '0'], cwd=ROOT, capture_output=True, text=True)
    assert (done.returncode, done.stderr) == (2, 'error: --batch_size must be an integer >= 1, not 0\n')


def test_other_usage_mistakes_are_one_line_too(capsys):
    err = parse_error(['--model', 'vgg'], capsys)
    assert err.startswith("error: --model: invalid choice 'vgg' (choose from resnet,")
    assert parse_error(['--batch_size'], capsys) == 'error: --batch_size: expected one argument\n'
    assert parse_error(['--keep_checkpoints', '-1'], capsys).startswith('error: --keep_checkpoints must be')
    assert parse_error(['--multigrid_bn_batches', 'x'], capsys) == \
        'error: --multigrid_bn_batches must be an integer >= 0 or auto, not x\n'


def test_a_misspelled_choice_names_the_closest_one(capsys):
    choices = ', '.join(opts.MODEL_DEPTHS)  # every family, in the registry's order
    assert parse_error(['--model', 'resnt'], capsys) == \
        f"error: --model: invalid choice 'resnt' (did you mean 'resnet'? choose from {choices})\n"
    assert "did you mean 'cubic_puzzle'? choose from '', cubic_puzzle)" in parse_error(['--pretext', 'cubic'], capsys)
    assert parse_error(['--file_type', 'mp4'], capsys) == \
        "error: --file_type: invalid choice 'mp4' (choose from jpg, hdf5, video, shards)\n"
    assert parse_error(['--lerning_rate', '0.1'], capsys) == \
        'error: unrecognized arguments: --lerning_rate 0.1 (did you mean --learning_rate?)\n'


def test_every_tool_gets_the_suggestion(capsys):
    from common.cli import parser
    from datasets.formats.arguments import add_file_type
    tool = parser('folder_json', 'Build an annotation file')
    add_file_type(tool, positional=True)
    with pytest.raises(SystemExit):
        tool.parse_args(['jgp'])
    err = capsys.readouterr().err
    assert err == "error: FILE_TYPE: invalid choice 'jgp' (did you mean 'jpg'? choose from jpg, hdf5, video)\n"
    done = subprocess.run([sys.executable, 'main.py', '--model', 'resnt'], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count('\n') == 1 and "did you mean 'resnet'" in done.stderr
