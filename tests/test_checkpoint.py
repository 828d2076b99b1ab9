"""Checkpoints: round trips, the original's and foreign layouts, readable mismatches, pretrain."""
import collections
import os
import warnings

import pytest
import torch
import torch.nn as nn

from models import (CheckpointError, generate_model, load_checkpoint, load_model, load_pretrained,
                    load_state_dict_checked, save_checkpoint)
from models.checkpoint import atomic_write, infer_options
from tests.conftest import randomize_bn_stats
from tests.test_models import SMALL

TINY = dict(model='resnet', model_depth=10, n_classes=5)


def clip(cfg=None):
    big = cfg is not None and cfg.get('model') == 'densenet'
    channels = (cfg or {}).get('n_input_channels', 3)  # two-stream models: 5 (RGB + flow)
    return torch.randn(2, 3, 16, 64, 64) if big else torch.randn(2, channels, 8, 32, 32)


def make(**cfg):
    return randomize_bn_stats(generate_model(**cfg)).eval()


@pytest.mark.parametrize('cfg', SMALL, ids=lambda c: '-'.join(map(str, c.values())))
def test_save_load_round_trip_every_family(tmp_path, cfg):
    cfg = dict(cfg, n_classes=5)
    model = make(**cfg)
    path = save_checkpoint(tmp_path / 'save_3.pth', model, cfg, epoch=3)
    loaded = load_model(path)
    assert not loaded.training
    x = clip(cfg)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_checkpoint_keeps_original_keys_and_adds_metadata(tmp_path):
    model = make(**TINY)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [50, 100, 150])
    model(clip()).sum().backward()
    opt.step()
    sched.step()
    names = ['a', 'b', 'c', 'd', 'e']
    path = save_checkpoint(tmp_path / 'ckpt.pth', model, TINY, epoch=7, optimizer=opt, scheduler=sched,
                           class_names=names, mean=[0.4345, 0.4051, 0.3775], std=[0.2768, 0.2713, 0.2737],
                           value_scale=1, sample_size=112, sample_duration=16)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # readable without falling back to full unpickling
        ckpt = load_checkpoint(path)
    assert ckpt['epoch'] == 7 and ckpt['arch'] == 'resnet-10'
    assert set(ckpt) >= {'epoch', 'arch', 'state_dict', 'optimizer', 'scheduler', 'model_options',
                         'class_names', 'mean', 'std', 'value_scale', 'sample_size',
                         'sample_duration', 'version'}
    assert ckpt['class_names'] == names and ckpt['sample_duration'] == 16
    assert ckpt['model_options']['model_depth'] == 10 and ckpt['model_options']['resnet_shortcut'] == 'B'
    assert not any(k.startswith('module.') for k in ckpt['state_dict'])
    opt2 = torch.optim.SGD(generate_model(**TINY).parameters(), lr=0.1, momentum=0.9)
    opt2.load_state_dict(ckpt['optimizer'])
    assert ckpt['scheduler']['last_epoch'] == 1
    assert not [p for p in os.listdir(tmp_path) if p != 'ckpt.pth']  # no temp files left


def test_wrapped_and_compiled_models_save_without_prefixes(tmp_path):
    model = make(**TINY)
    for wrapped in (nn.DataParallel(model), torch.compile(model)):
        path = save_checkpoint(tmp_path / 'w.pth', wrapped, TINY)
        keys = list(load_checkpoint(path)['state_dict'])
        assert keys == list(model.state_dict())


def _original_style(model, arch='resnet-10'):
    """What the original's main.py wrote: five keys, its MultiStepLR state holding a Counter."""
    return {'epoch': 200, 'arch': arch, 'state_dict': model.state_dict(), 'optimizer': None,
            'scheduler': {'milestones': collections.Counter({50: 1, 100: 1}), 'gamma': 0.1,
                          'last_epoch': 200}}


def test_original_checkpoint_takes_options_from_arch_and_kwargs(tmp_path):
    model = make(**TINY)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [50, 100, 150])
    original = dict(_original_style(model), optimizer=opt.state_dict(), scheduler=sched.state_dict())
    # PyTorch < 1.6 (which wrote the released r3d*_200ep.pth files) used the legacy format.
    torch.save(original, tmp_path / 'orig.pth', _use_new_zipfile_serialization=False)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # safe (weights-only) loading suffices
        loaded = load_model(tmp_path / 'orig.pth', n_classes=5)  # model and depth from arch
    x = clip()
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


@pytest.mark.parametrize('prefix', ['module.', '_orig_mod.', 'module._orig_mod.'])
def test_prefixed_state_dicts_load(tmp_path, prefix):
    model = make(**TINY)
    sd = collections.OrderedDict((prefix + k, v) for k, v in model.state_dict().items())
    torch.save({'epoch': 1, 'arch': 'resnet-10', 'state_dict': sd}, tmp_path / 'p.pth')
    loaded = load_model(tmp_path / 'p.pth', n_classes=5)
    x = clip()
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def test_dataparallel_state_dict_and_bare_state_dict_load(tmp_path):
    model = make(**TINY)
    torch.save(nn.DataParallel(model).state_dict(), tmp_path / 'dp.pth')
    torch.save(model.state_dict(), tmp_path / 'bare.pth')
    x = clip()
    for name in ('dp.pth', 'bare.pth'):
        loaded = load_model(tmp_path / name, **TINY)
        with torch.no_grad():
            assert torch.equal(model(x), loaded(x))


def test_old_pytorch_state_dict_without_batch_counters_loads(tmp_path):
    """The CVPR 2018 models predate BatchNorm's num_batches_tracked."""
    model = make(**dict(TINY, resnet_shortcut='A'))
    sd = collections.OrderedDict(('module.' + k, v) for k, v in model.state_dict().items()
                                 if not k.endswith('num_batches_tracked'))
    torch.save({'epoch': 200, 'arch': 'resnet-10', 'state_dict': sd, 'optimizer': {}}, tmp_path / 'old.pth')
    loaded = load_model(tmp_path / 'old.pth', n_classes=5, resnet_shortcut='A')
    x = clip()
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def _error(tmp_path, saved_cfg, **load_kwargs):
    torch.save(_original_style(generate_model(**saved_cfg), arch='whatever'), tmp_path / 'x.pth')
    with pytest.raises(CheckpointError) as e:
        load_model(tmp_path / 'x.pth', **load_kwargs)
    message = str(e.value)
    assert '\n' not in message and str(tmp_path / 'x.pth') in message
    return message


def test_class_count_mismatch_names_the_flag(tmp_path):
    message = _error(tmp_path, dict(model='resnet', model_depth=18, n_classes=7),
                     model='resnet', model_depth=18)
    assert 'fc.weight: checkpoint [7, 512] vs model [400, 512]' in message
    assert message.endswith("The checkpoint's shapes say: --n_classes 7")


def test_shortcut_mismatch_names_the_flag(tmp_path):
    message = _error(tmp_path, dict(model='resnet', model_depth=10, resnet_shortcut='A'),
                     model='resnet', model_depth=10)
    assert 'missing keys (layer2.0.downsample.0.weight' in message and '--resnet_shortcut A' in message
    message = _error(tmp_path, dict(model='resnet', model_depth=10), model='resnet', model_depth=10,
                     resnet_shortcut='A')
    assert 'unexpected keys (layer2.0.downsample.0.weight' in message and '--resnet_shortcut B' in message


def test_stem_and_architecture_mismatches_name_the_flags(tmp_path):
    message = _error(tmp_path, dict(model='resnet', model_depth=10, conv1_t_size=3),
                     model='resnet', model_depth=10)
    assert 'conv1.weight: checkpoint [64, 3, 3, 7, 7] vs model [64, 3, 7, 7, 7]' in message
    assert message.endswith('--conv1_t_size 3')
    assert '--model resnet2p1d' in _error(tmp_path, dict(model='resnet2p1d', model_depth=10),
                                          model='resnet', model_depth=10)
    assert '--model_depth 18' in _error(tmp_path, dict(model='resnet', model_depth=18),
                                        model='resnet', model_depth=10)
    assert '--n_input_channels 2' in _error(tmp_path, dict(model='resnet', model_depth=10, n_input_channels=2),
                                            model='resnet', model_depth=10)


@pytest.mark.parametrize('cfg', [
    dict(model='resnet', model_depth=18, resnet_shortcut='A', conv1_t_size=3, n_classes=7),
    dict(model='resnet', model_depth=50, n_input_channels=2),
    dict(model='resnet2p1d', model_depth=34, r2p1d_mid_planes='block', r2p1d_stem_mid_planes=45),
    dict(model='resnet2p1d', model_depth=50, r2p1d_mid_planes='block'),
    dict(model='preresnet', model_depth=50),
    dict(model='preresnet', model_depth=18),
    dict(model='wideresnet', model_depth=101, wide_resnet_k=3),
    dict(model='resnext', model_depth=152, resnext_cardinality=16),
    dict(model='densenet', model_depth=201, n_classes=9),
])
def test_infer_options_recovers_architecture_from_shapes(cfg):
    with torch.device('meta'):
        sd = generate_model(**cfg).state_dict()
    inferred = infer_options(sd)
    assert {k: inferred.get(k) for k in cfg} == cfg


def test_failed_load_leaves_the_model_untouched():
    model = generate_model(**TINY)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    bad = generate_model(**dict(TINY, n_classes=6)).state_dict()
    with pytest.raises(CheckpointError):
        load_state_dict_checked(model, bad)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_unreadable_files_are_one_line_errors(tmp_path):
    (tmp_path / 'junk.pth').write_bytes(b'not a checkpoint at all')
    (tmp_path / 'empty.pth').write_bytes(b'')
    torch.save({'weights': [1, 2]}, tmp_path / 'nosd.pth')
    for name, text in [('junk.pth', 'not a PyTorch checkpoint'), ('empty.pth', 'not a PyTorch checkpoint (an empty file)'),
                       ('nosd.pth', 'no state_dict found'), ('missing.pth', 'no such checkpoint file')]:
        with pytest.raises(CheckpointError) as e:
            load_model(tmp_path / name, **TINY)
        assert str(e.value).startswith(str(tmp_path / name)) and text in str(e.value)
        assert '\n' not in str(e.value)


def test_torchvision_layout_points_to_the_converter(tmp_path):
    torch.save({'stem.0.weight': torch.zeros(1), 'fc.weight': torch.zeros(1)}, tmp_path / 'tv.pth')
    with pytest.raises(CheckpointError, match='convert_torchvision_weights'):
        load_model(tmp_path / 'tv.pth')


def test_files_with_python_objects_load_only_when_trusted(tmp_path):
    import argparse
    model = make(**TINY)
    torch.save({'arch': 'resnet-10', 'state_dict': model.state_dict(),
                'opt': argparse.Namespace(lr=0.1)}, tmp_path / 'obj.pth')
    with pytest.raises(CheckpointError, match="needs the Python global 'argparse.Namespace'.*--trust_checkpoint"):
        load_model(tmp_path / 'obj.pth', n_classes=5)
    with pytest.warns(UserWarning, match='full unpickling.*argparse.Namespace'):
        loaded = load_model(tmp_path / 'obj.pth', trust=True, n_classes=5)
    assert torch.equal(loaded.fc.weight, model.fc.weight)


def test_unknown_load_option_is_rejected(tmp_path):
    path = save_checkpoint(tmp_path / 'c.pth', make(**TINY), TINY)
    with pytest.raises(TypeError, match='unknown model options n_class'):
        load_model(path, n_class=5)


@pytest.mark.parametrize('cfg', [TINY, dict(model='densenet', model_depth=121, n_classes=5)],
                         ids=['resnet', 'densenet'])
def test_pretrain_loads_strictly_then_replaces_the_head(tmp_path, cfg):
    source = make(**cfg)
    torch.save(_original_style(source), tmp_path / 'pre.pth')
    options = {k: v for k, v in cfg.items() if k != 'n_classes'}
    model = load_pretrained(tmp_path / 'pre.pth', n_classes=3, n_pretrain_classes=5, **options)
    head = 'classifier' if cfg['model'] == 'densenet' else 'fc'
    assert getattr(model, head).out_features == 3
    kept = {k: v for k, v in source.state_dict().items() if not k.startswith(head + '.')}
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in kept.items())
    assert not torch.equal(getattr(model, head).weight[:3], getattr(source, head).weight[:3])


def test_pretrain_class_count_errors_and_defaults(tmp_path):
    source = make(**TINY)
    torch.save(_original_style(source), tmp_path / 'orig.pth')
    with pytest.raises(CheckpointError, match='--n_pretrain_classes 5'):
        load_pretrained(tmp_path / 'orig.pth', n_classes=3, n_pretrain_classes=400,
                        model='resnet', model_depth=10)
    with pytest.raises(CheckpointError, match=r'pass --n_pretrain_classes .*--n_pretrain_classes 5'):
        load_pretrained(tmp_path / 'orig.pth', n_classes=3, model='resnet', model_depth=10)
    ours = save_checkpoint(tmp_path / 'ours.pth', source, TINY)
    model = load_pretrained(ours, n_classes=3, model='resnet', model_depth=10)  # count from metadata
    assert model.fc.out_features == 3


def test_atomic_write_keeps_the_previous_file_when_a_save_dies(tmp_path):
    target = tmp_path / 'save_latest.pth'
    save_checkpoint(target, make(**TINY), TINY, epoch=1)
    before = target.read_bytes()

    def dies_midway(f):
        f.write(b'partial')
        raise KeyboardInterrupt  # what a kill during torch.save looks like to Python

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, dies_midway)
    assert target.read_bytes() == before
    assert os.listdir(tmp_path) == ['save_latest.pth']
    assert load_checkpoint(target)['epoch'] == 1
