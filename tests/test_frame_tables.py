"""Frame tables stored beside videos (datasets/formats/frame_table_file.py, util_scripts/write_frame_tables.py)."""
import json
import shutil

import pytest
import torch

from datasets.formats import frame_table_file, video_files
from common.faults import DataFault
from datasets.video_loader import VideoLoader
from tests.conversion_tree import run_main
from tests.test_video_exact import straight_decode
from tests.video_fixtures import moving_frames, write_video
from util_scripts import generate_video_jpgs, generate_video_mp4, write_frame_tables


@pytest.fixture
def videos(tmp_path):
    root = tmp_path / 'videos'
    a = write_video(root / 'run' / 'a.mp4', moving_frames(20, seed=1), gop=4)
    b = write_video(root / 'walk' / 'b.mp4', moving_frames(13, seed=2), gop=5)
    video_files._cached_table.cache_clear()
    yield root, a, b
    video_files._cached_table.cache_clear()


def loader_frames(path, clips=((0, 4), (9, 15), (2, 3))):
    """Clips read by a fresh loader (no cached table), as packed planes."""
    video_files._cached_table.cache_clear()
    loader = VideoLoader(planar=True)
    return [loader(path, list(range(*c)))[0].packed for c in clips], loader


def test_a_stored_table_is_read_instead_of_demuxing_the_video(videos, monkeypatch):
    root, a, _ = videos
    built = video_files.store_frame_table(a)
    stored = json.loads(frame_table_file.table_path(a).read_text())
    assert stored['format'] == 'frame-table' and stored['video']['bytes'] == a.stat().st_size
    monkeypatch.setattr(video_files, '_demux_all', lambda path: pytest.fail('the table was built again'))
    video_files._cached_table.cache_clear()
    table = video_files.frame_table(a)
    assert (table.pts, table.seek_points, table.time_base, table.rate, table.counted_by) == \
        (built.pts, built.seek_points, built.time_base, built.rate, built.counted_by)
    reference = straight_decode(a)
    clips, loader = loader_frames(a)
    for clip, (lo, hi) in zip(clips, ((0, 4), (9, 15), (2, 3))):
        assert all(torch.equal(clip[k], reference[i]) for k, i in enumerate(range(lo, hi)))
    assert loader.missed_seeks == 0


def tampered(path, **changes):
    record = json.loads(frame_table_file.table_path(path).read_text())
    record.update(changes)
    frame_table_file.table_path(path).write_text(json.dumps(record))


@pytest.mark.parametrize('change, why', [
    ({'video': {'bytes': 1, 'fingerprint': '00'}}, 'written for another version of the video'),
    ({'version': 2}, 'version 2'),
    ({'pts': []}, 'pts'), ({'pts': [0, True, 2]}, 'pts'), ({'pts': [0, 2 ** 70]}, 'pts'),
    ({'seek_points': [[0, 0], [99, 5]]}, 'seek_points'), ({'seek_points': [[-1, 0]]}, 'seek_points'),
    ({'time_base': [1, 0]}, 'time_base'), ({'rate': [-25, 1]}, 'rate'), ({'counted_by': 'guess'}, 'counted_by'),
])
def test_a_table_that_is_not_the_videos_or_out_of_range_is_not_used(videos, change, why):
    _, a, _ = videos
    video_files.store_frame_table(a)
    tampered(a, **change)
    with pytest.warns(DataFault, match=why) as caught:
        video_files.frame_table(a)
    assert str(frame_table_file.table_path(a)) in str(caught[0].message)
    assert len(video_files.frame_table(a)) == 20  # built from the video instead


def test_damaged_or_foreign_table_files_fall_back_with_one_line(videos):
    _, a, b = videos
    video_files.store_frame_table(b)
    shutil.copy(frame_table_file.table_path(b), frame_table_file.table_path(a))  # b's table beside a
    with pytest.warns(DataFault, match='written for another version of the video'):
        assert len(video_files.frame_table(a)) == 20
    frame_table_file.table_path(b).write_text('{"format": "frame-table", "pts": [0, 1')  # cut short
    with pytest.warns(DataFault, match='frame table not used'):
        assert len(video_files.frame_table(b)) == 13


def test_a_wrong_table_that_passes_the_checks_cannot_give_wrong_frames(videos):
    """The loader verifies every decoded frame: wrong seek points only cost decoding from the start."""
    _, a, _ = videos
    video_files.store_frame_table(a)
    record = json.loads(frame_table_file.table_path(a).read_text())
    tampered(a, seek_points=[[k, t] for (k, _), (_, t) in zip(record['seek_points'], record['seek_points'][::-1])])
    reference = straight_decode(a)
    clips, loader = loader_frames(a)
    for clip, (lo, hi) in zip(clips, ((0, 4), (9, 15), (2, 3))):
        assert all(torch.equal(clip[k], reference[i]) for k, i in enumerate(range(lo, hi)))
    assert loader.missed_seeks > 0


def test_write_frame_tables_stores_missing_and_stale_tables_and_names_failures(videos):
    root, a, b = videos
    (root / 'walk' / 'broken.mp4').write_text('not a video')
    rc, out = run_main(write_frame_tables, [root, '--n_jobs', 2])
    assert rc == 1
    assert 'stored 2, already current 0, failed 1' in out and f"failed: {root / 'walk' / 'broken.mp4'}" in out
    assert frame_table_file.table_path(a).is_file() and frame_table_file.table_path(b).is_file()
    (root / 'walk' / 'broken.mp4').unlink()
    write_video(a, moving_frames(8, seed=3), gop=4)  # a re-encoded: its table is stale
    with pytest.warns(DataFault, match='another version'):
        rc, out = run_main(write_frame_tables, [root, '--n_jobs', 1])
    assert rc == 0 and 'stored 1, already current 1, failed 0' in out
    video_files._cached_table.cache_clear()
    assert len(video_files.frame_table(a)) == 8
    rc, out = run_main(write_frame_tables, [root / 'nothing', '--n_jobs', 1])
    assert rc == 2


def test_generate_video_mp4_stores_tables_and_converters_do_not_count_them(videos, tmp_path):
    root, _, _ = videos
    argv = [root, tmp_path / 'mp4', 'kinetics', '--size', 32, '--gop', 4, '--n_jobs', 1]
    rc, out = run_main(generate_video_mp4, argv)
    assert rc == 0 and 'stored 2, already current 0, failed 0' in out
    assert sorted(p.name for p in (tmp_path / 'mp4').rglob('*.frames.json')) == ['a.mp4.frames.json',
                                                                                 'b.mp4.frames.json']
    rc, out = run_main(generate_video_jpgs, [tmp_path / 'mp4', tmp_path / 'jpg', 'kinetics', '--n_jobs', 1])
    assert rc == 0 and 'ignored' not in out  # the tables belong to their videos
    rc, out = run_main(generate_video_mp4, [root, tmp_path / 'mp4b', 'kinetics', '--no_frame_tables', '--n_jobs', 1])
    assert rc == 0 and not list((tmp_path / 'mp4b').rglob('*.frames.json'))


def test_a_workers_index_cache_is_bounded_in_bytes_least_recently_used_out(videos):
    """At Kinetics scale a worker meets tens of thousands of videos in an epoch: its cached
    indexes (flat arrays, a few bytes a frame) stay under ``max_cached_bytes``."""
    root, a, b = videos
    c = write_video(root / 'run' / 'c.mp4', moving_frames(9, seed=4), gop=3)
    sizes = {p: VideoLoader().index(p).nbytes for p in (a, b, c)}
    assert sizes[a] <= 16 * 20 + 100 * (5 + 4)  # 20 frames (two 8-byte numbers each), 5 keyframes
    loader = VideoLoader(max_cached_bytes=sizes[a] + sizes[b])
    for p in (a, b, a, c):  # a read again, so b is the one that leaves for c
        loader.index(p)
    assert list(loader.index_cache) == [a, c] and loader.cached_bytes == sizes[a] + sizes[c]
    assert loader.index(b).position(None) is None and len(loader.index(b)) == 13  # rebuilt when needed
    assert loader.cached_bytes <= sizes[a] + sizes[b]


def test_check_dataset_finds_frames_a_wrong_stored_table_hides(videos, tmp_path, capsys):
    from tests.video_fixtures import entry, write_annotation
    from util_scripts import check_dataset
    root, a, _ = videos
    video_files.store_frame_table(a)
    record = json.loads(frame_table_file.table_path(a).read_text())
    # fingerprint intact and every value in range: the header's 20 frames show it, and decoding the whole file
    tampered(a, pts=record['pts'][:15], seek_points=[p for p in record['seek_points'] if p[0] < 15])
    ann = write_annotation(tmp_path / 'a.json', ['run'], {'a': entry('training', 'run', (0, 15))})
    argv = [str(ann), str(root), '--file_type', 'video', '--sample_duration', '4', '--n_jobs', '1']
    assert check_dataset.main(argv + ['--quick']) == 1
    quick = capsys.readouterr().out
    assert 'truncated' in quick and 'decodes 15 of the 20 frames its header declares' in quick
    assert 'or its stored table a.mp4.frames.json is wrong' in quick
    assert check_dataset.main(argv) == 1
    out = capsys.readouterr().out
    assert 'uncounted frames' in out and '20 frames decode, the frame table lists 15' in out
    assert 'a.mp4.frames.json is wrong: rewrite it with write_frame_tables --force' in out


def test_a_table_crafted_to_shift_the_frames_is_found_by_the_full_scan_and_rewritten(videos, tmp_path, capsys):
    """A table with the video's fingerprint that numbers its frames one off (made on purpose: the
    fingerprint catches mistakes) is data of the dataset like its annotation; check_dataset names
    it and write_frame_tables --force rewrites it."""
    from tests.video_fixtures import entry, write_annotation
    from util_scripts import check_dataset
    root, a, _ = videos
    video_files.store_frame_table(a)
    record = json.loads(frame_table_file.table_path(a).read_text())
    pts = record['pts']
    tampered(a, pts=pts[1:] + [pts[-1] + 1], seek_points=[[k - 1, t] for k, t in record['seek_points'] if k > 0])
    ann = write_annotation(tmp_path / 'a.json', ['run'], {'a': entry('training', 'run', (0, 20))})
    argv = [str(ann), str(root), '--file_type', 'video', '--sample_duration', '4', '--n_jobs', '1']
    assert check_dataset.main(argv) == 1
    out = capsys.readouterr().out
    assert 'misnumbered frames' in out and f'frame 0 decodes at time {pts[0]}, the frame table says {pts[1]}' in out
    assert 'stored 1, already current 1' in run_main(write_frame_tables, [root, '--n_jobs', 1])[1]  # a's looks fine
    rc, out = run_main(write_frame_tables, [root, '--n_jobs', 1, '--force'])
    assert rc == 0 and 'stored 2, already current 0' in out
    video_files._cached_table.cache_clear()
    assert check_dataset.main(argv) == 0


@pytest.mark.parametrize('kind', ['fifo', 'device'])
def test_a_table_name_that_is_not_a_regular_file_neither_blocks_nor_reads_forever(videos, kind):
    import os
    import signal
    _, a, _ = videos
    target = frame_table_file.table_path(a)
    if kind == 'fifo':
        os.mkfifo(target)  # open() would wait for a writer
    else:
        target.symlink_to('/dev/zero')  # size 0, endless bytes
    previous = signal.signal(signal.SIGALRM, lambda *_: pytest.fail(f'reading a {kind} blocked'))
    signal.alarm(20)
    try:
        with pytest.warns(DataFault, match='not a regular file'):
            assert len(video_files.frame_table(a)) == 20
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
