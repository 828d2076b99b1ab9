"""The converters' sources and temp names: layout mistakes, ignored files, empty classes, concurrent runs."""
import os
import shutil
import subprocess
import sys
import time

from conversion import runner

from conversion import temps
from common.processes import process_start_ticks
from tests.conversion_tree import REPO, SIZE, jpg_names, make_video, run_main, temps_left
from util_scripts import generate_video_hdf5, generate_video_jpgs

ARGS = ['--size', SIZE, '--n_jobs', 1]
N_LONG = 120  # frames of the videos two runs convert at once


def error_of(capsys, module, argv):
    """The exit code and the stderr line of a converter that must stop."""
    rc = module.main([str(a) for a in argv])
    return rc, capsys.readouterr().err.strip()


def test_videos_directly_in_src_are_an_error_not_zero_conversions(tmp_path, capsys):
    for name in ('a.mp4', 'b.avi', 'notes.txt'):
        (tmp_path / 'src' / name).parent.mkdir(exist_ok=True)
        (tmp_path / 'src' / name).write_bytes(b'x')
    rc, err = error_of(capsys, generate_video_jpgs, [tmp_path / 'src', tmp_path / 'dst', 'kinetics'] + ARGS)
    assert rc == 2 and '\n' not in err
    assert err.startswith(f"error: {tmp_path / 'src'} holds 2 videos directly but no class folder")
    assert 'SRC/<class>/<video>' in err and 'activitynet' in err
    assert not (tmp_path / 'dst').exists()


def test_nothing_convertible_names_what_was_ignored(tmp_path, capsys):
    for name in ('c/notes.txt', 'c/more.txt', 'c/meta.json', 'c/.DS_Store', 'c/README'):
        (tmp_path / 'src' / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / 'src' / name).write_text('x')
    (tmp_path / 'src/c/frames').mkdir()  # already converted output, say
    (tmp_path / 'src/d').mkdir()
    rc, err = error_of(capsys, generate_video_hdf5, [tmp_path / 'src', tmp_path / 'dst', 'ucf101'] + ARGS)
    assert rc == 2
    assert err == (f"error: no video file to convert in {tmp_path / 'src'} (ignored: 2 .txt, 1 .json, "
                   '1 file without extension, 1 hidden file, 1 subfolder; class folders without videos: c, d)')


def test_flat_layout_given_class_folders_says_so(tmp_path, capsys):
    (tmp_path / 'src/c').mkdir(parents=True)
    (tmp_path / 'src/c/v.mp4').write_bytes(b'x')
    rc, err = error_of(capsys, generate_video_jpgs, [tmp_path / 'src', tmp_path / 'dst', 'activitynet'] + ARGS)
    assert rc == 2 and 'holds no video directly but 1 in its subfolders' in err and 'kinetics' in err


def test_ignored_files_are_counted_by_extension_and_empty_classes_named(tmp_path):
    src = tmp_path / 'src'
    make_video(src / 'walk' / 'a.mp4')
    for name in ('walk/x.txt', 'walk/y.txt', 'walk/z.txt', 'walk/info.json', 'walk/._a.mp4', 'loose.mp4'):
        (src / name).write_text('x')
    (src / 'empty').mkdir()
    rc, out = run_main(generate_video_jpgs, [src, tmp_path / 'dst', 'kinetics'] + ARGS)
    assert rc == 0
    assert out.splitlines()[:3] == ['converted 1, skipped 0 (already done), failed 0, warnings 0',
                                    'ignored: 3 .txt, 1 .json, 1 hidden file, 1 video directly in SRC',
                                    'class folders without videos: empty']


def dead_pid():
    """The PID of a process that has ended (and been reaped)."""
    child = subprocess.Popen([sys.executable, '-c', 'pass'])
    child.wait()
    return child.pid


def owned(folder, pid, host=None, start=None):
    """A temp folder named as process ``pid`` of ``host`` (default: this host) would name it."""
    start = process_start_ticks(pid) or 0 if start is None else start
    path = folder / f'.v.tmp-{host or temps.host_tag()}-{pid}-{start}-0123abcd'
    path.mkdir(parents=True)
    return path


def test_temp_names_are_unique_and_name_their_owner(tmp_path):
    names = {runner.temp_path(tmp_path / 'v').name for _ in range(50)}
    assert len(names) == 50
    match = temps.TEMP_NAME.fullmatch(names.pop())
    assert match['name'] == 'v' and match['host'] == temps.host_tag()
    assert int(match['pid']) == os.getpid()
    child = subprocess.run([sys.executable, '-c', 'import os; from pathlib import Path; '
                            'from conversion.temps import temp_path; '
                            'print(os.getpid(), temp_path(Path("v")).name)'],
                           cwd=REPO, capture_output=True, text=True, check=True)
    pid, name = child.stdout.split()
    assert temps.TEMP_NAME.fullmatch(name)['pid'] == pid


def test_stale_temps_are_removed_only_when_their_owner_is_gone(tmp_path):
    sleeper = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    try:
        alive = owned(tmp_path, sleeper.pid)
        mine = owned(tmp_path / 'b', os.getpid())
        other_host = owned(tmp_path / 'c', dead_pid(), host='00000000' if temps.host_tag() != '00000000' else '1' * 8)
        dead = owned(tmp_path / 'd', dead_pid())
        reused = owned(tmp_path / 'e', sleeper.pid, start=1)  # the PID now belongs to a later process
        legacy = tmp_path / '.v.tmp-0123456789abcdef'  # an older version's: no owner recorded
        legacy.mkdir()
        unrelated = tmp_path / '.v.tmp-notes'
        unrelated.write_text('x')
        folders = [tmp_path] + [tmp_path / x for x in 'bcde']
        assert runner.remove_stale_temps(folders) == 3
        assert alive.exists() and mine.exists() and other_host.exists() and unrelated.exists()
        assert not dead.exists() and not reused.exists() and not legacy.exists()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert runner.remove_stale_temps([tmp_path]) == 1 and not alive.exists()


def test_a_video_another_run_finished_first_is_skipped_not_failed(tmp_path):
    src = make_video(tmp_path / 'src/c/v.mp4')
    video = runner.Video(src, tmp_path / 'dst/c/v')

    def racing_writer(source, tmp):
        tmp.mkdir()
        (tmp / 'image_00001.jpg').write_bytes(b'mine')
        video.dst.mkdir(parents=True)  # the other run renames its folder into place meanwhile
        (video.dst / 'image_00001.jpg').write_bytes(b'theirs')
        return ''

    outcome = runner.convert_video(video, racing_writer)
    assert outcome.status == 'skipped' and outcome.reason == ''
    assert (video.dst / 'image_00001.jpg').read_bytes() == b'theirs'
    assert temps_left(tmp_path / 'dst') == []


def test_two_conversions_into_one_destination(tmp_path):
    # the second starts while the first writes temp names: its start-up cleanup must leave them,
    # and the videos both convert must not fail in either
    make_video(tmp_path / 'src/c/v0.mp4', n=N_LONG)
    (tmp_path / 'src/d').mkdir()
    for i in range(1, 8):
        shutil.copy(tmp_path / 'src/c/v0.mp4', tmp_path / 'src' / 'cd'[i % 2] / f'v{i}.mp4')
    command = [sys.executable, '-m', 'util_scripts.generate_video_jpgs', str(tmp_path / 'src'),
               str(tmp_path / 'dst'), 'kinetics', '--size', str(SIZE), '--n_jobs', '2']
    runs = []
    for _ in range(2):
        runs.append(subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, text=True))
        deadline = time.monotonic() + 60
        while not temps_left(tmp_path / 'dst') and time.monotonic() < deadline:
            time.sleep(0.01)
    results = [run.communicate(timeout=120) for run in runs]
    for run, (out, err) in zip(runs, results):
        assert run.returncode == 0, err
        assert out.splitlines()[0].endswith('failed 0, warnings 0') and 'FAILED' not in out, out
    converted = [int(out.split()[1].rstrip(',')) for out, _ in results]
    assert sum(converted) >= 8  # every video converted at least once; the rest were skipped
    for i in range(8):
        assert sorted(p.name for p in (tmp_path / 'dst' / 'cd'[i % 2] / f'v{i}').iterdir()) == jpg_names(N_LONG)
    assert temps_left(tmp_path / 'dst') == []
