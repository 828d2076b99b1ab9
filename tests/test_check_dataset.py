"""check_dataset: the pre-flight scan finds every kind of problem and counts them."""
import numpy as np
import torch

from datasets import Hdf5Loader, JpgLoader
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


def _odd_first_frame(folder):
    """A 12-frame 16 x 16 folder whose first frame is 24 x 16: the loader's and the check's case."""
    write_jpg_folder(folder, moving_frames(12, 16, 16))
    write_jpg_folder(folder, moving_frames(1, 24, 16, seed=5))  # overwrites image_00001.jpg
    return folder


def test_a_frame_of_another_size_is_reported_and_replaced_even_first_in_the_clip(tmp_path, capsys):
    folder = _odd_first_frame(tmp_path / 'jpg' / 'a' / 'odd')
    ann = write_annotation(tmp_path / 'ann.json', ['a'], {'odd': entry('training', 'a', (1, 13))})
    for quick in ([], ['--quick']):
        assert check_dataset.main([str(ann), str(tmp_path / 'jpg'), '--file_type', 'jpg', '--sample_duration', '4',
                                   *quick]) == 1
        out = capsys.readouterr().out
        assert 'odd-size frames' in out and '1 not 16x16 as the rest: image_00001.jpg' in out
    clip, bad = JpgLoader()(folder, [1, 2, 3, 4])  # the odd frame first: the majority size still wins
    assert clip.shape == (4, 3, 16, 16) and bad == 1
    assert torch.equal(clip[0], clip[1])  # replaced by its nearest good neighbour
    clip, bad = JpgLoader()(folder, [1, 1, 2])  # even as the clip's majority: the video's size wins
    assert clip.shape == (3, 3, 16, 16) and bad == 2
    clip, bad = JpgLoader()(folder, [1])  # a clip of only that frame keeps it: nothing else to stack
    assert clip.shape == (1, 3, 24, 16) and bad == 0


def test_hdf5_frames_of_another_size_are_reported_and_replaced(tmp_path, capsys):
    frames = moving_frames(10, 16, 16)
    frames[0] = moving_frames(1, 24, 16, seed=5)[0]
    path = write_hdf5(tmp_path / 'h' / 'a' / 'odd.hdf5', frames)
    ann = write_annotation(tmp_path / 'h.json', ['a'], {'odd': entry('training', 'a', (0, 10))})
    assert check_dataset.main([str(ann), str(tmp_path / 'h'), '--file_type', 'hdf5', '--sample_duration', '4']) == 1
    assert '1 not 16x16 as the rest: video[0]' in capsys.readouterr().out
    clip, bad = Hdf5Loader()(path, [0, 0, 1])
    assert clip.shape == (3, 3, 16, 16) and bad == 2


def test_a_video_cut_short_is_a_conversion_warning_and_a_check_problem(tmp_path):
    """A file cut short decodes to its end without an error: only its header's frame count tells."""
    from conversion.writers import encode_video
    from tests.conversion_tree import run_main
    from util_scripts import generate_video_jpgs
    src = tmp_path / 'videos' / 'a'
    src.mkdir(parents=True)
    encode_video(src / 'whole.avi', moving_frames(40, 48, 64), 'mpeg4', 25, {'g': '8'}, bit_rate=2_000_000)
    data = (src / 'whole.avi').read_bytes()
    (src / 'cut.avi').write_bytes(data[:len(data) * 2 // 5])
    rc, out = run_main(generate_video_jpgs, [tmp_path / 'videos', tmp_path / 'jpg', 'kinetics', '--size', '32'])
    assert rc == 0 and 'converted 2, skipped 0 (already done), failed 0, warnings 1' in out
    warned = [line for line in out.splitlines() if line.startswith('WARNING')]
    assert len(warned) == 1 and 'cut.avi' in warned[0] and 'of the 40 frames its header declares' in warned[0]
    ann = write_annotation(tmp_path / 'v.json', ['a'], {'whole': entry('training', 'a', (0, 40)),
                                                        'cut': entry('training', 'a', (0, 6))})
    for quick in ([], ['--quick']):
        rc, out = run_main(check_dataset, [ann, tmp_path / 'videos', '--file_type', 'video', '--sample_duration', '4',
                                           *quick])
        assert rc == 1 and 'truncated' in out and 'of the 40 frames its header declares' in out, out
        assert 'whole' not in out.split('truncated')[0].splitlines()[-1]


def test_an_undecodable_video_is_unreadable_in_the_builder_and_in_the_check(tmp_path):
    """One word for one fault: folder_json and check_dataset both call a file that cannot be decoded unreadable."""
    from tests.conversion_tree import run_main
    from util_scripts import folder_json
    for k in range(3):
        write_video(tmp_path / 'v' / 'jump' / f'ok{k}.mp4', moving_frames(10, 32, 32, seed=k))
    (tmp_path / 'v' / 'jump' / 'broken.mp4').write_bytes(b'\x00\x00\x00\x18ftypmp42' + b'\x17' * 400)
    rc, out = run_main(folder_json, [tmp_path / 'v', tmp_path / 'v.json', '--file_type', 'video',
                                     '--val_fraction', '0'])
    assert rc == 0 and 'unreadable: 1 (broken)' in out, out
    rc, out = run_main(check_dataset, [tmp_path / 'v.json', tmp_path / 'v', '--file_type', 'video',
                                       '--sample_duration', '4'])
    row = next(line for line in out.splitlines() if line.startswith('broken'))
    assert rc == 1 and row.split()[2] == 'unreadable' and 'no frames on record' in row, out
    assert out.strip().endswith('1 unreadable')


def test_duplicates_names_a_validation_video_that_is_a_training_video_in_another_codec(tmp_path):
    from conversion.writers import encode_video
    from tests.conversion_tree import run_main
    root = tmp_path / 'v'
    for k in range(4):  # four distinct training videos
        write_video(root / 'a' / f'train{k}.mp4', moving_frames(24, 48, 64, seed=5 * k))
    from PIL import Image
    bigger = [np.asarray(Image.fromarray(f).resize((96, 72))) for f in moving_frames(24, 48, 64, seed=10)]
    encode_video(root / 'a' / 'copy.avi', bigger, 'mpeg4', 25, {'g': '8'}, bit_rate=1_000_000)  # train2 again:
    # another codec, container and size
    write_video(root / 'a' / 'fresh.mp4', moving_frames(24, 48, 64, seed=33))
    ann = write_annotation(tmp_path / 'v.json', ['a'], {
        **{f'train{k}': entry('training', 'a', (0, 24)) for k in range(4)},
        'copy': entry('validation', 'a', (0, 24)), 'fresh': entry('validation', 'a', (0, 24))})
    argv = [ann, root, '--file_type', 'video', '--sample_duration', '4']
    assert run_main(check_dataset, argv)[0] == 0  # nothing else is wrong
    rc, out = run_main(check_dataset, argv + ['--duplicates', '--n_jobs', '2'])
    rows = [line.split(None, 4) for line in out.splitlines() if ' validation  near duplicate ' in line]
    assert rc == 1 and [r[0] for r in rows] == ['copy'] and rows[0][4].startswith('of training video train2 ('), out
    assert out.strip().endswith('0 with problems that lose data; 1 near duplicate')
