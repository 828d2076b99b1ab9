"""--lr_scheduler cosine: half a cosine per epoch after the warm-up, in closed form, exact on resume."""
import io
import math

import pytest
import torch

from runs.lr_schedule import CosineLR, cosine_factor
from training import warmup


def schedule(n_epochs, warmup_epochs, per_epoch=4, lr=0.1, resume_after=None):
    """The learning rate of every iteration, as main.py drives it: the warm-up hook before each step,
    the scheduler stepped after each epoch; ``resume_after`` epochs: saved and loaded weights-only."""
    def fresh():
        p = torch.nn.Parameter(torch.zeros(1))
        optimizer = torch.optim.SGD([p], lr=lr)
        return optimizer, CosineLR(optimizer, n_epochs, warmup_epochs)
    optimizer, scheduler = fresh()
    hook = warmup(optimizer, list(scheduler.base_lrs), max(1, round(warmup_epochs * per_epoch))) \
        if warmup_epochs else None
    seen = []
    for epoch in range(1, n_epochs + 1):
        for i in range(1, per_epoch + 1):
            if hook is not None:
                hook((epoch - 1) * per_epoch + i)
            optimizer.step()
            seen.append(optimizer.param_groups[0]['lr'])
        scheduler.step()
        if epoch == resume_after:
            saved = io.BytesIO()
            torch.save({'optimizer': optimizer.state_dict(), 'scheduler': scheduler.state_dict()}, saved)
            saved.seek(0)
            ckpt = torch.load(saved, weights_only=True)
            optimizer, scheduler = fresh()
            optimizer.load_state_dict(ckpt['optimizer'])
            scheduler.load_state_dict(ckpt['scheduler'])
            hook = warmup(optimizer, list(scheduler.base_lrs), max(1, round(warmup_epochs * per_epoch))) \
                if warmup_epochs else None
    return seen


def test_the_factor_by_hand():
    assert [cosine_factor(k, 4, 0) for k in range(5)] == pytest.approx([1, 0.5 + 0.5 * math.cos(math.pi / 4), 0.5,
                                                                        0.5 - 0.5 * math.cos(math.pi / 4), 0])
    assert [cosine_factor(k, 5, 1) for k in range(6)] == pytest.approx([1, 1, 0.853553, 0.5, 0.146447, 0],
                                                                       abs=1e-6)
    assert cosine_factor(9, 5, 1) == 0 and cosine_factor(3, 2, 2) == 1  # past the end; no room to decay


def test_every_epoch_without_a_warm_up():
    lrs = schedule(4, 0, per_epoch=2)
    expected = [0.1 * 0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(4)]
    assert lrs == pytest.approx([x for x in expected for _ in range(2)])


def test_every_iteration_with_a_fractional_warm_up():
    lrs = schedule(4, 1.5, per_epoch=2)
    ramp = [0.1 * i / 3 for i in (1, 2, 3)]  # 1.5 epochs of 2 iterations
    after = [0.1 * 0.5 * (1 + math.cos(math.pi * (k - 1.5) / 2.5)) for k in (2, 3)]
    assert lrs == pytest.approx(ramp + [0.1] + [after[0]] * 2 + [after[1]] * 2)


@pytest.mark.parametrize('warmup_epochs,resume_after', [(0, 1), (0, 3), (2, 1), (2, 2), (1.5, 4)])
def test_a_resume_continues_on_the_same_curve(warmup_epochs, resume_after):
    assert schedule(6, warmup_epochs, resume_after=resume_after) == schedule(6, warmup_epochs)


def test_the_state_is_plain_numbers_and_the_horizon_is_the_runs_own():
    p = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([p], lr=0.1)
    scheduler = CosineLR(optimizer, 4)
    optimizer.step()
    scheduler.step()
    state = scheduler.state_dict()
    assert 'n_epochs' not in state and state['last_epoch'] == 1
    optimizer = torch.optim.SGD([p], lr=0.1)
    longer = CosineLR(optimizer, 8)
    optimizer.load_state_dict({'state': {}, 'param_groups': [dict(optimizer.param_groups[0], lr=0.0, params=[0])]})
    longer.load_state_dict(state)  # a resume with --n_epochs 8: the rest of the new curve, from epoch 2 on
    assert longer.n_epochs == 8 and longer.last_epoch == 1
    assert optimizer.param_groups[0]['lr'] == pytest.approx(0.1 * 0.5 * (1 + math.cos(math.pi / 8)))
