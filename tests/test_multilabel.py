"""Multi-label (HVU-style) data: list labels, sigmoid/BCE training, mAP and top-k recall, per-label scores."""
import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import main as main_module
from datasets import MultiClipDataset, VideoDataset, collate, load_video_list
from datasets.annotations import AnnotationError
from runs.run_logs import MULTILABEL_VAL_COLUMNS
from models import load_checkpoint
from tests.video_fixtures import write_jpg_folder
from training import MultiLabelLoss, count_hits
from util_scripts import hvu_json
from validation import average_precision, multilabel_metrics

COLOURS = {'red': (230, 30, 30), 'green': (30, 220, 30), 'blue': (30, 30, 230)}
TAG_SETS = [('red',), ('green',), ('blue',), ('red', 'green'), ('green', 'blue'), ('red', 'blue'),
            ('red', 'green', 'blue'), ('red',), ('blue',), ('green', 'red')]


def squares_video(tags, n=12, size=40, seed=0):
    """Grey frames with one drifting square per tag, in that tag's colour."""
    rng = np.random.default_rng(seed)
    frames = []
    starts = {t: rng.integers(0, size - 14, 2) for t in tags}
    for t in range(n):
        f = np.full((size, size, 3), 120, np.uint8)
        for tag in tags:
            y, x = (starts[tag] + t) % (size - 12)
            f[y:y + 12, x:x + 12] = COLOURS[tag]
        frames.append(f)
    return frames


@pytest.fixture(scope='module')
def hvu(tmp_path_factory):
    """HVU-layout CSVs and jpg frame folders (in the root: no class folders), 30 train + 10 val videos."""
    root = tmp_path_factory.mktemp('hvu')
    csvs, videos = root / 'csv', root / 'jpg'
    csvs.mkdir()
    for name, split, n, offset in (('HVU_Train_V1.0.csv', 'train', 30, 0), ('HVU_Val_V1.0.csv', 'val', 10, 100)):
        with open(csvs / name, 'w', newline='') as f:
            w = csv.writer(f)
            w.writerow(['Tags', 'youtube_id', 'time_start', 'time_end'])
            for i in range(n):
                tags = TAG_SETS[i % len(TAG_SETS)]
                vid = f'{split}{i:03d}'
                w.writerow(['|'.join(tags), vid, 0, 10])
                write_jpg_folder(videos / f'{vid}_000000_000010', squares_video(tags, seed=offset + i))
    ann = root / 'hvu.json'
    assert hvu_json.main([str(csvs), str(videos), 'jpg', str(ann)]) == 0
    return videos, ann


def test_hvu_json_writes_label_lists_and_segments(hvu):
    data = json.loads(hvu[1].read_text())
    assert data['labels'] == ['blue', 'green', 'red']
    entry = data['database']['train003_000000_000010']
    assert entry['subset'] == 'training'
    assert entry['annotations']['label'] == ['red', 'green'] and entry['annotations']['segment'] == [1, 13]
    assert sum(e['subset'] == 'validation' for e in data['database'].values()) == 10


def test_hvu_json_categories_filter_tags(hvu, tmp_path):
    csvs = hvu[1].parent / 'csv'
    (csvs / 'HVU_Tags_Categories_V1.0.csv').write_text('Tag,Category\nred,object\ngreen,scene\nblue,object\n')
    out = tmp_path / 'objects.json'
    assert hvu_json.main([str(csvs), str(hvu[0]), 'jpg', str(out), '--categories', 'object']) == 0
    data = json.loads(out.read_text())
    assert data['labels'] == ['blue', 'red']
    assert 'train001_000000_000010' not in data['database']  # green only: no kept tag
    assert hvu_json.main([str(csvs), str(hvu[0]), 'jpg', str(out), '--categories', 'weather']) == 2


def test_hvu_json_drops_rare_tags(hvu, tmp_path):
    out = tmp_path / 'common.json'
    # training videos per tag: red 18, green 15, blue 15
    assert hvu_json.main([str(hvu[1].parent / 'csv'), str(hvu[0]), 'jpg', str(out), '--min_videos', '16']) == 0
    data = json.loads(out.read_text())
    assert data['labels'] == ['red']
    assert all(e['annotations']['label'] == ['red'] for e in data['database'].values())
    assert len(data['database']) == 24  # 18 training + 6 validation videos have red


def test_annotations_keep_every_label_and_fractions_remap_them(hvu):
    videos = load_video_list([hvu[1]], [hvu[0]], 'training')
    record = next(r for r in videos.records if r.video_id == 'train006_000000_000010')
    assert [videos.labels[i] for i in record.labels] == ['red', 'green', 'blue']
    assert videos.labels[record.label] == 'red'  # the first label, for single-label code paths
    reduced = load_video_list([hvu[1]], [hvu[0]], 'training', class_fraction=0.5, seed=3)
    assert len(reduced.labels) == 2
    for r in reduced.records:
        assert r.labels and all(0 <= x < 2 for x in r.labels) and r.label == r.labels[0]


def test_multi_hot_targets_and_the_single_label_guard(hvu):
    videos = load_video_list([hvu[1]], [hvu[0]], 'validation')
    temporal = lambda frames: frames[:4]  # noqa: E731
    data = VideoDataset(videos, lambda p, idx: _frames(p, idx), temporal, multilabel=True)
    index = next(i for i, r in enumerate(videos.records) if r.video_id == 'val004_000000_000010')
    assert data.target(index).tolist() == [1.0, 1.0, 0.0]  # green, blue
    batch = collate([data[0], data[index]])
    assert batch['label'].shape == (2, 3) and batch['label'].dtype == torch.float32
    with pytest.raises(AnnotationError, match='--multilabel'):
        VideoDataset(videos, None, temporal)
    clips = MultiClipDataset(videos, lambda p, idx: _frames(p, idx), lambda f: [f[:4], f[4:8]], multilabel=True)
    assert collate([clips[index]])['label'].shape == (2, 3)


def _frames(path, indices):
    return torch.zeros(len(indices), 3, 8, 8, dtype=torch.uint8), 0


def test_average_precision_and_recall_by_hand():
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    positives = torch.tensor([True, False, True, False])
    assert average_precision(scores, positives) == pytest.approx((1 / 1 + 2 / 3) / 2)
    videos = {'a': (torch.tensor([0.9, 0.1, 0.8]) * 2, 2, (0, 2)),   # both labels ranked first
              'b': (torch.tensor([0.2, 0.7, 0.6]), 1, (2,)),         # its label ranked second
              'c': (torch.tensor([0.5, 0.5, 0.5]), 1, ())}           # unlabelled: ignored
    m = multilabel_metrics(videos, ks=(1, 2))
    assert m['videos'] == 2
    assert m['recall_at_1'] == pytest.approx((0.5 + 0.0) / 2)
    assert m['recall_at_2'] == pytest.approx((1.0 + 1.0) / 2)
    ap0, ap2 = 1.0, (1 / 1 + 2 / 2) / 2  # class 1 has no positive: left out
    assert m['mAP'] == pytest.approx((ap0 + ap2) / 2)


def test_loss_and_hits():
    logits = torch.tensor([[3.0, -1.0, 0.0], [0.0, 2.0, 1.0]])
    y = torch.tensor([[1.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
    assert MultiLabelLoss()(logits, y).item() == pytest.approx(expected.item())
    smoothed = torch.nn.functional.binary_cross_entropy_with_logits(logits, y * 0.8 + 0.1)
    assert MultiLabelLoss(0.2)(logits, y).item() == pytest.approx(smoothed.item())
    assert count_hits(logits, y) == 1 and count_hits(logits, torch.tensor([0, 2])) == 1


def test_main_trains_validates_and_infers_multilabel(hvu, tmp_path):
    result = tmp_path / 'run'
    common = ['--video_path', str(hvu[0]), '--annotation_path', str(hvu[1]), '--n_classes', '3',
              '--model', 'resnet', '--model_depth', '10', '--resnet_widen_factor', '0.25',
              '--sample_size', '32', '--sample_duration', '8', '--n_threads', '0', '--no_progress',
              '--n_val_samples', '1', '--multilabel', '--no_hflip', '--train_crop', 'center']
    assert main_module.main(common + ['--result_path', str(result), '--batch_size', '6', '--n_epochs', '6',
                                      '--optimizer', 'adamw', '--learning_rate', '0.003', '--weight_decay', '0',
                                      '--inference', '--output_topk', '0']) == 0
    lines = (result / 'val.log').read_text().splitlines()
    header = lines[0].split('\t')
    assert header == MULTILABEL_VAL_COLUMNS
    last = dict(zip(header, lines[-1].split('\t')))
    # Random scores would give an mAP near the positive rate (about 0.55 here).
    assert float(last['mAP']) > 0.75, lines
    assert 0 < float(last['recall_at_1']) <= 1
    ckpt = load_checkpoint(result / 'save_latest.pth')
    assert ckpt['multilabel'] is True
    results = json.loads((result / 'val.json').read_text())['results']
    assert len(results) == 10
    scores = results['val006_000000_000010']
    assert {s['label'] for s in scores} == {'red', 'green', 'blue'}
    assert all(0 <= s['score'] <= 1 for s in scores)
    assert not math.isclose(sum(s['score'] for s in scores), 1.0, abs_tol=1e-3)  # sigmoids, not a softmax
    # a multi-label checkpoint cannot be resumed as a single-label run
    assert main_module.main([a for a in common if a != '--multilabel'] +
                            ['--result_path', str(result), '--resume_path', 'latest', '--n_epochs', '7']) == 2


def test_eval_accuracy_refuses_multi_label_ground_truth(hvu, capsys):
    from util_scripts import eval_accuracy
    results = hvu[1].parent / 'fake_results.json'
    results.write_text(json.dumps({'results': {'val000_000000_000010': [{'label': 'red', 'score': 1.0}]}}))
    assert eval_accuracy.main([str(hvu[1]), str(results), '--subset', 'validation']) == 2
    assert 'list of labels' in capsys.readouterr().err
