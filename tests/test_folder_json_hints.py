"""folder_json on a tree of another --file_type says which one, instead of writing an empty or wrong file."""
from tests.annotation_helpers import avi, make_frames, make_hdf5, one_line_error, put  # noqa: F401
from util_scripts import folder_json


def build(tmp_path, root, file_type):
    return folder_json.main([str(root), str(tmp_path / 'out.json'), '--file_type', file_type])


def test_hdf5_and_video_trees_name_their_file_type(tmp_path, avi, capsys):
    make_hdf5(tmp_path / 'h5' / 'run' / 'a.hdf5', 3)
    make_hdf5(tmp_path / 'h5' / 'walk' / 'b.hdf5', 3)
    put(tmp_path / 'v' / 'run' / 'a.avi', avi)
    make_frames(tmp_path / 'j' / 'run' / 'a', 2)
    for root, file_type, hint in (('h5', 'jpg', '2 hdf5 files: use --file_type hdf5'),
                                  ('h5', 'video', '2 hdf5 files: use --file_type hdf5'),
                                  ('v', 'jpg', '1 video files: use --file_type video'),
                                  ('j', 'hdf5', '1 jpg frame folders: use --file_type jpg')):
        assert build(tmp_path, tmp_path / root, file_type) == 2
        one_line_error(capsys, 'no class folder with', hint)
    assert not (tmp_path / 'out.json').exists()


def test_a_class_folder_given_as_root_and_loose_videos(tmp_path, avi, capsys):
    make_frames(tmp_path / 'run' / 'a', 2)
    assert build(tmp_path, tmp_path / 'run', 'jpg') == 2
    one_line_error(capsys, 'looks like one class folder; give the folder above it')
    put(tmp_path / 'loose' / 'a.avi', avi)
    assert build(tmp_path, tmp_path / 'loose', 'video') == 2
    one_line_error(capsys, '1 video files lie directly in it: the layout is ROOT/<class>/<video>')


def test_class_folders_of_another_type_are_named_with_the_hint(tmp_path, capsys):
    make_frames(tmp_path / 'mixed' / 'run' / 'a', 2)
    make_hdf5(tmp_path / 'mixed' / 'walk' / 'b.hdf5', 3)
    assert build(tmp_path, tmp_path / 'mixed', 'jpg') == 0
    assert ('note: class folders without jpg frame folders left out: walk '
            '(they hold 1 hdf5 files: use --file_type hdf5)') in capsys.readouterr().out
