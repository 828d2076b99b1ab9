"""What a result path records is true: opts.json, opts_eval.json, history.log, top-5, checkpoint files."""
import errno
import json
import os

import pytest
import torch

from runs import checkpoint_files
from runs.history import history_line
from inference import top_rankings
from tests.test_checkpoint_trust import run_main
from tests.test_main import read_tsv
from tests.video_fixtures import make_dataset
from validation import video_metrics


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('records_data')
    return root / 'jpg', make_dataset(root / 'jpg', 'jpg', n_frames=(12, 20, 9, 16, 14, 10), n_train=2)


@pytest.fixture(scope='module')
def trained(data, tmp_path_factory):
    result = tmp_path_factory.mktemp('records_run')
    assert run_main(data, result, '--n_epochs', '3', '--checkpoint', '1', '--keep_checkpoints', '2') == 0
    return result


def test_evaluating_never_overwrites_how_the_run_was_trained(trained, data, capsys):
    before = (trained / 'opts.json').read_bytes()
    assert json.loads(before)['model_options']['resnet_widen_factor'] == 0.25
    # an inference-only run whose flags differ from the checkpoint's model: it records the model it used
    assert run_main(data, trained, '--resume_path', str(trained / 'save_latest.pth'), '--no_train', '--no_val',
                    '--inference', '--resnet_widen_factor', '0.5', '--sample_size', '24') == 0
    assert (trained / 'opts.json').read_bytes() == before
    evaluated = json.loads((trained / 'opts_eval.json').read_text())
    assert evaluated['no_train'] and evaluated['resnet_widen_factor'] == 0.25 and evaluated['sample_size'] == 32
    assert evaluated['preprocessing']['sample_size'] == 32 and evaluated['arch'] == 'resnet-10'
    lines = (trained / 'history.log').read_text().splitlines()
    assert len(lines) == 2 and all(len(line.split('\t')) == 4 for line in lines)
    assert '--keep_checkpoints 2' in lines[0] and lines[1].split('\t')[3].startswith('main.py --video_path ')
    assert '--no_train' in lines[1] and 'top-5 n/a (2 classes)' in capsys.readouterr().out


def test_a_resume_with_other_model_flags_records_the_checkpoints_model(data, tmp_path):
    assert run_main(data, tmp_path, '--n_epochs', '1', '--no_val') == 0
    assert run_main(data, tmp_path, '--n_epochs', '2', '--no_val', '--resume_path', 'auto',
                    '--resnet_widen_factor', '0.5', '--resnet_shortcut', 'A', '--sample_duration', '4') == 0
    record = json.loads((tmp_path / 'opts.json').read_text())
    assert (record['resnet_widen_factor'], record['resnet_shortcut'], record['sample_duration']) == (0.25, 'B', 8)
    assert record['model_options']['resnet_widen_factor'] == 0.25 and record['command_line'][-1] == '4'
    assert len((tmp_path / 'history.log').read_text().splitlines()) == 2


def test_history_lines_are_one_line_each():
    line = history_line(['main.py', '--result_path', 'a b', 'x\ny'], host='h', pid=7)
    when, host, pid, command = line.split('\t')
    assert (host, pid, command) == ('h', '7', "main.py --result_path 'a b' 'x\\ny'") and 'T' in when


def test_top5_is_n_a_with_five_classes_or_fewer(trained):
    header, rows = read_tsv(trained / 'val.log')
    assert [row[header.index('video_top5')] for row in rows] == ['n/a'] * 3
    assert float(rows[0][header.index('video_top1')]) >= 0
    few = {f'v{i}': (torch.tensor([0.1, 0.2, 0.7]), 1, i % 3) for i in range(6)}
    assert video_metrics(few)['video_top5'] is None and video_metrics(few)['classes'] == 3
    ranks = {'first': [6, 5, 4, 3, 2, 1], 'third': [4, 6, 5, 3, 2, 1], 'last': [1, 6, 5, 4, 3, 2]}
    many = {vid: (torch.tensor(r, dtype=torch.float), 1, 0) for vid, r in ranks.items()}  # class 0, ranked so
    m = video_metrics(many)
    assert (m['video_top1'], m['video_top5']) == (pytest.approx(1 / 3), pytest.approx(2 / 3))


def test_report_rankings_hold_five_labels_whatever_output_topk():
    names = [f'c{i}' for i in range(7)]
    ranked = top_rankings({'v': torch.arange(7.0)}, names, ['v'])
    assert [label for label, _ in ranked['v']] == ['c6', 'c5', 'c4', 'c3', 'c2']


def test_one_epoch_is_one_file_and_only_the_newest_numbered_saves_stay(trained):
    names = {p.name for p in trained.iterdir()}
    assert 'save_1.pth' not in names and {'save_2.pth', 'save_3.pth'} <= names
    assert os.path.samefile(trained / 'save_3.pth', trained / 'save_latest.pth')
    best = torch.load(trained / 'save_best.pth', weights_only=False)['epoch']
    if best > 1:
        assert os.path.samefile(trained / 'save_best.pth', trained / f'save_{best}.pth')


def test_place_links_atomically_and_copies_without_hard_links(tmp_path, monkeypatch):
    source, target = tmp_path / 'save_latest.pth', tmp_path / 'save_best.pth'
    source.write_bytes(b'new')
    target.write_bytes(b'old')
    assert checkpoint_files.place(source, target) == 'link' and os.path.samefile(source, target)
    source.unlink()
    source.write_bytes(b'newer')  # what the next atomic save does: a new file under the name
    assert target.read_bytes() == b'new'

    def no_links(src, dst):
        raise OSError(errno.EXDEV, 'cross-device link')
    monkeypatch.setattr(checkpoint_files.os, 'link', no_links)
    assert checkpoint_files.place(source, target) == 'copy' and target.read_bytes() == b'newer'
    assert not os.path.samefile(source, target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['save_best.pth', 'save_latest.pth']  # no temp left


def test_prune_deletes_only_older_numbered_saves(tmp_path):
    for name in ('save_1.pth', 'save_2.pth', 'save_10.pth', 'save_12.pth', 'save_best.pth', 'save_x.pth',
                 'save_3.pth.bak', 'mine_4.pth'):
        (tmp_path / name).write_bytes(b'x')
    (tmp_path / 'save_5.pth').symlink_to(tmp_path / 'save_1.pth')  # a user's link is not ours to delete
    (tmp_path / 'save_6.pth').mkdir()
    assert checkpoint_files.prune(tmp_path, 0, 10) == []
    assert [p.name for p in checkpoint_files.prune(tmp_path, 2, 10)] == ['save_1.pth']
    assert {'save_2.pth', 'save_10.pth', 'save_12.pth', 'save_5.pth', 'save_6.pth', 'save_best.pth',
            'save_x.pth', 'save_3.pth.bak', 'mine_4.pth'} == {p.name for p in tmp_path.iterdir()}
