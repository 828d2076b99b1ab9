"""No code runs from a checkpoint unless the user says they trust it.

Each crafted file below would create a marker file if it were unpickled in full. Every entry
point that reads checkpoints must refuse it with a one-line error (exit code 2 for command
lines) and leave no marker; ``--trust_checkpoint`` / ``trust=True`` is the only way in.
"""
import collections
import json
import os
import pathlib
import shutil
import warnings
import zipfile

import pytest
import torch

import inference
import main as main_module
from models import CheckpointError, generate_model, load_checkpoint, load_model, load_pretrained
from models.state_dicts import load_checkpoint_object
from models.dataparallel import strip_checkpoint_file
from models.inflate import inflate
from models.safe_load import SAFE_GLOBALS
from models.torchvision_weights import convert, load_imagenet_backbone
from tests.test_checkpoint import TINY as TINY_MODEL, _original_style
from tests.test_main import TINY
from tests.video_fixtures import make_dataset
from util_scripts import convert_torchvision_weights, export_model, inflate_2d_weights, remove_dataparallel


class Touch:
    """Unpickled in full, creates ``marker`` (pickled as ``getattr(PosixPath, 'touch')``)."""

    def __init__(self, marker):
        self.marker = pathlib.Path(marker)

    def __reduce__(self):
        return self.marker.touch, ()


class Eval:
    """Unpickled in full, evaluates code that creates ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return eval, (f'open({self.marker!r}, "w").close()',)


class System:
    """Unpickled in full, runs a shell command that creates ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


class TwoD(torch.nn.Module):
    """A model with a 2D ImageNet network (as ``--model lstm``), for ``load_imagenet_backbone``."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Conv2d(3, 4, 3)

    def imagenet_backbone(self) -> torch.nn.Module:
        return self.net


def crafted(path, marker, payload=Eval, base=None, **save_args):
    """A checkpoint (``base``'s keys, or a tiny model's) with a payload that writes ``marker``."""
    ckpt = dict(base) if base is not None else {'arch': 'resnet-10',
                                                'state_dict': generate_model(**TINY_MODEL).state_dict()}
    ckpt['note'] = payload(marker)
    torch.save(ckpt, path, **save_args)
    return path


def assert_refused(message, path, global_name='builtins.eval'):
    assert message.startswith(str(path)) and '\n' not in message.strip()
    assert f"'{global_name}'" in message and '--trust_checkpoint' in message


def stderr_error(capsys, path, global_name='builtins.eval'):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert_refused(err[0].removeprefix('error: '), path, global_name)


@pytest.fixture
def evil(tmp_path):
    marker = tmp_path / 'MARKER'
    yield crafted(tmp_path / 'evil.pth', marker), marker
    assert not marker.exists(), 'code in the checkpoint ran'


@pytest.mark.parametrize('payload, kw, name', [
    (Touch, {}, 'builtins.getattr'), (Eval, {}, 'builtins.eval'), (System, {}, 'posix.system'),
    (Eval, {'_use_new_zipfile_serialization': False}, 'builtins.eval'),
], ids=['touch', 'eval', 'system', 'legacy-format'])
def test_python_api_refuses_and_names_the_global(tmp_path, payload, kw, name):
    marker = tmp_path / 'MARKER'
    path = crafted(tmp_path / 'evil.pth', marker, payload, **kw)
    for load in (load_checkpoint, load_checkpoint_object, lambda p: load_model(p, n_classes=5),
                 lambda p: load_pretrained(p, 3, 5, model='resnet', model_depth=10)):
        with pytest.raises(CheckpointError) as e:
            load(path)
        assert_refused(str(e.value), path, name)
    assert not marker.exists()


def test_pickle_protocol_4_is_refused_too(tmp_path):
    marker = tmp_path / 'MARKER'
    path = crafted(tmp_path / 'p4.pth', marker, pickle_protocol=4)
    with pytest.raises(CheckpointError, match='refused to load: it uses a pickle instruction .*--trust_checkpoint'):
        load_checkpoint(path)
    assert not marker.exists()


def test_weight_tool_functions_refuse(tmp_path, evil):
    path, _ = evil
    for tool in (lambda: strip_checkpoint_file(path, tmp_path / 'o.pth'),
                 lambda: inflate(path, tmp_path / 'o.pth', 'resnet18'),
                 lambda: convert(path, tmp_path / 'o.pth', 'r3d_18'),
                 lambda: load_imagenet_backbone(TwoD(), path)):
        with pytest.raises(CheckpointError) as e:
            tool()
        assert_refused(str(e.value), path)
    assert not (tmp_path / 'o.pth').exists()


def test_weight_tools_refuse(tmp_path, evil, capsys):
    path, _ = evil
    before = path.read_bytes()
    for argv in ([str(path)], [str(path), '--dst_file_path', str(tmp_path / 'out.pth')]):
        assert remove_dataparallel.main(argv) == 2
        stderr_error(capsys, path)
    assert inflate_2d_weights.main([str(path), str(tmp_path / 'i.pth'), '--arch', 'resnet18']) == 2
    stderr_error(capsys, path)
    assert convert_torchvision_weights.main([str(path), str(tmp_path / 'c.pth'), '--arch', 'r3d_18']) == 2
    stderr_error(capsys, path)
    assert export_model.main([str(path), str(tmp_path / 'e.onnx')]) == 2
    stderr_error(capsys, path)
    assert path.read_bytes() == before
    assert not {'out.pth', 'i.pth', 'c.pth', 'e.onnx'} & set(os.listdir(tmp_path))


def test_inference_refuses(tmp_path, evil, capsys):
    path, _ = evil
    assert inference.predict([str(tmp_path / 'v.mp4'), '--resume_path', str(path)]) == 2
    stderr_error(capsys, path)


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('trust_data')
    return root / 'jpg', make_dataset(root / 'jpg', 'jpg', n_frames=(12, 10), n_train=1)


def run_main(data, result, *extra):
    return main_module.main(['--video_path', str(data[0]), '--annotation_path', str(data[1]),
                             '--result_path', str(result), '--n_classes', '2', *TINY, *extra])


@pytest.fixture(scope='module')
def own(data, tmp_path_factory):
    """A checkpoint written by main.py (one epoch)."""
    result = tmp_path_factory.mktemp('own_run')
    assert run_main(data, result, '--n_epochs', '1', '--no_val') == 0
    return result / 'save_latest.pth'


@pytest.mark.parametrize('how', ['resume', 'auto', 'pretrain'])
def test_main_refuses(tmp_path, data, evil, capsys, how):
    path, _ = evil
    result = tmp_path / 'result'
    if how == 'auto':
        result.mkdir()
        shutil.copy(path, result / 'save_latest.pth')
    flags = {'resume': ['--resume_path', str(path)], 'auto': ['--resume_path', 'auto'],
             'pretrain': ['--pretrain_path', str(path), '--n_pretrain_classes', '5']}[how]
    assert run_main(data, result, '--n_epochs', '1', *flags) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: ')
    assert_refused(err[0].removeprefix('error: '), result / 'save_latest.pth' if how == 'auto' else path)


def test_own_checkpoints_need_nothing_beyond_the_allow_list(own):
    allowed = {f'{g.__module__}.{g.__name__}' for g in SAFE_GLOBALS}
    assert set(torch.serialization.get_unsafe_globals_in_checkpoint(own)) <= allowed
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        ckpt = load_checkpoint(own)
    assert isinstance(ckpt['rng_state']['python'], tuple) and torch.is_tensor(ckpt['rng_state']['numpy'][1])
    assert isinstance(ckpt['scheduler']['milestones'], collections.Counter)


@pytest.mark.parametrize('zip_format', [True, False], ids=['zip', 'legacy'])
def test_original_checkpoints_load_without_trust(tmp_path, zip_format):
    model = generate_model(**TINY_MODEL)
    torch.save(_original_style(model), tmp_path / 'orig.pth', _use_new_zipfile_serialization=zip_format)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        ckpt = load_checkpoint(tmp_path / 'orig.pth')
    assert isinstance(ckpt['scheduler']['milestones'], collections.Counter)


def test_trust_is_the_only_door(tmp_path):
    marker = tmp_path / 'MARKER'
    path = crafted(tmp_path / 'evil.pth', marker)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
    assert not marker.exists()
    with pytest.warns(UserWarning, match="full unpickling.*'builtins.eval'"):
        ckpt = load_checkpoint(path, trust=True)
    assert marker.exists() and 'state_dict' in ckpt
    marker.unlink()
    with pytest.warns(UserWarning, match='full unpickling'):
        assert remove_dataparallel.main([str(path), '--dst_file_path', str(tmp_path / 'o.pth'),
                                         '--trust_checkpoint']) == 0
    assert marker.exists()


def test_imagenet_backbone_loads_a_trusted_file(tmp_path):
    marker = tmp_path / 'MARKER'
    weights = {f'module.{k}': v for k, v in TwoD().net.state_dict().items()}  # a DataParallel prefix: stripped
    weights['fc.weight'] = torch.zeros(10, 4)  # the ImageNet classifier: left out
    path = crafted(tmp_path / 'evil.pth', marker, base={'state_dict': weights})
    model = TwoD()
    with pytest.raises(CheckpointError):
        load_imagenet_backbone(model, path)
    assert not marker.exists()
    with pytest.warns(UserWarning, match="full unpickling.*'builtins.eval'"):
        load_imagenet_backbone(model, path, trust=True)
    assert marker.exists() and torch.equal(model.net.weight, weights['module.weight'])


def test_main_resumes_a_trusted_file(tmp_path, data, own):
    marker = tmp_path / 'MARKER'
    result = tmp_path / 'result'
    result.mkdir()
    crafted(result / 'save_latest.pth', marker, base=torch.load(own, weights_only=True))
    assert run_main(data, result, '--n_epochs', '1', '--resume_path', 'auto') == 2
    assert not marker.exists()
    with pytest.warns(UserWarning, match='full unpickling'):
        assert run_main(data, result, '--n_epochs', '1', '--resume_path', 'auto', '--trust_checkpoint') == 0
    assert marker.exists()


def test_files_that_are_not_checkpoints(tmp_path, capsys):
    (tmp_path / 'a.json').write_text(json.dumps({'database': {}}))
    (tmp_path / 'f.jpg').write_bytes(b'\xff\xd8\xff\xe0' + bytes(64))
    (tmp_path / 'v.mp4').write_bytes(b'\x00\x00\x00\x18ftypisom' + bytes(64))
    (tmp_path / 'empty.pth').write_bytes(b'')
    with zipfile.ZipFile(tmp_path / 'other.zip', 'w') as z:
        z.writestr('a.txt', 'hello')
    for name, kind in [('a.json', 'JSON'), ('f.jpg', 'JPEG'), ('v.mp4', 'MP4'), ('empty.pth', 'empty'),
                       ('other.zip', 'zip archive')]:
        with pytest.raises(CheckpointError) as e:
            load_checkpoint(tmp_path / name)
        message = str(e.value)
        assert message.startswith(f'{tmp_path / name}: not a PyTorch checkpoint') and kind in message
        assert '\n' not in message and 'weights_only' not in message
    assert inference.predict([str(tmp_path / 'v.mp4'), '--resume_path', str(tmp_path / 'a.json')]) == 2
    expected = f'error: {tmp_path / "a.json"}: not a PyTorch checkpoint (it looks like JSON text)'
    assert capsys.readouterr().err.strip() == expected


@pytest.fixture(scope='module')
def not_checkpoints(tmp_path_factory):
    """Real files of the kinds people give by mistake: (path, what the message calls it)."""
    from PIL import Image
    from tests.video_fixtures import moving_frames, write_video
    root = tmp_path_factory.mktemp('not_checkpoints')
    frames = moving_frames(4, 32, 32)
    (root / 'kinetics.json').write_text(json.dumps({'labels': ['a'], 'database': {}}))
    Image.fromarray(frames[0]).save(root / 'frame.jpg')
    Image.fromarray(frames[0]).save(root / 'frame.png')
    write_video(root / 'clip.mp4', frames)
    write_video(root / 'clip.webm', frames, codec='libvpx-vp9')
    write_video(root / 'clip.mpg', frames, codec='mpeg1video')
    return [(root / 'kinetics.json', 'JSON text'), (root / 'frame.jpg', 'a JPEG image'),
            (root / 'frame.png', 'a PNG image'), (root / 'clip.mp4', 'an MP4/MOV video'),
            (root / 'clip.webm', 'a Matroska/WebM video'), (root / 'clip.mpg', 'an MPEG program stream video')]


@pytest.mark.parametrize('flag', ['--resume_path', '--pretrain_path'])
def test_main_calls_json_images_and_videos_not_a_checkpoint(tmp_path, data, not_checkpoints, flag, capsys):
    for path, kind in not_checkpoints:
        extra = ['--n_pretrain_classes', '5'] if flag == '--pretrain_path' else []
        assert run_main(data, tmp_path / path.stem, '--n_epochs', '1', flag, str(path), *extra) == 2, path
        assert capsys.readouterr().err == f'error: {path}: not a PyTorch checkpoint (it looks like {kind})\n'
