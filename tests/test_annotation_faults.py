"""Annotation entries are never dropped without a word, and a file built for another --file_type is named."""
import pytest

from datasets import AnnotationError, load_video_list, require_videos
from common.errors import UserError
from tests.video_fixtures import entry, moving_frames, write_annotation, write_hdf5, write_jpg_folder, write_video
from util_scripts import check_dataset

KNOWN = "is none of training, validation, testing"


class Data:
    """What ``require_videos`` needs of a dataset: its length and its ``VideoList``."""

    def __init__(self, videos):
        self.videos = videos

    def __len__(self):
        return len(self.videos.records)


def faulty_dataset(tmp_path):
    for vid in ('ok', 'typo', 'alias', 'key', 'label', 'nosubset'):
        write_jpg_folder(tmp_path / 'a' / vid, moving_frames(2, 8, 8))
    return write_annotation(tmp_path / 'ann.json', ['a'], {
        'ok': entry('training', 'a', (1, 3)),
        'typo': entry('trainig', 'a', (1, 3)),
        'alias': entry('train', 'a', (1, 3)),        # accepted, as evaluation accepts it
        'key': {'subset': 'training', 'annotation': {'label': 'a', 'segment': [1, 3]}},
        'label': entry('training', 'b', (1, 3)),
        'nosubset': {'subsets': 'validation', 'annotations': {'label': 'a', 'segment': [1, 3]}},
        'junk': ['not', 'an', 'entry'],
    })


def test_dropped_entries_are_named_and_counted_in_the_summary(tmp_path, capsys):
    videos = load_video_list([faulty_dataset(tmp_path)], [tmp_path], 'training')
    assert sorted(r.video_id for r in videos.records) == ['alias', 'ok']
    assert videos.summary() == (
        f"2 videos, 1 classes; 1 dropped (unknown subset: 'trainig' {KNOWN}): typo; "
        "1 dropped (misspelled key: 'annotation' for 'annotations'): key; "
        "1 dropped (label not in 'labels': 'b'): label; "
        "1 dropped (misspelled key: 'subsets' for 'subset'): nosubset; "
        "1 dropped (not an object: a JSON list): junk")
    require_videos('training', Data(videos))
    assert capsys.readouterr().out == f'training: {videos.summary()}\n'
    # entries of no known subset show in every subset's summary; those of another subset do not
    validation = load_video_list([faulty_dataset(tmp_path)], [tmp_path], 'validation').summary()
    assert 'typo' in validation and 'nosubset' in validation and 'junk' in validation
    assert "'b'" not in validation and 'annotation' not in validation


def test_a_subset_without_entries_names_the_subsets_of_the_file(tmp_path):
    write_jpg_folder(tmp_path / 'a' / 'v', moving_frames(2, 8, 8))
    ann = write_annotation(tmp_path / 'a.json', ['a'], {
        **{f'v{i}': entry('trainig', 'a', (1, 3)) for i in range(3)}, 'w': entry('validation', 'a', (1, 3))})
    videos = load_video_list([ann], [tmp_path], 'training')
    with pytest.raises(UserError) as error:  # exit code 2
        require_videos('training', Data(videos))
    message = str(error.value)
    assert message.startswith("the training subset has no usable video (0 videos, 1 classes; "
                              f"3 dropped (unknown subset: 'trainig' {KNOWN}): v0, v1, v2)")
    assert message.endswith(': a.json has no training entry; its subsets are: trainig (3), validation (1)')
    # entries that are there but missing on disk: the usual hint, no list of subsets
    missing = load_video_list([ann], [tmp_path], 'validation')
    with pytest.raises(UserError, match=r'1 missing on disk \(w\); .*\): check --video_path'):
        require_videos('validation', Data(missing))


def test_same_named_files_without_the_subset_are_each_named(tmp_path):
    x = write_annotation(tmp_path / 'x' / 'a.json', ['a'], {'v': entry('validation', 'a', (1, 3))})
    y = write_annotation(tmp_path / 'y' / 'a.json', ['b'], {'w': entry('testing'), 'u': entry('testing')})
    videos = load_video_list([x, y], [tmp_path], 'training')
    assert videos.subset_note() == ('x/a.json has no training entry; its subsets are: validation (1); '
                                    'y/a.json has no training entry; its subsets are: testing (2)')


def test_check_dataset_reports_dropped_entries_once(tmp_path, capsys):
    assert check_dataset.main([str(faulty_dataset(tmp_path)), str(tmp_path), '--sample_duration', '2']) == 1
    out = capsys.readouterr().out
    rows = [line.split()[:2] for line in out.splitlines()[1:-2]]
    assert sorted(rows) == [['junk', '-'], ['key', 'training'], ['label', 'training'], ['nosubset', '-'],
                            ['typo', 'trainig']]
    assert out.splitlines()[-1] == ("7 videos listed; 5 with problems that lose data; "
                                    "1 label not in 'labels', 2 misspelled key, 1 not an object, 1 unknown subset")


def test_jpg_annotation_used_with_hdf5_or_video_says_to_rebuild(tmp_path, capsys):
    frames = moving_frames(6, 16, 16)
    write_hdf5(tmp_path / 'h' / 'a' / 'v.hdf5', frames)
    write_video(tmp_path / 'm' / 'a' / 'v.mp4', frames)
    jpg_built = write_annotation(tmp_path / 'jpg.json', ['a'], {'v': entry('training', 'a', (1, 7))})
    for file_type, root in (('hdf5', 'h'), ('video', 'm')):
        with pytest.raises(AnnotationError) as error:
            load_video_list([jpg_built], [tmp_path / root], 'training', file_type)
        assert str(error.value) == (
            f"{jpg_built}: built for --file_type jpg: every segment starts at frame 1, and v's [1, 7] runs "
            f"past its 6 frames: rebuild it with --file_type {file_type} (or run with the --file_type it "
            "was built for)")
        assert check_dataset.main([str(jpg_built), str(tmp_path / root), '--file_type', file_type]) == 2
        assert f'rebuild it with --file_type {file_type}' in capsys.readouterr().err
    hdf5_built = write_annotation(tmp_path / 'h.json', ['a'], {'v': entry('training', 'a', (0, 6))})
    assert len(load_video_list([hdf5_built], [tmp_path / 'h'], 'training', 'hdf5').records) == 1
    # a segment from frame 1 that fits its file is a sub-clip, not a mistake
    part = write_annotation(tmp_path / 'part.json', ['a'], {'v': entry('training', 'a', (1, 6))})
    assert load_video_list([part], [tmp_path / 'h'], 'training', 'hdf5').records[0].frames == range(1, 6)


def test_hdf5_annotation_used_with_jpg_says_to_rebuild(tmp_path):
    write_jpg_folder(tmp_path / 'a' / 'v', moving_frames(6, 16, 16))
    hdf5_built = write_annotation(tmp_path / 'h.json', ['a'], {'v': entry('training', 'a', (0, 6))})
    with pytest.raises(AnnotationError, match='built for --file_type hdf5 or video: every segment starts at '
                       'frame 0.*no image_00000.jpg.*rebuild it with --file_type jpg'):
        load_video_list([hdf5_built], [tmp_path], 'training', 'jpg')
