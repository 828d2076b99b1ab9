"""The built-in demo: real encoded videos whose classes need motion, and the whole pipeline on them."""
import numpy as np

import main as main_module
from conversion import demo_videos
from datasets.loaders import VideoLoader
import demo
def test_demo_dataset_is_ucf101_shaped_video_whose_classes_need_motion(tmp_path):
    splits = demo_videos.make_demo_dataset(tmp_path, videos_per_class=8, n_frames=12, show_progress=False)
    assert (splits / 'classInd.txt').read_text().splitlines()[0] == '1 MoveLeft'
    train = (splits / 'trainlist01.txt').read_text().splitlines()
    test = (splits / 'testlist01.txt').read_text().splitlines()
    assert len(train) == 36 and len(test) == 12 and train[0].endswith('.avi 1')
    assert all('_g01_' in t or '_g02_' in t for t in test)
    loader = VideoLoader()
    frames = {}
    for label in ('MoveLeft', 'MoveRight', 'Grow', 'Shrink'):
        clip, bad = loader(tmp_path / 'videos' / label / f'v_{label}_g01_c01.avi', list(range(12)))
        assert bad == 0 and clip.shape == (12, 3, 64, 80)
        frames[label] = clip.float()
    # the shape really moves: first and last frames differ much more than neighbouring ones
    for clip in frames.values():
        assert (clip[0] - clip[-1]).abs().mean() > 2 * (clip[5] - clip[6]).abs().mean()


def test_a_single_frame_does_not_reveal_the_class():
    """Object positions and sizes overlap across classes, so only motion separates them."""
    rng = np.random.default_rng(0)
    xs = {label: [demo_videos.trajectory(label, 32, rng)[16][0] for _ in range(200)]
          for label in ('MoveLeft', 'MoveRight')}
    assert abs(np.mean(xs['MoveLeft']) - np.mean(xs['MoveRight'])) < 6
    radii = {label: [demo_videos.trajectory(label, 32, rng)[16][2] for _ in range(200)]
             for label in ('Grow', 'Shrink')}
    assert abs(np.mean(radii['Grow']) - np.mean(radii['Shrink'])) < 1


def test_main_demo_runs_every_step(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(demo, 'VIDEOS_PER_CLASS', 8)
    assert main_module.main(['--demo', '--n_epochs', '1', '--no_progress', '--n_threads', '0']) == 0
    out = capsys.readouterr().out
    assert 'Demo video-level top-1 accuracy:' in out and '(chance: 16.7%)' in out
    results = tmp_path / 'demo_data' / 'results'
    for name in ('save_latest.pth', 'train.log', 'val.log', 'val.json', 'val_classes.png', 'opts.json'):
        assert (results / name).is_file(), name
    closing = out.strip().splitlines()[-1]
    named = [word.strip('(),') for word in closing.split() if word.strip('(),').endswith(('.png', '.tsv', '.json'))]
    assert {'curves.png', 'val_examples.png'} <= set(named)  # the two pictures a user most wants
    assert all((results / name).is_file() for name in named), named  # every file it names is there
    assert (tmp_path / 'demo_data' / 'ucf101_01.json').is_file()


def test_demo_data_of_an_older_renderer_is_made_again(tmp_path, monkeypatch):
    monkeypatch.setattr(demo, 'VIDEOS_PER_CLASS', 8)
    stale = tmp_path / 'videos' / 'MoveLeft' / 'v_MoveLeft_g01_c01.avi'
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b'old')
    (tmp_path / 'jpg' / 'MoveLeft' / 'v_MoveLeft_g01_c01').mkdir(parents=True)
    results = tmp_path / 'results'
    results.mkdir()
    (results / 'keep.txt').write_text('a user result')
    assert demo.prepare_demo_data(tmp_path) == 0
    assert stale.stat().st_size > 1000  # rendered again
    assert (tmp_path / 'VERSION').read_text().strip() == demo_videos.VERSION
    assert (results / 'keep.txt').is_file()
    assert len(list((tmp_path / 'jpg' / 'MoveLeft' / 'v_MoveLeft_g01_c01').glob('image_*.jpg'))) == 32


def test_frames_are_lit_from_above():
    frames = demo_videos.render('Grow', 4, np.random.default_rng(1))
    rows = np.stack(frames).astype(float).mean(axis=(0, 2, 3))
    assert rows[:8].mean() - rows[-8:].mean() > 40
