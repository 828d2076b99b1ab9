"""eval_accuracy and its library (datasets.formats): the original's top-k semantics, the fixes, the reports."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from evaluation import metrics
from evaluation.scoring import load_ground_truth
from evaluation.reports import class_chart
from evaluation.results_json import load_results
from util_scripts import eval_accuracy

LABELS = ['a', 'b', 'c']
# v1 a -> right; v2 b -> wrong at top-1, right at top-2; v3 c -> right; v4 a -> top-2 only.
GT_VIDEOS = {'v1': 'a', 'v2': 'b', 'v3': 'c', 'v4': 'a'}
RESULTS = {  # deliberately not sorted by score in the file
    'v1': [('b', 0.3), ('a', 0.6), ('c', 0.1)],
    'v2': [('c', 0.1), ('a', 0.5), ('b', 0.4)],
    'v3': [('c', 0.7), ('a', 0.2), ('b', 0.1)],
    'v4': [('a', 0.3), ('b', 0.6), ('c', 0.1)],
}


def _write_gt(path, videos=GT_VIDEOS, labels=LABELS, subset='validation', extra=None):
    database = {vid: {'subset': subset, 'annotations': {'label': lab, 'segment': [1, 17]}}
                for vid, lab in videos.items()}
    database['t1'] = {'subset': 'testing', 'annotations': {}}  # unlabelled: skipped
    database['tr1'] = {'subset': 'training', 'annotations': {'label': 'b', 'segment': [1, 9]}}
    database.update(extra or {})
    path.write_text(json.dumps({'labels': labels, 'database': database}))
    return path


def _write_results(path, results=RESULTS):
    path.write_text(json.dumps({'results': {
        vid: [{'label': lab, 'score': s} for lab, s in pairs] for vid, pairs in results.items()}}))
    return path


@pytest.fixture
def files(tmp_path):
    return _write_gt(tmp_path / 'gt.json'), _write_results(tmp_path / 'val.json')


def _run(capsys, *argv):
    code = eval_accuracy.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_toy_example_top1_top2_as_the_original(files, capsys):
    gt_path, res_path = files
    labels, gt = load_ground_truth(gt_path, 'validation')
    assert labels == LABELS and gt == GT_VIDEOS
    results = load_results(res_path)
    assert [lab for lab, _ in results['v4']] == ['b', 'a', 'c']
    assert metrics.top_k_accuracy(gt, results, 1, False) == (0.5, 2, 4)
    assert metrics.top_k_accuracy(gt, results, 2, False) == (1.0, 4, 4)

    code, out, err = _run(capsys, gt_path, res_path, '-k', 2)
    assert code == 0 and err == ''
    lines = out.splitlines()
    assert lines[:3] == ['top-2 accuracy: 1.0000 (4/4)', 'top-1 accuracy: 0.5000 (2/4)',
                         'top-5 accuracy: n/a (3 classes)']  # always 1 with 3 classes: not a measurement
    assert lines[3] == 'mean class accuracy: 0.5000 (3 classes)'
    code, out, _ = _run(capsys, gt_path, res_path)
    assert out.splitlines()[:2] == ['top-1 accuracy: 0.5000 (2/4)',
                                    'top-5 accuracy: n/a (3 classes)']


def test_missing_videos_are_wrong_unless_ignored(tmp_path, capsys):
    gt_path = _write_gt(tmp_path / 'gt.json')
    partial = {vid: r for vid, r in RESULTS.items() if vid != 'v3'}
    res_path = _write_results(tmp_path / 'val.json', partial)
    _, gt = load_ground_truth(gt_path, 'validation')
    results = load_results(res_path)
    assert metrics.top_k_accuracy(gt, results, 1, ignore=False) == (0.25, 1, 4)
    assert metrics.top_k_accuracy(gt, results, 1, ignore=True) == (pytest.approx(1 / 3), 1, 3)
    assert metrics.top_k_accuracy(gt, results, 2, ignore=True) == (1.0, 3, 3)

    _, out, _ = _run(capsys, gt_path, res_path)
    assert out.startswith('top-1 accuracy: 0.2500 (1/4)\n')
    assert 'counted as wrong' in out
    _, out, _ = _run(capsys, gt_path, res_path, '--ignore')
    assert out.startswith('top-1 accuracy: 0.3333 (1/3)\n')
    # per-class recall follows the same denominator: class c disappears with --ignore
    assert [r.label for r in metrics.per_class_accuracy(gt, results, ignore=True)] == ['a', 'b']
    assert metrics.per_class_accuracy(gt, results)[-1] == metrics.ClassAccuracy('c', 1, 0.0, 0.0)


def test_subset_aliases(files, capsys):
    gt_path, res_path = files
    assert load_ground_truth(gt_path, 'val') == load_ground_truth(gt_path, 'validation')
    assert load_ground_truth(gt_path, 'train')[1] == {'tr1': 'b'}
    code, out, _ = _run(capsys, gt_path, res_path, '--subset', 'val')
    assert code == 0 and out.startswith('top-1 accuracy: 0.5000 (2/4)\n')


def test_save_writes_top_k_txt(files, capsys):
    gt_path, res_path = files
    assert _run(capsys, gt_path, res_path, '--save')[0] == 0
    assert (res_path.parent / 'top1.txt').read_text() == '0.5'
    assert _run(capsys, gt_path, res_path, '--save', '-k', '2')[0] == 0
    assert (res_path.parent / 'top2.txt').read_text() == '1.0'
    assert not (res_path.parent / 'top5.txt').exists()


def test_empty_subset_is_a_one_line_error(files, capsys):
    gt_path, res_path = files
    code, out, err = _run(capsys, gt_path, res_path, '--subset', 'test')
    assert code == 2 and out == ''
    assert err.count('\n') == 1 and str(gt_path) in err and 'testing' in err
    assert 'ZeroDivision' not in err


def test_ignore_with_no_overlap_is_an_error(tmp_path, capsys):
    gt_path = _write_gt(tmp_path / 'gt.json')
    res_path = _write_results(tmp_path / 'val.json', {'other': [('a', 1.0)]})
    code, _, err = _run(capsys, gt_path, res_path, '--ignore')
    assert code == 2 and err.count('\n') == 1 and str(res_path) in err
    code, out, _ = _run(capsys, gt_path, res_path)  # without --ignore: all wrong, no crash
    assert code == 0 and out.startswith('top-1 accuracy: 0.0000 (0/4)\n')


@pytest.mark.parametrize('which,content', [
    ('result', '{"results": {"v1": [{"label": "a", "score": 0.5}'),  # truncated
    ('gt', 'not json at all'),
    ('result', '{"no_results": {}}'),
    ('result', '{"results": {"v1": [{"label": "a", "score": "high"}]}}'),
    ('gt', '[1, 2, 3]'),
    ('result', None),  # missing file
])
def test_bad_input_is_a_one_line_error(files, capsys, which, content):
    gt_path, res_path = files
    bad = res_path if which == 'result' else gt_path
    if content is None:
        bad.unlink()
    else:
        bad.write_text(content)
    code, out, err = _run(capsys, gt_path, res_path)
    assert code == 2 and out == ''
    assert err.count('\n') == 1 and err.startswith('error: ') and str(bad) in err
    assert 'Traceback' not in err


def test_per_segment_results_are_averaged(tmp_path, capsys):
    segments = {
        # a: (0.6 + 0) / 2 = 0.30, b: (0.4 + 0.9) / 2 = 0.65, c: (0 + 0.1) / 2 = 0.05
        'v1': [[('a', 0.6), ('b', 0.4)], [('b', 0.9), ('c', 0.1)]],
        # a: (0.2 + 0.5 + 0.5) / 3 = 0.4, c: (0.7 + 0.1) / 3 ~ 0.267, b: 0.4 / 3 ~ 0.133
        'v2': [[('c', 0.7), ('a', 0.2)], [('a', 0.5), ('b', 0.4)], [('a', 0.5), ('c', 0.1)]],
    }
    seg_path = tmp_path / 'segments.json'
    seg_path.write_text(json.dumps({'results': {
        vid: [{'segment': [1 + 16 * i, 17 + 16 * i],
               'result': [{'label': lab, 'score': s} for lab, s in seg]}
              for i, seg in enumerate(segs)] for vid, segs in segments.items()}}))
    loaded = load_results(seg_path)
    assert [lab for lab, _ in loaded['v1']] == ['b', 'a', 'c']
    assert [s for _, s in loaded['v1']] == pytest.approx([0.65, 0.30, 0.05])
    assert [lab for lab, _ in loaded['v2']] == ['a', 'c', 'b']
    assert [s for _, s in loaded['v2']] == pytest.approx([0.4, 0.8 / 3, 0.4 / 3])

    averaged = _write_results(tmp_path / 'averaged.json',
                              {vid: [(lab, s) for lab, s in r] for vid, r in loaded.items()})
    gt_path = _write_gt(tmp_path / 'gt.json', {'v1': 'a', 'v2': 'a'})
    out_seg = _run(capsys, gt_path, seg_path, '-k', 2)[1].splitlines()[:4]
    out_avg = _run(capsys, gt_path, averaged, '-k', 2)[1].splitlines()[:4]
    assert out_seg == out_avg
    assert out_seg[:2] == ['top-2 accuracy: 1.0000 (2/2)', 'top-1 accuracy: 0.5000 (1/2)']


def test_mean_class_accuracy_differs_from_video_accuracy(tmp_path, capsys):
    videos = {'x1': 'a', 'x2': 'a', 'x3': 'a', 'x4': 'b'}
    preds = {vid: [('a', 0.9), ('b', 0.1)] for vid in videos}
    gt_path = _write_gt(tmp_path / 'gt.json', videos)
    res_path = _write_results(tmp_path / 'val.json', preds)
    _, gt = load_ground_truth(gt_path, 'validation')
    results = load_results(res_path)
    per_class = metrics.per_class_accuracy(gt, results)
    assert per_class == [metrics.ClassAccuracy('a', 3, 1.0, 1.0), metrics.ClassAccuracy('b', 1, 0.0, 1.0)]
    assert metrics.top_k_accuracy(gt, results, 1, False)[0] == 0.75
    assert metrics.mean_class_accuracy(per_class) == 0.5  # class c has no video: not averaged
    out = _run(capsys, gt_path, res_path)[1]
    assert 'mean class accuracy: 0.5000 (2 classes)' in out


def test_report_tsv_contents(files, capsys):
    gt_path, res_path = files
    assert _run(capsys, gt_path, res_path)[0] == 0
    per_class = (res_path.parent / 'val_per_class.tsv').read_text()
    assert per_class == ('label\tn_videos\ttop1\ttop5\n'
                         'c\t1\t1.0000\tn/a\n'  # top-5 of 3 classes is always 1
                         'a\t2\t0.5000\tn/a\n'
                         'b\t1\t0.0000\tn/a\n')
    confusion = (res_path.parent / 'val_confusion.tsv').read_text()
    assert confusion == ('gt\\pred\ta\tb\tc\n'
                         'a\t1\t1\t0\n'
                         'b\t1\t0\t0\n'
                         'c\t0\t0\t1\n')
    # written atomically: nothing but the inputs and the three reports is left behind
    assert sorted(os.listdir(res_path.parent)) == [
        'gt.json', 'val.json', 'val_classes.png', 'val_confusion.tsv', 'val_per_class.tsv']


def test_confusion_matrix_adds_unknown_predicted_labels(files):
    _, gt = load_ground_truth(files[0], 'validation')
    results = load_results(files[1])
    results['v3'] = [('zebra', 0.9), ('c', 0.1)]
    labels, matrix = metrics.confusion_matrix(gt, results, LABELS)
    assert labels == ['a', 'b', 'c', 'zebra']
    assert matrix == [[1, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]]


def test_class_chart_png(tmp_path, capsys):
    labels = [f'class {i:02d} with a fairly long name' for i in range(30)]
    videos = {f'v{i}': labels[i % 30] for i in range(90)}
    # class i gets i % 4 of its 3 videos right (capped at 3)
    preds = {vid: ([(lab, 0.9), ('other', 0.1)] if int(vid[1:]) // 30 < (labels.index(lab) % 4)
                   else [('other', 0.9), (lab, 0.1)]) for vid, lab in videos.items()}
    gt_path = _write_gt(tmp_path / 'gt.json', videos, labels)
    res_path = _write_results(tmp_path / 'val.json', preds)
    assert _run(capsys, gt_path, res_path, '--per_class_k', 5)[0] == 0
    png = res_path.parent / 'val_classes.png'
    with Image.open(png) as img:
        img.load()
        assert img.format == 'PNG'
        w, h = img.size
        colours = img.convert('RGB').getcolors(maxcolors=1 << 16)
    assert 400 <= w <= 3000 and 200 <= h <= 3000
    assert colours is not None and len(colours) >= 8
    white = max(colours)[0]
    assert white < w * h * 0.95  # mostly background, but far from blank
    # one row per shown class: more classes per end means a taller chart
    per_class = metrics.per_class_accuracy(load_ground_truth(gt_path, 'val')[1],
                                      load_results(res_path))
    heights = [class_chart(per_class, 'title', k).size[1] for k in (5, 10, 15, 40)]
    assert heights[0] == h and heights[0] < heights[1] < heights[2]
    assert heights[2] == heights[3]  # 15 per end covers all 30: one section, as k=40


def test_activitynet_annotations_and_taxonomy(tmp_path):
    taxonomy = [{'nodeId': 0, 'nodeName': 'Root', 'parentId': None, 'parentName': None},
                {'nodeId': 1, 'nodeName': 'Sports', 'parentId': 0, 'parentName': 'Root'},
                {'nodeId': 2, 'nodeName': 'Surfing', 'parentId': 1, 'parentName': 'Sports'},
                {'nodeId': 3, 'nodeName': 'Skiing', 'parentId': 1, 'parentName': 'Sports'}]
    database = {
        'an1': {'subset': 'validation', 'annotations': [
            {'label': 'Skiing', 'segment': [1.0, 5.0]}, {'label': 'Surfing', 'segment': [6, 9]}]},
        'an2': {'subset': 'validation', 'annotations': []},  # no label: skipped
        'an3': {'subset': 'training', 'annotations': [{'label': 'Surfing', 'segment': [0, 1]}]},
    }
    path = tmp_path / 'activity_net.json'
    path.write_text(json.dumps({'taxonomy': taxonomy, 'database': database}))
    labels, gt = load_ground_truth(path, 'val')
    assert labels == ['Surfing', 'Skiing'] and gt == {'an1': 'Skiing'}


def test_runs_as_a_module_without_torch(files):
    gt_path, res_path = files
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, '-m', 'util_scripts.eval_accuracy', str(gt_path),
                           str(res_path), '-k', '2', '--subset', 'val'],
                          cwd=root, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith('top-2 accuracy: 1.0000 (4/4)\n')
    check = subprocess.run([sys.executable, '-c', 'import sys, util_scripts.eval_accuracy; '
                            'print("torch" in sys.modules)'],
                           cwd=root, capture_output=True, text=True, timeout=60)
    assert check.stdout.strip() == 'False'


def test_top_classes_best_first_ties_by_index_and_all_when_topk_is_not_positive():
    from evaluation.metrics import top_classes
    assert top_classes([0.1, 0.5, 0.2, 0.5], 2) == [1, 3]
    assert top_classes([0.1, 0.5, 0.2, 0.5], 0) == [1, 3, 2, 0] == top_classes([0.1, 0.5, 0.2, 0.5], -1)
    assert top_classes([0.3], 5) == [0]
