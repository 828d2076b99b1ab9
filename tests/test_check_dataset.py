"""check_dataset: the pre-flight scan finds every kind of problem and counts them."""
from tests.video_fixtures import entry, moving_frames, write_annotation, write_hdf5, write_jpg_folder, write_video
from util_scripts import check_dataset


def test_jpg_scan_reports_every_problem(tmp_path, capsys):
    root = tmp_path / 'jpg'
    write_jpg_folder(root / 'a' / 'fine', moving_frames(16, 16, 16))
    broken = write_jpg_folder(root / 'a' / 'broken', moving_frames(16, 16, 16))
    data = (broken / 'image_00003.jpg').read_bytes()
    (broken / 'image_00003.jpg').write_bytes(data[:len(data) // 2])
    (broken / 'image_00009.jpg').unlink()
    write_jpg_folder(root / 'b' / 'short', moving_frames(5, 16, 16))
    (root / 'b' / 'empty').mkdir(parents=True)
    ann = write_annotation(tmp_path / 'ann.json', ['a', 'b'], {
        'fine': entry('training', 'a', (1, 17)), 'broken': entry('training', 'a', (1, 17)),
        'short': entry('validation', 'b', (1, 6)), 'empty': entry('validation', 'b', (1, 1)),
        'gone': entry('validation', 'b', (1, 17)),
    })
    assert check_dataset.main([str(ann), str(root), '--file_type', 'jpg']) == 1
    out = capsys.readouterr().out
    lines = {tuple(line.split()[:3]) for line in out.splitlines()}
    assert ('broken', 'training', 'bad') in lines and ('broken', 'training', 'missing') in lines
    assert ('short', 'validation', 'too') in lines and ('gone', 'validation', 'missing') in lines
    assert ('empty', 'validation', 'empty') in lines and not any(line[:1] == ('fine',) for line in lines)
    assert 'image_00003.jpg' in out and 'image_00009.jpg' in out
    assert out.strip().splitlines()[-1] == ('5 videos listed; 3 with problems that lose data; '
                                            '1 bad frames, 1 empty, 1 missing, 1 missing frames, 1 too short')


def test_hdf5_and_video_scans(tmp_path, capsys):
    write_hdf5(tmp_path / 'h' / 'a' / 'ok.hdf5', moving_frames(8, 16, 16))
    cut = write_hdf5(tmp_path / 'h' / 'a' / 'cut.hdf5', moving_frames(8, 16, 16))
    cut.write_bytes(cut.read_bytes()[:300])
    ann = write_annotation(tmp_path / 'h.json', ['a'], {'ok': entry('training', 'a', (0, 8)),
                                                        'cut': entry('training', 'a', (0, 8)),
                                                        'long': entry('training', 'a', (0, 8))})
    write_hdf5(tmp_path / 'h' / 'a' / 'long.hdf5', moving_frames(5, 16, 16))
    assert check_dataset.main([str(ann), str(tmp_path / 'h'), '--file_type', 'hdf5', '--sample_duration', '4',
                               '--n_jobs', '2']) == 1
    out = capsys.readouterr().out
    assert 'cut' in out and 'unreadable' in out and '3 beyond the 5 stored' in out

    write_video(tmp_path / 'v' / 'a' / 'ok.mp4', moving_frames(12, 32, 32))
    bad = write_video(tmp_path / 'v' / 'a' / 'bad.mp4', moving_frames(12, 32, 32))
    bad.write_bytes(b'\0' * 100)
    ann = write_annotation(tmp_path / 'v.json', ['a'], {'ok': entry('training', 'a', (0, 12)),
                                                        'bad': entry('training', 'a', (0, 12))})
    assert check_dataset.main([str(ann), str(tmp_path / 'v'), '--file_type', 'video', '--sample_duration', '8']) == 1
    out = capsys.readouterr().out
    assert 'bad' in out and 'unreadable' in out and out.strip().endswith('1 unreadable')
    ann = write_annotation(tmp_path / 'v2.json', ['a'], {'ok': entry('training', 'a', (0, 12))})
    assert check_dataset.main([str(ann), str(tmp_path / 'v'), '--file_type', 'video', '--sample_duration', '8']) == 0
    assert capsys.readouterr().out.strip().endswith('0 with problems that lose data; no problems')


def test_usage_mistakes_exit_2(tmp_path, capsys):
    assert check_dataset.main([str(tmp_path / 'no.json'), str(tmp_path), '--file_type', 'jpg']) == 2
    assert 'no.json: annotation file not found' in capsys.readouterr().err
    assert check_dataset.main([str(tmp_path / 'no.json'), str(tmp_path / 'nowhere')]) == 2
