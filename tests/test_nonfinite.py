"""Non-finite state stops the run before any save; no checkpoint or results JSON ever holds NaN."""
import json
import math

import pytest
import torch

import main as main_module
from common.errors import UserError
from inference import results_json
from models import generate_model, load_checkpoint
from runs.run_state import RunState
from tests.test_result_path import args, data  # noqa: F401 (the fixture)


def poison_in_epoch(monkeypatch, name, epoch, poison):
    """Let ``main.<name>`` run, then ``poison(model, result)`` after it in ``epoch``."""
    real = getattr(main_module, name)

    def wrapped(*a, **k):
        result = real(*a, **k)
        if a[0] == epoch:
            poison(a[2], result)
        return result
    monkeypatch.setattr(main_module, name, wrapped)


@pytest.mark.parametrize('what', ['batchnorm', 'weight', 'val_loss'])
def test_non_finite_state_stops_the_run_before_any_save(data, tmp_path, monkeypatch, capsys, what):
    if what == 'batchnorm':
        poison_in_epoch(monkeypatch, 'train_epoch', 2, lambda model, r: model.bn1.running_var.fill_(math.nan))
        named = 'bn1.running_var'
    elif what == 'weight':
        poison_in_epoch(monkeypatch, 'train_epoch', 2, lambda model, r: model.fc.weight.data.fill_(math.inf))
        named = 'fc.weight'
    else:
        poison_in_epoch(monkeypatch, 'val_epoch', 2, lambda model, r: r.update(loss_sum=math.nan))
        named = 'the validation loss'
    assert main_module.main(args(data, tmp_path, '--n_epochs', '2', '--checkpoint', '1')) == 2
    err = capsys.readouterr().err.strip()
    assert '\n' not in err and err.startswith('error: epoch 2: non-finite values in ') and named in err
    assert f"the last good checkpoint is {tmp_path / 'save_latest.pth'}" in err
    assert load_checkpoint(tmp_path / 'save_latest.pth')['epoch'] == 1  # epoch 2 was never saved
    assert not (tmp_path / 'save_2.pth').exists() and not (tmp_path / '.lock').exists()
    for name in ('save_latest.pth', 'save_best.pth', 'save_1.pth'):
        state = load_checkpoint(tmp_path / name)['state_dict']
        assert all(torch.isfinite(t).all() for t in state.values() if t.is_floating_point())


def test_run_state_never_writes_a_checkpoint_with_a_non_finite_value(tmp_path):
    model = generate_model(model='resnet', model_depth=10, n_classes=2, resnet_widen_factor=0.25)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    state = RunState(model, {}, optimizer, None, None, preprocessing={}, class_names=['a', 'b'],
                     ft_begin_module='', multilabel=False, pretext='')
    optimizer.state[model.fc.bias]['momentum_buffer'] = torch.tensor([0.0, math.nan])
    with pytest.raises(UserError, match=r'save_latest.pth: not written: non-finite values in '
                                        r'fc.bias \(momentum_buffer\); no checkpoint was saved'):
        state.save(tmp_path / 'save_latest.pth', 1)
    assert list(tmp_path.iterdir()) == []


def test_results_json_leaves_out_videos_with_non_finite_scores(capsys):
    good, bad = torch.tensor([0.7, 0.3]), torch.tensor([math.nan, 0.5])
    scores = {'v1': [((1, 17), good)], 'v2': [((1, 17), good), ((17, 33), bad)], 'v3': [((1, 9), -bad.abs() / 0)]}
    for average in (True, False):
        results = results_json(scores, ['a', 'b'], average=average)['results']
        assert set(results) == {'v1'}
        assert 'NaN' not in json.dumps(results) and 'Infinity' not in json.dumps(results)
        assert 'warning: 2 videos with non-finite scores left out of the results: v2, v3' in capsys.readouterr().err
