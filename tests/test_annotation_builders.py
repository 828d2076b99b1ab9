"""Annotation JSON builders (mit, add_fps_into_activitynet_json, folder) and what all builders report."""
import json
from pathlib import Path

import pytest

from tests.annotation_helpers import (avi, leftovers, load, make_frames, make_hdf5,  # noqa: F401
                                      one_line_error, put, write)
from util_scripts import add_fps_into_activitynet_json, folder_json, mit_json


# ----------------------------------------------------------------------------- mit

def mit_inputs(tmp_path, test=True):
    d = tmp_path / 'mit'
    write(d / 'moments_categories.txt', 'running,0\nbaking,1\nclapping,2\n')
    write(d / 'trainingSet.csv', 'running/yt-abc_1.mp4,running,3,0\n'
                                 'baking/flickr-x.y.mp4,baking,2,1\n')
    write(d / 'validationSet.csv', 'clapping/getty-9.mp4,clapping,3,0\n'
                                   'swimming/meta-1.mp4,swimming,3,0\n')
    if test:
        write(d / 'testingSet.csv', 'test-1.mp4\ntest-2.mp4\n')
    return d


def test_mit_exact_json(tmp_path, capsys):
    d = mit_inputs(tmp_path)
    root = tmp_path / 'jpg'
    make_frames(root / 'running' / 'yt-abc_1', 3)
    make_frames(root / 'baking' / 'flickr-x.y', 2)
    make_frames(root / 'test' / 'test-1', 4)
    assert mit_json.main([str(d), str(root), str(tmp_path / 'mit.json')]) == 0
    assert load(tmp_path / 'mit.json') == {
        'labels': ['running', 'baking', 'clapping'],
        'database': {
            'yt-abc_1': {'subset': 'training', 'annotations': {'label': 'running',
                                                               'segment': [1, 4]}},
            'flickr-x.y': {'subset': 'training', 'annotations': {'label': 'baking',
                                                                 'segment': [1, 3]}},
            'getty-9': {'subset': 'validation', 'annotations': {'label': 'clapping'}},
            'meta-1': {'subset': 'validation', 'annotations': {'label': 'swimming'}},
            'test-1': {'subset': 'testing', 'annotations': {'segment': [1, 5]}},
            'test-2': {'subset': 'testing', 'annotations': {}},
        }}
    out = capsys.readouterr().out
    assert 'entries: 6 (training 2, validation 2, testing 2)' in out
    assert 'missing on disk (kept without a segment): 3 (getty-9, meta-1, test-2)' in out
    assert "labels not in 'labels': 1 (swimming x1)" in out


def test_mit_without_test_csv_video_type_and_mistakes(tmp_path, avi, capsys):
    d = mit_inputs(tmp_path, test=False)
    put(tmp_path / 'vid' / 'clapping' / 'getty-9.mp4', avi)
    assert mit_json.main([str(d), str(tmp_path / 'vid'), str(tmp_path / 'm.json'),
                          '--file_type', 'video']) == 0
    db = load(tmp_path / 'm.json')['database']
    assert db['getty-9']['annotations']['segment'] == [0, 8]
    assert 'no testingSet.csv' in capsys.readouterr().out
    (d / 'trainingSet.csv').unlink()
    assert mit_json.main([str(d), str(tmp_path / 'vid'), str(tmp_path / 'm.json')]) == 2
    one_line_error(capsys, 'trainingSet.csv')
    write(d / 'trainingSet.csv', 'running.mp4\n')
    assert mit_json.main([str(d), str(tmp_path / 'vid'), str(tmp_path / 'm.json')]) == 2
    one_line_error(capsys, 'trainingSet.csv', 'row 1')


# ----------------------------------------------------------------------------- activitynet fps

def test_add_fps_writes_fps_and_n_frames(tmp_path, avi, capsys):
    videos = tmp_path / 'videos'
    put(videos / 'v_aaa.avi', avi)                        # video only: packets
    put(videos / 'v_bbb.mkv', avi)                        # video and frames: frame count
    make_frames(videos / 'v_bbb', 5)
    make_frames(videos / 'v_ccc', 3)                      # frames only: no fps
    src = {'version': 'VERSION 1.3', 'taxonomy': [{'nodeId': 0}],
           'database': {k: {'subset': s, 'annotations': [{'segment': [0.5, 2.0], 'label': 'x'}]}
                        for k, s in [('aaa', 'training'), ('bbb', 'validation'),
                                     ('ccc', 'training'), ('ddd', 'testing')]}}
    write(tmp_path / 'anet.json', json.dumps(src))
    dst = tmp_path / 'out' / 'anet_fps.json'
    assert add_fps_into_activitynet_json.main([str(videos), str(tmp_path / 'anet.json'),
                                               str(dst)]) == 0
    assert load(tmp_path / 'anet.json') == src
    data = load(dst)
    db = data['database']
    assert (db['aaa']['fps'], db['aaa']['n_frames']) == (25.0, 8)
    assert (db['bbb']['fps'], db['bbb']['n_frames']) == (25.0, 5)
    assert 'fps' not in db['ccc'] and db['ccc']['n_frames'] == 3
    assert db['ddd'] == src['database']['ddd']
    assert data['taxonomy'] == src['taxonomy'] and db['aaa']['annotations'] == \
        src['database']['aaa']['annotations']
    out = capsys.readouterr().out
    assert 'entries: 4 (training 2, validation 1, testing 1)' in out
    assert 'fps and n_frames written: 3 (n_frames from frame folders 2, from video packets 1)' \
        in out
    assert f'not found in {videos}: 1 (ddd)' in out
    assert 'no fps (frame folder without a video, or no rate in it): 1 (ccc)' in out
    # no DST_JSON: the input is replaced atomically
    assert add_fps_into_activitynet_json.main([str(videos), str(tmp_path / 'anet.json')]) == 0
    assert load(tmp_path / 'anet.json') == data
    assert leftovers(tmp_path) == []


def test_add_fps_user_mistakes(tmp_path, capsys):
    (tmp_path / 'videos').mkdir()
    assert add_fps_into_activitynet_json.main([str(tmp_path / 'videos'),
                                               str(tmp_path / 'none.json')]) == 2
    one_line_error(capsys, 'none.json')
    write(tmp_path / 'bad.json', '{"database": ')
    assert add_fps_into_activitynet_json.main([str(tmp_path / 'videos'),
                                               str(tmp_path / 'bad.json')]) == 2
    one_line_error(capsys, 'bad.json')
    write(tmp_path / 'bad.json', '{"labels": []}')
    assert add_fps_into_activitynet_json.main([str(tmp_path / 'videos'),
                                               str(tmp_path / 'bad.json')]) == 2
    one_line_error(capsys, 'bad.json', 'database')


# ----------------------------------------------------------------------------- folder

def folder_dataset(root: Path, sizes: dict) -> Path:
    for label, n in sizes.items():
        (root / label).mkdir(parents=True)
        for i in range(n):
            make_frames(root / label / f'{label}_{i:02d}', 2 + i % 3)
    return root


def test_folder_json_stratified_and_reproducible(tmp_path, capsys):
    root = folder_dataset(tmp_path / 'data', {'dog': 10, 'cat': 5, 'eel': 2, 'fox': 1, 'gnu': 0})
    (root / 'notes.txt').touch()
    (root / 'cat' / 'readme.txt').touch()
    dst = tmp_path / 'a.json'
    assert folder_json.main([str(root), str(dst)]) == 0
    data = load(dst)
    assert data['labels'] == ['cat', 'dog', 'eel', 'fox']
    db = data['database']
    assert len(db) == 18
    assert db['dog_01'] == {'subset': db['dog_01']['subset'],
                            'annotations': {'label': 'dog', 'segment': [1, 4]}}
    subsets = {label: sorted(e['subset'] for e in db.values()
                             if e['annotations']['label'] == label) for label in data['labels']}
    assert subsets['dog'].count('validation') == 2
    assert subsets['cat'].count('validation') == 1
    assert subsets['eel'] == ['training', 'validation']
    assert subsets['fox'] == ['training']
    out = capsys.readouterr().out
    assert 'gnu' in out and 'classes with one video (training only): fox' in out
    assert 'entries: 18 (training 14, validation 4)' in out
    # same seed: identical file; other seeds: other draws, same per-class counts
    assert folder_json.main([str(root), str(tmp_path / 'b.json')]) == 0
    assert (tmp_path / 'b.json').read_bytes() == dst.read_bytes()
    draws = set()
    for seed in range(1, 6):
        assert folder_json.main([str(root), str(tmp_path / 'c.json'), '--seed', str(seed)]) == 0
        other = load(tmp_path / 'c.json')['database']
        draws.add(tuple(sorted(k for k, e in other.items() if e['subset'] == 'validation')))
        assert sum(e['subset'] == 'validation' for e in other.values()) == 4
    assert len(draws) > 1
    assert folder_json.main([str(root), str(tmp_path / 'd.json'), '--val_fraction', '0']) == 0
    assert {e['subset'] for e in load(tmp_path / 'd.json')['database'].values()} == {'training'}


@pytest.mark.parametrize('fraction', [0.05, 0.2, 0.34, 0.5, 0.6, 0.75, 0.99])
def test_folder_json_one_rule_at_every_fraction(tmp_path, capsys, fraction):
    """A class with one video is training only, as the note says; every other class has videos in both subsets."""
    root = folder_dataset(tmp_path / 'data', {'solo': 1, 'pair': 2, 'trio': 3, 'many': 9})
    assert folder_json.main([str(root), str(tmp_path / 'a.json'), '--val_fraction', str(fraction)]) == 0
    assert 'classes with one video (training only): solo' in capsys.readouterr().out
    db = load(tmp_path / 'a.json')['database']
    subsets = {label: [e['subset'] for e in db.values() if e['annotations']['label'] == label]
               for label in ('solo', 'pair', 'trio', 'many')}
    assert subsets.pop('solo') == ['training']
    for label, found in subsets.items():
        assert set(found) == {'training', 'validation'}, (label, found)
        assert found.count('validation') == min(max(int(len(found) * fraction + 0.5), 1), len(found) - 1)


def test_a_subtitle_beside_a_video_is_never_the_video(tmp_path, avi, capsys):
    """One lookup: the builders and the loader's listing both take a.mp4, never a.srt, whatever the listing order."""
    from datasets import load_video_list
    from datasets.formats.video_layout import list_class_folder
    from datasets.video_paths import FolderListings
    folder = tmp_path / 'v' / 'run'
    put(folder / 'a.mp4', avi)
    write(folder / 'a.srt', '1\n00:00:00,000 --> 00:00:01,000\nhello\n')
    write(folder / 'b.srt', 'a subtitle without its video\n')
    assert list_class_folder(folder, 'video') == {'a': folder / 'a.mp4'}
    assert FolderListings().video_file(str(folder / 'a')) == str(folder / 'a.mp4')
    assert FolderListings().video_file(str(folder / 'b')) is None
    assert folder_json.main([str(tmp_path / 'v'), str(tmp_path / 'v.json'), '--file_type', 'video']) == 0
    videos = load_video_list([tmp_path / 'v.json'], [tmp_path / 'v'], 'training', 'video')
    assert [str(r.path) for r in videos.records] == [str(folder / 'a.mp4')]


def test_folder_json_hdf5_video_and_duplicates(tmp_path, avi, capsys):
    make_hdf5(tmp_path / 'h5' / 'a' / 'x.hdf5', 3)
    make_hdf5(tmp_path / 'h5' / 'b' / 'x.hdf5', 4)
    make_hdf5(tmp_path / 'h5' / 'b' / 'y.hdf5', 5)
    assert folder_json.main([str(tmp_path / 'h5'), str(tmp_path / 'h.json'),
                             '--file_type', 'hdf5']) == 0
    db = load(tmp_path / 'h.json')['database']
    assert db['x']['annotations'] == {'label': 'b', 'segment': [0, 4]}
    assert db['y']['annotations']['segment'] == [0, 5]
    assert 'duplicate ids (one entry kept per id): 1 (x)' in capsys.readouterr().out
    put(tmp_path / 'v' / 'run' / 'clip.avi', avi)
    put(tmp_path / 'v' / 'run' / 'clip.mp4', avi)
    put(tmp_path / 'v' / 'walk' / 'other.webm', avi)
    assert folder_json.main([str(tmp_path / 'v'), str(tmp_path / 'v.json'),
                             '--file_type', 'video']) == 0
    data = load(tmp_path / 'v.json')
    assert data['labels'] == ['run', 'walk']
    assert data['database']['clip']['annotations'] == {'label': 'run', 'segment': [0, 8]}
    assert 'duplicate ids (one entry kept per id): 1 (clip)' in capsys.readouterr().out


def test_folder_json_user_mistakes(tmp_path, capsys):
    assert folder_json.main([str(tmp_path / 'none'), str(tmp_path / 'x.json')]) == 2
    one_line_error(capsys, 'none')
    (tmp_path / 'empty' / 'cls').mkdir(parents=True)
    assert folder_json.main([str(tmp_path / 'empty'), str(tmp_path / 'x.json')]) == 2
    one_line_error(capsys, 'empty')
    assert folder_json.main([str(tmp_path / 'empty'), str(tmp_path / 'x.json'),
                             '--val_fraction', '1.5']) == 2
    one_line_error(capsys, '--val_fraction')


def test_broken_and_empty_videos_are_reported_not_fatal(tmp_path, capsys):
    write(tmp_path / 'h5' / 'run' / 'bad.hdf5', 'not hdf5')
    make_hdf5(tmp_path / 'h5' / 'run' / 'none.hdf5', 0)
    make_hdf5(tmp_path / 'h5' / 'run' / 'good.hdf5', 2)
    assert folder_json.main([str(tmp_path / 'h5'), str(tmp_path / 'h.json'),
                             '--file_type', 'hdf5']) == 0
    db = load(tmp_path / 'h.json')['database']
    assert 'segment' not in db['bad']['annotations']
    assert db['none']['annotations']['segment'] == [0, 0]
    out = capsys.readouterr().out
    assert 'unreadable: 1 (bad)' in out and 'no frames: 1 (none)' in out
    write(tmp_path / 'v' / 'run' / 'junk.mp4', 'not a video')
    (tmp_path / 'v' / 'run' / 'empty').mkdir()  # a folder: not a video file
    assert folder_json.main([str(tmp_path / 'v'), str(tmp_path / 'v.json'),
                             '--file_type', 'video']) == 0
    assert list(load(tmp_path / 'v.json')['database']) == ['junk']
    assert 'unreadable: 1 (junk)' in capsys.readouterr().out
    (tmp_path / 'j' / 'run' / 'empty').mkdir(parents=True)
    assert folder_json.main([str(tmp_path / 'j'), str(tmp_path / 'j.json')]) == 0
    assert load(tmp_path / 'j.json')['database']['empty']['annotations']['segment'] == [1, 1]
    assert 'no frames: 1 (empty)' in capsys.readouterr().out


def test_unwritable_destination_is_a_one_line_error(tmp_path, capsys):
    make_frames(tmp_path / 'data' / 'run' / 'a', 1)
    (tmp_path / 'file').touch()
    assert folder_json.main([str(tmp_path / 'data'), str(tmp_path / 'file' / 'x.json')]) == 2
    one_line_error(capsys, 'x.json')
