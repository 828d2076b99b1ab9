"""Re-run from a record (issue 16.4): ``main.py --config RESULT/opts.json [flags]`` starts from a run's
recorded options, flags override them, and a bad record is a one-line error with exit code 2."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from preprocessing import Preprocessing
from models import load_checkpoint
from opts import RECORD_ONLY, build_parser, model_options, parse_opts, run_record
from tests.video_fixtures import make_dataset

ROOT = Path(__file__).resolve().parents[1]
FLAGS = ['--video_path', 'a', 'b', '--annotation_path', 'a.json', 'b.json', '--result_path', 'out',
         '--model', 'resnet2p1d', '--model_depth', '34', '--resnet_widen_factor', '0.5', '--sample_size', '64',
         '--multistep_milestones', '3', '7', '--no_hflip', '--learning_rate', '0.02', '--output_topk', '-1',
         '--ft_begin_module', 'layer4', '--train_crop', 'center', '--warmup_epochs', '1.5']


def recorded(tmp_path: Path, argv: list) -> Path:
    """The opts.json a run with ``argv`` writes (``run_record``, as ``main.run`` calls it)."""
    opt = parse_opts(argv)
    model = dict(model_options(opt), n_classes=getattr(opt, 'n_finetune_classes', opt.n_classes))
    record = run_record(opt, model, Preprocessing.from_opts(opt).to_dict(), ft_begin_module=opt.ft_begin_module)
    path = tmp_path / 'opts.json'
    path.write_text(json.dumps(record))
    return path


def inputs(opt) -> dict:
    return {k: v for k, v in vars(opt).items() if k not in ('command_line', 'config', 'root_path')}


@pytest.mark.parametrize('argv', [
    FLAGS,
    FLAGS + ['--pretrain_path', 'pre.pth', '--n_pretrain_classes', '5', '--n_classes', '3'],  # fine-tuning
    FLAGS + ['--root_path', 'root'],  # recorded paths already include it
], ids=['paths-lists-switches', 'fine-tuning', 'root_path'])
def test_a_record_reproduces_the_options_of_its_run(argv, tmp_path):
    again = parse_opts(['--config', str(recorded(tmp_path, argv))])
    assert inputs(again) == inputs(parse_opts(argv))
    assert again.config == tmp_path / 'opts.json' and again.root_path is None  # the paths include it


def test_flags_override_the_record_wherever_they_stand(tmp_path):
    path = str(recorded(tmp_path, FLAGS))
    for argv in (['--config', path, '--sample_size', '32', '--video_path', 'c'],
                 ['--sample_size', '32', '--config', path, '--video_path', 'c']):
        opt = parse_opts(argv)
        assert opt.sample_size == 32 and opt.video_path == [Path('c')] and opt.model == 'resnet2p1d'


def test_the_ignored_keys_are_the_derived_ones(tmp_path):
    record = json.loads(recorded(tmp_path, FLAGS).read_text())
    flags = {a.dest for a in build_parser()._actions}
    assert set(record) - flags <= set(RECORD_ONLY)
    assert set(RECORD_ONLY) & flags == {'root_path', 'config', 'resume_path'}


@pytest.mark.parametrize('content, words', [
    ({'bach_size': 3}, "unknown key 'bach_size' (did you mean 'batch_size'?)"),
    ({'batch_size': 'eight'}, 'batch_size must be an integer >= 1, not eight'),
    ({'batch_size': 2.5}, 'batch_size must be an integer >= 1, not 2.5'),
    ({'no_val': 'yes'}, 'no_val must be true or false, not "yes"'),
    ({'video_path': 'v'}, 'video_path must be a list of paths (strings), not "v"'),
    ({'result_path': 3}, 'result_path must be a path (a string), not 3'),
    ({'model': 'resnt'}, "model: invalid choice 'resnt' (did you mean 'resnet'?"),
    ({'learning_rate': -1}, 'learning_rate must be a number >= 0, not -1'),
    ([1, 2], 'not a JSON object of options but a list'),
    (None, 'no such options file'),
])
def test_a_bad_record_is_a_one_line_error_exit_2(content, words, tmp_path, capsys):
    path = tmp_path / 'opts.json'
    if content is not None:
        path.write_text(json.dumps(content))
    with pytest.raises(SystemExit) as stop:
        parse_opts(['--config', str(path)])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count('\n') == 1 and err.startswith(f'error: {path}: ') and words in err, err


def test_a_run_continues_from_its_record(tmp_path):
    ann = make_dataset(tmp_path / 'jpg', 'jpg', n_frames=(12, 20, 9, 16), n_train=2)
    result = tmp_path / 'result'
    first = ['--video_path', str(tmp_path / 'jpg'), '--annotation_path', str(ann), '--result_path', str(result),
             '--n_classes', '2', '--model', 'resnet', '--model_depth', '10', '--resnet_widen_factor', '0.25',
             '--sample_size', '32', '--sample_duration', '8', '--batch_size', '2', '--n_threads', '0',
             '--n_epochs', '1', '--checkpoint', '1', '--learning_rate', '0.01', '--n_val_samples', '1',
             '--no_progress']
    env = dict(os.environ, OMP_NUM_THREADS='1')
    for argv in (first, ['--config', str(result / 'opts.json'), '--n_epochs', '2', '--resume_path', 'auto']):
        done = subprocess.run([sys.executable, 'main.py', *argv], cwd=ROOT, capture_output=True, text=True,
                              timeout=300, env=env)
        assert done.returncode == 0, done.stderr[-2000:]
    assert load_checkpoint(result / 'save_2.pth')['epoch'] == 2
    epochs = [line.split('\t')[0] for line in (result / 'train.log').read_text().splitlines()[1:]]
    assert epochs == ['1', '2']
    record = json.loads((result / 'opts.json').read_text())
    assert record['n_epochs'] == 2 and record['config'] == str(result / 'opts.json')
    # the record of that resumed run, re-run elsewhere with another learning rate, starts fresh: it does not
    # resume the recorded run's checkpoint behind the new flags' back
    again = parse_opts(['--config', str(result / 'opts.json'), '--result_path', str(tmp_path / 'lr'),
                        '--learning_rate', '0.001'])
    assert record['resume_path'] and again.resume_path is None and again.learning_rate == 0.001
