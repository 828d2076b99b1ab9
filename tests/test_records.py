"""Records at scale: a compact table equal to the per-video records, paths checked by listing
folders, an entry's video_path confined to its root, small pickles, and the streamed JSON."""
import json
import os
import pickle
import random
from pathlib import Path

import pytest

from datasets import AnnotationError, RecordTable, VideoRecord, load_video_list, video_paths
from datasets.annotations import OUTSIDE, _keep_classes
from datasets.check import scan
from tests.video_fixtures import entry, write_annotation


def folders(root: Path, *names: str) -> None:
    """Empty video folders (existence is all a build checks when segments are given)."""
    for name in names:
        (root / name).mkdir(parents=True)


def test_the_table_holds_the_records_a_list_held(tmp_path):
    root = tmp_path / 'jpg'
    folders(root, 'run/v1', 'swim/v2', 'm1', 'test/t1', 'elsewhere/clip', 'run/vidé')
    ann = write_annotation(tmp_path / 'ann.json', ['run', 'swim'], {
        'v1': entry('training', 'run', (1, 9)),
        'v2': entry('training', 'swim', (1, 5)),
        'm1': entry('training', ['swim', 'run'], (1, 7)),         # multi-label, no class folder
        'own': {'subset': 'training', 'annotations': {'label': 'run', 'segment': [3, 8]},
                'video_path': 'elsewhere/clip'},
        'vidé': entry('training', 'run', (1, 4)),                  # a non-ASCII id and path
        't1': entry('testing', segment=(1, 3)),
    })
    videos = load_video_list([ann], [root], 'training')
    expected = [VideoRecord('v1', 0, root / 'run' / 'v1', range(1, 9), (1, 9)),
                VideoRecord('v2', 1, root / 'swim' / 'v2', range(1, 5), (1, 5)),
                VideoRecord('m1', 1, root / 'm1', range(1, 7), (1, 7), (1, 0)),
                VideoRecord('own', 0, root / 'elsewhere' / 'clip', range(3, 8), (3, 8)),
                VideoRecord('vidé', 0, root / 'run' / 'vidé', range(1, 4), (1, 4))]
    table = videos.records
    assert isinstance(table, RecordTable) and len(table) == 5
    assert list(table) == expected and table == expected and table == RecordTable.from_records(expected)
    assert table[-1] == expected[-1] and table[1:3] == expected[1:3] and table.take([4, 0]) == [expected[4], expected[0]]
    assert [r.label_set for r in table] == [(0,), (1,), (1, 0), (0,), (0,)]
    assert table + expected[:1] == expected + expected[:1] and expected[:1] + table == expected[:1] + expected
    assert pickle.loads(pickle.dumps(table)) == expected
    assert table != expected[:4] and table != list(reversed(expected))
    assert table.first_multilabel() == expected[2]
    test = load_video_list([ann], [root], 'testing').records
    assert list(test) == [VideoRecord('t1', -1, root / 'test' / 't1', range(1, 3), (1, 3))]
    with pytest.raises(IndexError):
        table[5]
    with pytest.raises(ValueError, match='segment'):
        RecordTable.from_records([VideoRecord('x', 0, root, range(1, 5), (0, 5))])


def test_missing_videos_are_named_from_one_listing_per_folder(tmp_path, monkeypatch):
    root = tmp_path / 'jpg'
    videos = {}
    for c in ('a', 'b'):
        for k in range(100):
            videos[f'{c}{k:03d}'] = entry('training', c, (1, 5))
            if k not in (7, 50, 99) or c == 'b':
                (root / c / f'{c}{k:03d}').mkdir(parents=True)
    ann = write_annotation(tmp_path / 'ann.json', ['a', 'b'], videos)
    listed, stats = [], []
    scandir, stat = os.scandir, os.stat
    monkeypatch.setattr(video_paths.os, 'scandir', lambda path='.': listed.append(path) or scandir(path))
    monkeypatch.setattr(os, 'stat', lambda *a, **k: stats.append(a[0]) or stat(*a, **k))
    result = load_video_list([ann], [root], 'training')
    assert len(result.records) == 197 and result.missing == ['a007', 'a050', 'a099']
    assert '3 missing on disk (a007, a050, a099)' in result.summary()
    assert sorted(listed) == [str(root / 'a'), str(root / 'b')]  # 2 listings for 200 videos
    assert len(stats) < 5


def test_a_video_path_cannot_leave_its_root(tmp_path):
    root, outside = tmp_path / 'root', tmp_path / 'outside'
    folders(root, 'a/v', 'a/w')
    folders(tmp_path, 'outside/x', 'outside/..x')

    def own(path):
        return {'subset': 'training', 'annotations': {'label': 'a', 'segment': [1, 3]}, 'video_path': path}
    ann = write_annotation(tmp_path / 'ann.json', ['a', '..'], {
        'up': own('../outside/x'),
        'absolute': own(str(outside / 'x')),
        'climb': own('a/../../outside/x'),
        'inside': own(str(root / 'a' / 'v')),       # absolute but inside: kept, relative to the root
        'dotted': own('a/./w'),
        'outside': entry('training', '..', (1, 3)),  # <label>/<id> is ../outside: refused too
        'named': own('a/../a/v'),                   # climbs but stays inside
    })
    videos = load_video_list([ann], [root], 'training')
    assert [(r.video_id, r.path) for r in videos.records] == [
        ('inside', root / 'a' / 'v'), ('dotted', root / 'a' / 'w'), ('named', root / 'a' / 'v')]
    assert [(f.video_id, f.problem) for f in videos.dropped] == [
        ('up', OUTSIDE), ('absolute', OUTSIDE), ('climb', OUTSIDE), ('outside', OUTSIDE)]
    assert f"1 dropped ({OUTSIDE}: '../outside/x'): up" in videos.summary()
    problems, _ = scan(ann, root, 'jpg')
    assert {p[0] for p in problems if p[2] == OUTSIDE} == {'up', 'absolute', 'climb', 'outside'}
    assert video_paths.confine('r', '..x') == os.path.join('r', '..x')  # a name that starts with dots
    assert video_paths.confine('r', '/') is None and video_paths.confine('r', '.') is None


def test_video_files_are_found_by_stem_from_the_one_listing(tmp_path, monkeypatch):
    (tmp_path / 'v.mp4').write_bytes(b'')
    (tmp_path / 'd').mkdir()
    listed = []
    scandir = os.scandir
    monkeypatch.setattr(video_paths.os, 'scandir', lambda path='.': listed.append(path) or scandir(path))
    listings, folder = video_paths.FolderListings(), str(tmp_path)
    assert listings.exists(os.path.join(folder, 'd')) and not listings.exists(os.path.join(folder, 'v'))
    assert listings.resolve(os.path.join(folder, 'v'), 'video') == os.path.join(folder, 'v.mp4')
    assert listings.video_file(os.path.join(folder, 'd')) is None  # a folder is no video file
    assert listed == [folder]


def test_records_pickle_small():
    n = 10_000
    ids = [f'vid{i:07d}_000010_000020' for i in range(n)]
    paths = [f'/data/kinetics/jpg/class_{i % 700:03d}/{video_id}' for i, video_id in enumerate(ids)]
    table = RecordTable.from_columns(ids, paths, [i % 700 for i in range(n)], [1] * n, [301] * n)
    bound = 80 * n  # bytes: the ids take 28 a record, the rest fits in the other 52
    assert len(pickle.dumps(table)) < bound < len(pickle.dumps(list(table)))
    assert [str(r.path) for r in pickle.loads(pickle.dumps(table))] == paths


def test_streamed_annotation_reads_as_json_does(tmp_path):
    root = tmp_path / 'jpg'
    folders(root, 'a/v1', 'a/v2', 'a/v3')
    database = {'v1': entry('training', 'a', (1, 3)), 'v2': entry('training', 'a', (1, 4)),
                'v3': entry('validation', 'a', (1, 5))}
    text = json.dumps({'labels': ['a'], 'database': database}, indent=3)
    # an id written twice: JSON keeps the later entry at the place of the first
    repeated = text.replace('"v2": {', '"v1": {"subset": "training", "annotations": {"label": "a", "segment": [2, 3]}},'
                            '\n "v2": {', 1)
    (tmp_path / 'repeated.json').write_text(repeated)
    videos = load_video_list([tmp_path / 'repeated.json'], [root], 'training')
    assert [(r.video_id, r.frames) for r in videos.records] == [('v1', range(2, 3)), ('v2', range(1, 4))]
    (tmp_path / 'late.json').write_text(json.dumps({'database': database, 'labels': ['a']}))  # labels last
    assert [r.video_id for r in load_video_list([tmp_path / 'late.json'], [root], 'validation').records] == ['v3']
    for name, broken in (('cut', text[:-40]), ('extra', text + ' ]'), ('comma', text.replace('},', '}', 1))):
        (tmp_path / f'{name}.json').write_text(broken)
        with pytest.raises(AnnotationError, match=f'{name}.json: not valid JSON'):
            load_video_list([tmp_path / f'{name}.json'], [root], 'training')
    (tmp_path / 'twice.json').write_text(text[:-1] + ', "database": {}}')  # the last 'database' counts
    assert len(load_video_list([tmp_path / 'twice.json'], [root], 'training').records) == 0


def test_a_repeated_id_reads_the_file_once(tmp_path, monkeypatch):
    from datasets import annotation_entries
    from datasets.formats import annotation_stream
    folders(tmp_path / 'jpg', 'a/v1')
    path = tmp_path / 'repeated.json'
    path.write_text('{"labels": ["a"], "database": {"v1": {"subset": "training", "annotations": {"label": "a"}}, '
                    '"v1": {"subset": "training", "annotations": {"label": "a", "segment": [2, 3]}}}}')
    reads = []
    for module in (annotation_entries, annotation_stream):
        read = module.read_text
        monkeypatch.setattr(module, 'read_text', lambda *a, read=read: reads.append(a[0]) or read(*a))
    videos = load_video_list([path], [tmp_path / 'jpg'], 'training')
    assert [(r.video_id, r.frames) for r in videos.records] == [('v1', range(2, 3))] and reads == [path]


def test_class_fraction_remaps_the_table_as_record_by_record():
    rng = random.Random(0)
    records = [VideoRecord(f'v{i}', rng.randrange(-1, 6), Path(f'r/v{i}'), range(1, 3), (1, 3),
                           tuple(rng.sample(range(6), rng.randrange(0, 4)))) for i in range(300)]
    records = [VideoRecord(r.video_id, r.labels[0] if r.labels else r.label, r.path, r.frames, r.segment, r.labels)
               for r in records]
    kept = [1, 3, 4]
    remap = {old: new for new, old in enumerate(kept)}
    expected = []
    for r in records:  # the rule, one record at a time
        labels = tuple(remap[x] for x in r.labels if x in remap)
        if r.label in remap or labels:
            label = remap[r.label] if r.label in remap else labels[0]
            expected.append(VideoRecord(r.video_id, label, r.path, r.frames, r.segment, labels))
    assert list(_keep_classes(RecordTable.from_records(records), 6, kept)) == expected
