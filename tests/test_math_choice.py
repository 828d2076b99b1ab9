"""The run's math: probed on the CPU with --precision auto, explicit flags as given, recorded choices reused."""
import io
from argparse import Namespace

import pytest
import torch

from models import generate_model
from models.math_probe import FP32, candidates, fastest, probe_math
from models.precision import Math, MathPlan, set_layout
from preprocessing import Preprocessing
from runs import math_choice
from runs.math_choice import choose_math

CPU = torch.device('cpu')
BF16_CL = Math(torch.bfloat16, channels_last=True)


def refused():
    raise AssertionError('probed')


def test_math_names_round_trip_and_a_bad_record_reads_as_none():
    for name, text in (('fp32', 'fp32'), ('bf16', 'bf16 autocast'), ('fp16', 'fp16 autocast'),
                       ('bf16+cl', 'bf16 autocast + channels_last_3d'), ('fp32+cl', 'fp32 + channels_last_3d')):
        assert Math.named(name).name == name and str(Math.named(name)) == text
    plan = MathPlan(BF16_CL, Math(torch.bfloat16), 'cpu')
    assert plan.record() == {'device': 'cpu', 'train': 'bf16+cl', 'inference': 'bf16'}
    assert MathPlan.from_record(plan.record()) == plan
    for bad in (None, 'bf16', {'train': 'bf16'}, {'device': 'cpu', 'train': 'int8', 'inference': 'fp32'}):
        assert MathPlan.from_record(bad) is None


@pytest.mark.parametrize('precision,channels_last,math', [('fp32', False, FP32), ('bf16', True, BF16_CL),
                                                          ('fp16', False, Math(torch.float16)),
                                                          ('auto', True, Math(None, True))])
def test_explicit_flags_are_used_as_given_without_a_probe_or_a_line(precision, channels_last, math, capsys):
    plan = choose_math(precision, channels_last, CPU, probe=refused,
                       recorded={'device': 'cpu', 'train': 'bf16', 'inference': 'bf16'})
    assert plan == MathPlan(math, math, 'cpu') and capsys.readouterr().out == ''


def test_auto_on_the_cpu_takes_the_probe_and_says_it(capsys, monkeypatch):
    probed = MathPlan(BF16_CL, Math(torch.bfloat16), 'cpu')
    assert choose_math('auto', False, CPU, probe=lambda: (probed, 'math: the line')) == probed
    assert capsys.readouterr().out == 'math: the line\n'
    # another rank does not probe: it takes rank 0's answer, and says nothing
    monkeypatch.setattr(math_choice, 'broadcast_object', lambda obj: (probed.record(), 'math: the line'))
    assert choose_math('auto', False, CPU, probe=refused, rank=1) == probed
    assert capsys.readouterr().out == ''


@pytest.mark.parametrize('batch_size,local_world,train_batch,batch',
                         [(16, 1, 16, 4), (16, 2, 8, 4), (3, 1, 3, 3), (128, 1, 16, 4), (128, 4, 16, 4)])
def test_a_run_probes_training_at_its_own_batch(monkeypatch, batch_size, local_world, train_batch, batch):
    asked = {}

    def probe_math(model, shape, batch, device, train, threads, train_batch=0):
        asked.update(shape=shape, batch=batch, train=train, train_batch=train_batch)
        return MathPlan.same(FP32, CPU), 'math: fp32'
    monkeypatch.setattr(math_choice, 'probe_math', probe_math)
    opt = Namespace(batch_size=batch_size, cpu_threads=1, precision='auto', channels_last=False, no_train=False,
                    pretext=None, resume_path=None, deterministic=False)
    math_choice.run_math(opt, None, Preprocessing(sample_size=56, sample_duration=16), None, CPU, 0, local_world)
    assert asked == dict(shape=(3, 16, 56, 56), batch=batch, train=True, train_batch=train_batch)


def test_a_recorded_cpu_choice_is_reused_without_probing(capsys):
    recorded = {'device': 'cpu', 'train': 'fp32', 'inference': 'bf16+cl'}
    plan = choose_math('auto', False, CPU, probe=refused, recorded=recorded, source='run/save_latest.pth')
    assert plan == MathPlan(FP32, BF16_CL, 'cpu')
    assert capsys.readouterr().out == ('math: fp32 for training, bf16 autocast + channels_last_3d for inference '
                                       '(recorded in run/save_latest.pth; not probed)\n')
    gpu_record = {'device': 'cuda', 'train': 'bf16', 'inference': 'bf16'}  # another device: probed afresh
    assert choose_math('auto', False, CPU, probe=lambda: (MathPlan.same(FP32, CPU), 'math: probed'),
                       recorded=gpu_record) == MathPlan.same(FP32, CPU)


def test_deterministic_runs_and_unprobed_models_compute_in_fp32(capsys):
    assert choose_math('auto', False, CPU, probe=refused, deterministic=True) == MathPlan.same(FP32, CPU)
    assert capsys.readouterr().out == 'math: fp32 (--deterministic; not probed)\n'
    assert choose_math('auto', False, CPU, probe=None, why_not_probed='--pretext puzzles') == MathPlan.same(FP32, CPU)
    assert capsys.readouterr().out == 'math: fp32 (--pretext puzzles; not probed)\n'

    def failing():
        raise RuntimeError('Given groups=1, weight of size [8, 3, 3, 3, 3]\nmore')
    err = io.StringIO()
    assert choose_math('auto', False, CPU, probe=failing, file=err) == MathPlan.same(FP32, CPU)
    assert err.getvalue() == 'math: fp32 (the probe failed: Given groups=1, weight of size [8, 3, 3, 3, 3])\n'


def test_the_fastest_must_beat_fp32_by_the_margin():
    bf16 = Math(torch.bfloat16)
    assert fastest({FP32: 1.0, bf16: 0.97, BF16_CL: 0.99}) == FP32
    assert fastest({FP32: 1.0, bf16: 0.9, BF16_CL: 0.6}) == BF16_CL
    assert fastest({FP32: 0.5, bf16: 0.9, BF16_CL: 0.6}) == FP32


def test_set_layout_converts_the_3d_weights_and_back():
    model = generate_model(model='resnet', model_depth=10, n_classes=2, resnet_widen_factor=0.25)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    set_layout(model, True)
    assert model.conv1.weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert not model.conv1.weight.is_contiguous()
    set_layout(model, False)
    assert model.conv1.weight.is_contiguous()
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())


def test_the_probe_times_a_copy_and_leaves_the_model_and_the_generators_alone():
    model = generate_model(model='resnet', model_depth=10, n_classes=2, resnet_widen_factor=0.25)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert candidates(model) == [FP32, Math(torch.bfloat16), BF16_CL]
    rng, threads = torch.get_rng_state(), torch.get_num_threads()
    plan, line = probe_math(model, (3, 4, 16, 16), 2, CPU, True, threads=1)
    assert torch.equal(torch.get_rng_state(), rng) and torch.get_num_threads() == threads
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # BatchNorm statistics too
    assert model.conv1.weight.grad is None and model.training and model.conv1.weight.is_contiguous()
    assert plan.train in candidates(model) and plan.inference in candidates(model) and plan.device == 'cpu'
    assert line.startswith('math: ') and ' for training' in line and ' for inference' in line and '[probe: ' in line
    plan, line = probe_math(model, (3, 4, 16, 16), 2, CPU, False, threads=1)
    assert plan.train == plan.inference and ' for training' not in line
