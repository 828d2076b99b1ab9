"""Labels with any characters: the reports do not crash, the TSV cells unescape to the label, the results JSON round-trips."""
import json

import pytest
from PIL import Image, ImageFont

from evaluation import reports
from evaluation.metrics import ClassAccuracy
from evaluation.reports import class_chart, tsv_escape, tsv_unescape, write_reports
from evaluation.results_json import load_results, write_results
from util_scripts import eval_accuracy, fuse_results

LABELS = ['a\nb', 'tab\there', 'x/y', 'café ☕', '"quoted"', "it's", '', ' ', 'L' * 500, 'back\\slash',
          'looks\\nescaped', '\\x41', 'cr\r\nlf', 'nul\x00bell\x07', 'line\u2028sep', 'nbsp\xa0', 'lone\ud800',
          '😀 emoji', 'zwj👩\u200d🚀', 'a b', '\\', '\t']


def rankings(labels=LABELS):
    """Video i: its own label best, the next one second."""
    return {f'v{i}': [(label, 0.75), (labels[(i + 1) % len(labels)], 0.25)] for i, label in enumerate(labels)}


def test_tsv_cells_round_trip_and_stay_one_line():
    for label in LABELS:
        cell = tsv_escape(label)
        assert tsv_unescape(cell) == label
        assert '\t' not in cell and len(cell.splitlines()) <= 1
        cell.encode('utf-8')
    assert tsv_escape('café ☕ x/y "q"') == 'café ☕ x/y "q"'  # printable text is written as itself
    assert tsv_unescape('gt\\pred \\q \\x4') == 'gt\\pred \\q \\x4'  # no escape: kept as typed


def read_tsv(path):
    text = path.read_text(encoding='utf-8')
    assert text.split('\n')[:-1] == text.splitlines()  # no line break hides inside a cell
    return [[tsv_unescape(cell) for cell in line.split('\t')] for line in text.splitlines()]


def test_reports_of_any_labels(tmp_path):
    ground_truth = {f'v{i}': label for i, label in enumerate(LABELS)}
    paths = write_reports(tmp_path / 'val.json', ground_truth, rankings(), LABELS)
    per_class = read_tsv(paths['per_class'])
    assert per_class[0] == ['label', 'n_videos', 'top1', 'top5']
    assert sorted(row[0] for row in per_class[1:]) == sorted(LABELS)
    assert all(len(row) == 4 for row in per_class)
    confusion = read_tsv(paths['confusion'])
    assert confusion[0] == ['gt\\pred'] + LABELS and [row[0] for row in confusion[1:]] == LABELS
    assert all(row[1 + i] == '1' for i, row in enumerate(confusion[1:]))
    with Image.open(paths['classes']) as img:
        assert img.format == 'PNG' and img.size[1] > 200


@pytest.mark.parametrize('font', ['freetype', 'bitmap'])
def test_the_chart_draws_any_label(font, monkeypatch):
    if font == 'bitmap':  # the Latin-1 bitmap font of old Pillow or no FreeType
        monkeypatch.setattr(reports, '_font', lambda size: ImageFont.load_default_imagefont())
    rows = [ClassAccuracy(label, 1, 0.5, 1.0) for label in LABELS]
    assert class_chart(rows, 'title\nwith\tbreaks ☕', k=5).size[0] > 400
    assert reports._fit('a\nb', reports._font(14)) == 'a\\nb'
    assert reports._fit(' ', reports._font(14)) == "' '"


def test_results_json_round_trips_any_label(tmp_path):
    written = rankings()
    write_results(tmp_path / 'r.json', written)
    assert load_results(tmp_path / 'r.json') == written
    segments = {'v': [{'segment': [1, 9], 'result': [{'label': label, 'score': 0.5}]} for label in LABELS[:6]]}
    (tmp_path / 's.json').write_text(json.dumps({'results': segments}))
    assert [label for label, _ in load_results(tmp_path / 's.json')['v']] == LABELS[:6]


def annotation(path, labels=LABELS):
    database = {f'v{i}': {'subset': 'validation', 'annotations': {'label': label, 'segment': [1, 9]}}
                for i, label in enumerate(labels)}
    path.write_text(json.dumps({'labels': labels, 'database': database}))
    return path


def test_eval_accuracy_and_fusion_on_any_labels(tmp_path, capsys):
    gt = annotation(tmp_path / 'gt.json')
    write_results(tmp_path / 'rgb.json', rankings())
    write_results(tmp_path / 'flow.json', rankings())
    assert eval_accuracy.main([str(gt), str(tmp_path / 'rgb.json'), '-k', '2']) == 0
    assert f'top-1 accuracy: 1.0000 ({len(LABELS)}/{len(LABELS)})' in capsys.readouterr().out
    assert fuse_results.main([str(tmp_path / 'rgb.json'), str(tmp_path / 'flow.json'), str(tmp_path / 'f.json'),
                              '--annotation_path', str(gt)]) == 0
    fused = load_results(tmp_path / 'f.json')
    assert {vid: [label for label, _ in r] for vid, r in fused.items()} == \
        {vid: [label for label, _ in r] for vid, r in rankings().items()}
    assert sorted(row[0] for row in read_tsv(tmp_path / 'f_per_class.tsv')[1:]) == sorted(LABELS)
