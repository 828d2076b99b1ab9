"""Annotation JSON builders (kinetics, ucf101, hmdb51) and their library (datasets.formats)."""
import subprocess
import sys
from pathlib import Path

import pytest

from datasets.formats.annotation_json import segment_for
from datasets.formats.video_files import probe_video
from datasets.formats.video_layout import count_frames, video_path_for
from tests.annotation_helpers import (avi, leftovers, load, make_frames, make_hdf5,  # noqa: F401
                                      one_line_error, put, write)
from util_scripts import hmdb51_json, kinetics_json, ucf101_json

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- shared module

def test_count_frames_per_file_type(tmp_path, avi):
    assert count_frames(make_frames(tmp_path / 'f', 5), 'jpg') == 5
    assert count_frames(make_hdf5(tmp_path / 'h.hdf5', 7), 'hdf5') == 7
    assert count_frames(put(tmp_path / 'v.avi', avi), 'video') == 8
    assert probe_video(tmp_path / 'v.avi') == (8, 25.0)
    assert segment_for(5, 'jpg') == [1, 6]
    assert segment_for(5, 'hdf5') == [0, 5]
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
