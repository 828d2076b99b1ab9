"""One owner per contract: the preprocessing a checkpoint records, the run's signal handlers, the import graph."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import inference
import main as main_module
from preprocessing import Preprocessing, inference_transforms
from models import load_checkpoint
from tests.video_fixtures import make_dataset

ROOT = Path(__file__).resolve().parents[1]
TINY = ['--model', 'resnet', '--model_depth', '10', '--resnet_widen_factor', '0.25', '--sample_size', '32',
        '--batch_size', '4', '--n_threads', '0', '--no_progress', '--learning_rate', '0.05',
        '--n_val_samples', '2', '--n_classes', '2']


@pytest.fixture(scope='module')
def video_run(tmp_path_factory):
    """A tiny model trained on video files at temporal stride 2, with main.py's inference on them."""
    root = tmp_path_factory.mktemp('contract')
    ann = make_dataset(root / 'videos', 'video', n_frames=(30, 26, 22, 34), n_train=2)
    result = root / 'result'
    assert main_module.main(['--video_path', str(root / 'videos'), '--annotation_path', str(ann),
                             '--result_path', str(result), '--file_type', 'video', *TINY,
                             '--sample_duration', '4', '--sample_t_stride', '2', '--n_epochs', '1',
                             '--inference', '--inference_stride', '6', '--output_topk', '0',
                             '--precision', 'fp32']) == 0  # compared with inference.py's scores: the same math
    return root, result


def test_checkpoint_records_the_preprocessing_contract(video_run):
    _, result = video_run
    prep = Preprocessing.from_checkpoint(load_checkpoint(result / 'save_latest.pth'))
    assert (prep.sample_size, prep.sample_duration, prep.sample_t_stride) == (32, 4, 2)
    assert prep.input_type == 'rgb' and prep.inference_crop == 'center'
    assert prep.mean == pytest.approx((0.4345, 0.4051, 0.3775))


def test_inference_py_scores_video_files_exactly_as_main_inference(video_run, capsys):
    root, result = video_run
    val_files = sorted((root / 'videos').glob('*/*_2.mp4'))  # the validation videos
    out = root / 'predict.json'
    assert inference.predict([*map(str, val_files), '--resume_path', str(result / 'save_latest.pth'),
                              '--output', str(out), '--output_topk', '0', '--inference_stride', '6',
                              '--no_cuda', '--precision', 'fp32']) == 0
    ours = json.loads(out.read_text())['results']
    theirs = json.loads((result / 'val.json').read_text())['results']
    assert sorted(ours) == ['jump/jump_2.mp4', 'wave/wave_2.mp4']  # relative to the inputs' common folder
    for key, ranked in ours.items():
        reference = theirs[Path(key).stem]
        assert ranked[0]['label'] == reference[0]['label']
        scores = {r['label']: r['score'] for r in reference}
        for r in ranked:
            assert r['score'] == pytest.approx(scores[r['label']], abs=1e-5)


def test_inference_windows_follow_the_recorded_stride():
    prep = Preprocessing(sample_size=32, sample_duration=4, sample_t_stride=2)
    temporal, _ = inference_transforms(prep, inference_stride=6)
    clips = temporal(list(range(20)))
    assert clips[0] == [0, 2, 4, 6] and clips[1] == [6, 8, 10, 12]  # 6 video frames = 3 subsampled
    default, _ = inference_transforms(prep)
    assert default(list(range(20)))[1][0] == 8  # one clip span of the video: 4 x 2 frames


def test_same_stem_files_in_two_folders_get_distinct_keys(tmp_path):
    a, b = tmp_path / 'x' / 'clip.mp4', tmp_path / 'y' / 'clip.mp4'
    assert inference.unique_keys([a, b]) == {a: 'x/clip.mp4', b: 'y/clip.mp4'}
    assert inference.unique_keys([a]) == {a: 'clip.mp4'}


def test_a_signal_during_inference_stops_cleanly_and_handlers_are_restored(video_run, monkeypatch, capsys):
    root, result = video_run
    import datasets.video_dataset as vd
    original = vd.MultiClipDataset.__getitem__
    sent = []

    def interrupting(self, item):  # Ctrl-C arrives (once) while the first inference batch loads
        if not sent:
            sent.append(os.kill(os.getpid(), signal.SIGINT))
        return original(self, item)

    monkeypatch.setattr(vd.MultiClipDataset, '__getitem__', interrupting)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    out = root / 'interrupted'
    code = main_module.main(['--video_path', str(root / 'videos'), '--annotation_path',
                             str(root / 'videos' / 'video.json'), '--result_path', str(out), '--file_type', 'video',
                             '--resume_path', str(result / 'save_latest.pth'), '--no_train', '--no_val',
                             '--inference', *TINY])
    assert code == 128 + signal.SIGINT
    assert not (out / 'val.json').exists()
    assert 'inference stopped' in capsys.readouterr().err
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_stop_signals_flag_a_first_signal_raise_on_a_second_and_restore_the_handlers():
    from runs.stopping import StopSignals
    before = signal.getsignal(signal.SIGINT)
    with StopSignals() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.local() and stop() and stop.signum == signal.SIGTERM
        os.kill(os.getpid(), signal.SIGINT)  # after TERM, a first INT is still only a request
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)  # a second INT: stop now
    assert signal.getsignal(signal.SIGINT) is before


def test_demo_and_main_do_not_import_each_other():
    code = ('import sys, demo; assert "main" not in sys.modules, "demo imported main"')
    subprocess.run([sys.executable, '-c', code], cwd=ROOT, check=True)


@pytest.mark.parametrize('package', ['common', 'models', 'datasets', 'conversion', 'runs', 'evaluation', 'visuals',
                                     'distributed', 'preprocessing', 'demo', 'training', 'validation', 'inference',
                                     'spatial_transforms', 'temporal_transforms', 'opts', 'main'])
def test_library_code_imports_nothing_from_util_scripts(package):
    sources = [ROOT / f'{package}.py'] if (ROOT / f'{package}.py').exists() else \
        sorted((ROOT / package).rglob('*.py'))
    for source in sources:
        text = source.read_text()
        assert 'from util_scripts' not in text and 'import util_scripts' not in text, source


def test_no_source_file_is_longer_than_400_lines():
    tracked = subprocess.run(['git', 'ls-files', '*.py'], cwd=ROOT, capture_output=True, text=True).stdout.split()
    long = [f'{f}: {n}' for f in tracked if (ROOT / f).exists()
            for n in [len((ROOT / f).read_text().splitlines())] if n > 400]
    assert not long, long


def test_main_run_reads_in_a_page():
    import inspect
    assert len(inspect.getsource(main_module.run).splitlines()) < 80
