"""Annotation JSON builders (util_scripts/*_json.py, add_fps) and their shared module."""
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from util_scripts import (add_fps_into_activitynet_json, annotation_utils, folder_json,
                          hmdb51_json, kinetics_json, mit_json, ucf101_json)
from util_scripts.annotation_utils import count_frames, video_path_for

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- fixtures

def make_frames(folder: Path, n: int) -> Path:
    """A fake frame folder: n empty image_%05d.jpg files and two files that are not frames."""
    folder.mkdir(parents=True)
    for i in range(1, n + 1):
        (folder / f'image_{i:05d}.jpg').touch()
    (folder / 'flow_x_00001.jpg').touch()
    (folder / 'image_00001.png').touch()
    return folder


def make_hdf5(path: Path, n: int) -> Path:
    """An hdf5 video: a vlen uint8 'video' dataset of n (fake) JPEG byte strings."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, 'w') as f:
        data = f.create_dataset('video', (n,), dtype=h5py.vlen_dtype(np.dtype('uint8')))
        for i in range(n):
            data[i] = np.frombuffer(b'\xff\xd8jpeg' + bytes([i]), dtype=np.uint8)
    return path


@pytest.fixture(scope='module')
def avi(tmp_path_factory) -> bytes:
    """Bytes of an 8-frame 32x32 mpeg4 .avi at 25 fps."""
    av = pytest.importorskip('av')
    path = tmp_path_factory.mktemp('video') / 'clip.avi'
    with av.open(str(path), 'w') as container:
        stream = container.add_stream('mpeg4', rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 32, 'yuv420p'
        for i in range(8):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 30, np.uint8), 'rgb24')
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path.read_bytes()


def put(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def one_line_error(capsys, *names: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith('error: ') and '\n' not in err, err
    for name in names:
        assert name in err, err
    return err


def leftovers(folder: Path) -> list:
    return [p.name for p in folder.iterdir() if p.name.endswith('.tmp')]


# ----------------------------------------------------------------------------- shared module

def test_count_frames_per_file_type(tmp_path, avi):
    assert count_frames(make_frames(tmp_path / 'f', 5), 'jpg') == 5
    assert count_frames(make_hdf5(tmp_path / 'h.hdf5', 7), 'hdf5') == 7
    assert count_frames(put(tmp_path / 'v.avi', avi), 'video') == 8
    assert annotation_utils.probe_video(tmp_path / 'v.avi') == (8, 25.0)
    assert annotation_utils.segment_for(5, 'jpg') == [1, 6]
    assert annotation_utils.segment_for(5, 'hdf5') == [0, 5]
    with pytest.raises(ValueError):
        count_frames(tmp_path / 'f', 'png')


def test_video_path_for_each_type_and_the_test_folder(tmp_path, avi):
    make_frames(tmp_path / 'jpg' / 'run' / 'v1', 1)
    make_hdf5(tmp_path / 'h5' / 'test' / 'v2.hdf5', 1)
    put(tmp_path / 'vid' / 'run' / 'v3.MKV', avi)
    (tmp_path / 'vid' / 'run' / 'v3.txt').touch()
    assert video_path_for(tmp_path / 'jpg', 'run', 'v1', 'jpg') == tmp_path / 'jpg/run/v1'
    assert video_path_for(tmp_path / 'h5', None, 'v2', 'hdf5') == tmp_path / 'h5/test/v2.hdf5'
    assert video_path_for(tmp_path / 'vid', 'run', 'v3', 'video') == tmp_path / 'vid/run/v3.MKV'
    assert video_path_for(tmp_path / 'jpg', 'run', 'v9', 'jpg') is None
    assert video_path_for(tmp_path / 'vid', 'walk', 'v3', 'video') is None
    listings = {}
    assert video_path_for(tmp_path / 'vid', 'run', 'v3', 'video', listings) is not None
    assert list(listings) == [tmp_path / 'vid' / 'run']


# ----------------------------------------------------------------------------- kinetics

KINETICS_TRAIN = ('label,youtube_id,time_start,time_end,split\n'
                  'zumba,aaa,0,10,train\n'
                  '"abseiling, rope",bbb,5,15,train\n'
                  'zumba,ccc,12,22,train\n'
                  'zumba,aaa,0,10,train\n')
KINETICS_VAL = ('label,youtube_id,time_start,time_end,split\n'
                '"abseiling, rope",ddd,1,11,val\n'
                'yoga,eee,0,10,val\n')
KINETICS_TEST = 'youtube_id,time_start,time_end,split\nfff,3,13,test\nggg,0,10,test\n'


def kinetics_inputs(tmp_path, names=('kinetics-400_train.csv', 'kinetics-400_val.csv',
                                     'kinetics-400_test.csv')):
    csv_dir = tmp_path / 'csv'
    for name, text in zip(names, (KINETICS_TRAIN, KINETICS_VAL, KINETICS_TEST)):
        write(csv_dir / name, text)
    return csv_dir


def test_kinetics_jpg_exact_json_and_report(tmp_path, capsys):
    csv_dir = kinetics_inputs(tmp_path)
    root = tmp_path / 'jpg'
    make_frames(root / 'zumba' / 'aaa_000000_000010', 4)
    make_frames(root / 'abseiling, rope' / 'bbb_000005_000015', 2)
    make_frames(root / 'abseiling, rope' / 'ddd_000001_000011', 3)
    make_frames(root / 'test' / 'fff_000003_000013', 5)
    dst = tmp_path / 'out' / 'sub' / 'kinetics.json'
    assert kinetics_json.main([str(csv_dir), '400', str(root), 'jpg', str(dst)]) == 0
    assert load(dst) == {
        'labels': ['zumba', 'abseiling, rope'],
        'database': {
            'bbb_000005_000015': {'subset': 'training',
                                  'annotations': {'label': 'abseiling, rope', 'segment': [1, 3]}},
            'ccc_000012_000022': {'subset': 'training', 'annotations': {'label': 'zumba'}},
            'aaa_000000_000010': {'subset': 'training',
                                  'annotations': {'label': 'zumba', 'segment': [1, 5]}},
            'ddd_000001_000011': {'subset': 'validation',
                                  'annotations': {'label': 'abseiling, rope', 'segment': [1, 4]}},
            'eee_000000_000010': {'subset': 'validation', 'annotations': {'label': 'yoga'}},
            'fff_000003_000013': {'subset': 'testing', 'annotations': {'segment': [1, 6]}},
            'ggg_000000_000010': {'subset': 'testing', 'annotations': {}},
        }}
    # CSV order; a repeated id keeps its first place (the original's dict semantics)
    assert list(load(dst)['database'])[:3] == ['aaa_000000_000010', 'bbb_000005_000015',
                                               'ccc_000012_000022']
    out = capsys.readouterr().out
    assert 'entries: 7 (training 3, validation 2, testing 2)' in out
    assert 'classes: 2' in out
    assert 'missing on disk (kept without a segment): 3 (ccc_000012_000022, ' \
           'eee_000000_000010, ggg_000000_000010)' in out
    assert "labels not in 'labels': 1 (yoga x1)" in out
    assert 'duplicate ids (one entry kept per id): 1 (aaa_000000_000010)' in out
    assert 'the train CSV has 2 labels, N_CLASSES is 400' in out
    assert leftovers(dst.parent) == []


def test_kinetics_sort_labels_fallback_names_and_hdf5(tmp_path, capsys):
    csv_dir = kinetics_inputs(tmp_path, names=('train.csv', 'validate.csv', 'unused.csv'))
    root = tmp_path / 'h5'
    make_hdf5(root / 'zumba' / 'ccc_000012_000022.hdf5', 6)
    dst = tmp_path / 'k.json'
    assert kinetics_json.main([str(csv_dir), '700', str(root), 'hdf5', str(dst),
                               '--sort_labels']) == 0
    data = load(dst)
    assert data['labels'] == ['abseiling, rope', 'zumba']
    assert data['database']['ccc_000012_000022']['annotations']['segment'] == [0, 6]
    assert not any(e['subset'] == 'testing' for e in data['database'].values())
    assert 'no test CSV (kinetics-700_test.csv)' in capsys.readouterr().out


def test_kinetics_video_files(tmp_path, avi):
    csv_dir = kinetics_inputs(tmp_path, names=('kinetics_train.csv', 'kinetics_val.csv',
                                               'kinetics_test.csv'))
    put(tmp_path / 'v' / 'zumba' / 'aaa_000000_000010.mp4', avi)  # extension need not match
    put(tmp_path / 'v' / 'test' / 'ggg_000000_000010.avi', avi)
    assert kinetics_json.main([str(csv_dir), '400', str(tmp_path / 'v'), 'video',
                               str(tmp_path / 'k.json')]) == 0
    db = load(tmp_path / 'k.json')['database']
    assert db['aaa_000000_000010']['annotations'] == {'label': 'zumba', 'segment': [0, 8]}
    assert db['ggg_000000_000010']['annotations'] == {'segment': [0, 8]}


def test_kinetics_user_mistakes_are_one_line_errors(tmp_path, capsys):
    csv_dir = kinetics_inputs(tmp_path)
    (tmp_path / 'jpg').mkdir()
    args = [str(csv_dir), '400', str(tmp_path / 'jpg'), 'jpg', str(tmp_path / 'k.json')]
    (csv_dir / 'kinetics-400_val.csv').unlink()
    assert kinetics_json.main(args) == 2
    one_line_error(capsys, 'kinetics-400_val.csv')
    write(csv_dir / 'kinetics-400_val.csv', 'label,id,time_start,time_end\nzumba,x,0,10\n')
    assert kinetics_json.main(args) == 2
    one_line_error(capsys, 'kinetics-400_val.csv', 'bad header', 'youtube_id')
    write(csv_dir / 'kinetics-400_val.csv', 'label,youtube_id,time_start,time_end\nzumba,x,a,b\n')
    assert kinetics_json.main(args) == 2
    one_line_error(capsys, 'kinetics-400_val.csv', 'row 1')
    (csv_dir / 'kinetics-400_val.csv').write_bytes(b'label,youtube_id\n\xff\xfe\x00bad\n')
    assert kinetics_json.main(args) == 2
    one_line_error(capsys, 'kinetics-400_val.csv')
    write(csv_dir / 'kinetics-400_val.csv', KINETICS_VAL)
    args[2] = str(tmp_path / 'nowhere')
    assert kinetics_json.main(args) == 2
    one_line_error(capsys, 'nowhere')
    assert not (tmp_path / 'k.json').exists()


# ----------------------------------------------------------------------------- ucf101

def ucf_inputs(tmp_path, splits=(1, 2)):
    ann = tmp_path / 'ann'
    write(ann / 'classInd.txt', '1 WalkingWithDog\r\n2 ApplyEyeMakeup\r\n3 Biking\r\n')
    for k in splits:
        write(ann / f'trainlist0{k}.txt',
              f'WalkingWithDog/v_WalkingWithDog_g0{k}_c01.avi 1\r\n'
              f'ApplyEyeMakeup/v_ApplyEyeMakeup_g0{k}_c01.avi 2\r\n\r\n')
        write(ann / f'testlist0{k}.txt',
              f'Biking/v_Biking_g0{k}_c01.avi\r\nSkiing/v_Skiing_g0{k}_c01.avi\r\n')
    return ann


def test_ucf101_exact_json_missing_folders_and_skipped_split(tmp_path, capsys):
    ann = ucf_inputs(tmp_path)
    root = tmp_path / 'jpg'
    make_frames(root / 'WalkingWithDog' / 'v_WalkingWithDog_g01_c01', 3)
    make_frames(root / 'Biking' / 'v_Biking_g01_c01', 2)
    dst_dir = tmp_path / 'out' / 'ucf'
    assert ucf101_json.main([str(ann), str(root), str(dst_dir)]) == 0
    assert sorted(p.name for p in dst_dir.iterdir()) == ['ucf101_01.json', 'ucf101_02.json']
    assert load(dst_dir / 'ucf101_01.json') == {
        'labels': ['WalkingWithDog', 'ApplyEyeMakeup', 'Biking'],
        'database': {
            'v_WalkingWithDog_g01_c01': {'subset': 'training', 'annotations': {
                'label': 'WalkingWithDog', 'segment': [1, 4]}},
            'v_ApplyEyeMakeup_g01_c01': {'subset': 'training', 'annotations': {
                'label': 'ApplyEyeMakeup'}},
            'v_Biking_g01_c01': {'subset': 'validation', 'annotations': {
                'label': 'Biking', 'segment': [1, 3]}},
            'v_Skiing_g01_c01': {'subset': 'validation', 'annotations': {'label': 'Skiing'}},
        }}
    out = capsys.readouterr().out
    assert 'entries: 4 (training 2, validation 2)' in out and 'classes: 3' in out
    assert 'missing on disk (kept without a segment): 2 (v_ApplyEyeMakeup_g01_c01, ' \
           'v_Skiing_g01_c01)' in out
    assert 'missing on disk (kept without a segment): 4' in out  # split 2: nothing on disk
    assert "labels not in 'labels': 1 (Skiing x1)" in out
    assert 'split 3 skipped: trainlist03.txt and testlist03.txt not found' in out


def test_ucf101_hdf5_and_video_file_types(tmp_path, avi):
    ann = ucf_inputs(tmp_path, splits=(1,))
    make_hdf5(tmp_path / 'h5' / 'Biking' / 'v_Biking_g01_c01.hdf5', 9)
    put(tmp_path / 'vid' / 'Biking' / 'v_Biking_g01_c01.avi', avi)
    assert ucf101_json.main([str(ann), str(tmp_path / 'h5'), str(tmp_path / 'a'),
                             '--file_type', 'hdf5']) == 0
    assert ucf101_json.main([str(ann), str(tmp_path / 'vid'), str(tmp_path / 'b'),
                             '--file_type', 'video']) == 0
    seg = lambda d: load(tmp_path / d / 'ucf101_01.json')['database']['v_Biking_g01_c01'][
        'annotations']['segment']
    assert seg('a') == [0, 9] and seg('b') == [0, 8]


def test_ucf101_user_mistakes(tmp_path, capsys):
    (tmp_path / 'jpg').mkdir()
    assert ucf101_json.main([str(tmp_path / 'ann'), str(tmp_path / 'jpg'), str(tmp_path)]) == 2
    one_line_error(capsys, 'classInd.txt')
    write(tmp_path / 'ann' / 'classInd.txt', '1 Biking\n')
    assert ucf101_json.main([str(tmp_path / 'ann'), str(tmp_path / 'jpg'), str(tmp_path)]) == 2
    one_line_error(capsys, 'trainlist0k.txt', 'ann')
    write(tmp_path / 'ann' / 'trainlist01.txt', 'no_slash.avi 1\n')
    write(tmp_path / 'ann' / 'testlist01.txt', 'Biking/v_Biking_g01_c01.avi\n')
    assert ucf101_json.main([str(tmp_path / 'ann'), str(tmp_path / 'jpg'), str(tmp_path)]) == 2
    one_line_error(capsys, 'trainlist01.txt', 'line 1')


def test_help_runs_as_a_module():
    for name in ('ucf101_json', 'kinetics_json', 'hmdb51_json', 'mit_json', 'folder_json',
                 'add_fps_into_activitynet_json'):
        proc = subprocess.run([sys.executable, '-m', f'util_scripts.{name}', '--help'],
                              cwd=REPO, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert f'python -m util_scripts.{name}' in proc.stdout


# ----------------------------------------------------------------------------- hmdb51

def test_hmdb51_exact_json_splits_and_ignored_files(tmp_path, capsys):
    splits = tmp_path / 'splits'
    write(splits / 'brush_hair_test_split1.txt', 'Brush_1.avi 1 \nBrush_2.avi 2 \nBrush_3.avi 0 \n')
    write(splits / 'cartwheel_test_split1.txt', 'Wheel_1.avi 2 \n')
    write(splits / 'brush_hair_test_split2.txt', 'Brush_1.avi 2 \nBrush_3.avi 1 \n')
    write(splits / 'cartwheel_test_split2.txt', 'Wheel_1.avi 0 \n')
    write(splits / 'hmdb51_1.json', '{}')  # output of an earlier run in the same folder
    root = tmp_path / 'h5'
    make_hdf5(root / 'brush_hair' / 'Brush_1.hdf5', 4)
    make_hdf5(root / 'cartwheel' / 'Wheel_1.hdf5', 2)
    assert hmdb51_json.main([str(splits), str(root), str(tmp_path / 'out'),
                             '--file_type', 'hdf5']) == 0
    assert load(tmp_path / 'out' / 'hmdb51_1.json') == {
        'labels': ['brush_hair', 'cartwheel'],
        'database': {
            'Brush_1': {'subset': 'training', 'annotations': {'label': 'brush_hair',
                                                              'segment': [0, 4]}},
            'Brush_2': {'subset': 'validation', 'annotations': {'label': 'brush_hair'}},
            'Wheel_1': {'subset': 'validation', 'annotations': {'label': 'cartwheel',
                                                               'segment': [0, 2]}},
        }}
    split2 = load(tmp_path / 'out' / 'hmdb51_2.json')
    assert split2['labels'] == ['brush_hair', 'cartwheel']
    assert {k: v['subset'] for k, v in split2['database'].items()} == {
        'Brush_1': 'validation', 'Brush_3': 'training'}
    assert not (tmp_path / 'out' / 'hmdb51_3.json').exists()
    out = capsys.readouterr().out
    assert 'missing on disk (kept without a segment): 1 (Brush_2)' in out
    assert 'split 3 skipped' in out


def test_hmdb51_jpg_and_user_mistakes(tmp_path, capsys):
    splits = tmp_path / 'splits'
    write(splits / 'run_test_split1.txt', 'Run_1.avi 1\n')
    make_frames(tmp_path / 'jpg' / 'run' / 'Run_1', 6)
    assert hmdb51_json.main([str(splits), str(tmp_path / 'jpg'), str(tmp_path / 'o')]) == 0
    assert load(tmp_path / 'o' / 'hmdb51_1.json')['database']['Run_1']['annotations'] == {
        'label': 'run', 'segment': [1, 7]}
    write(splits / 'run_test_split1.txt', 'Run_1.avi 7\n')
    assert hmdb51_json.main([str(splits), str(tmp_path / 'jpg'), str(tmp_path / 'o')]) == 2
    one_line_error(capsys, 'run_test_split1.txt', 'line 1')
    assert hmdb51_json.main([str(tmp_path / 'nope'), str(tmp_path / 'jpg'), str(tmp_path)]) == 2
    one_line_error(capsys, 'nope')
    assert hmdb51_json.main([str(tmp_path / 'jpg'), str(tmp_path / 'jpg'), str(tmp_path)]) == 2
    one_line_error(capsys, '_test_split')


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
