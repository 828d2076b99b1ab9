"""Two-stream late fusion of inference results."""
import json

import pytest

from util_scripts import fuse_results


def write(path, results):
    path.write_text(json.dumps({'results': {vid: [{'label': l, 'score': s} for l, s in r.items()]
                                            for vid, r in results.items()}}))
    return path


def test_fusion_averages_scores_and_evaluates(tmp_path, capsys):
    rgb = write(tmp_path / 'rgb.json', {'a': {'run': 0.6, 'jump': 0.4}, 'b': {'run': 0.55, 'jump': 0.45},
                                        'only_rgb': {'run': 1.0}})
    flow = write(tmp_path / 'flow.json', {'a': {'jump': 0.9, 'run': 0.1}, 'b': {'jump': 0.2, 'run': 0.8}})
    gt = tmp_path / 'gt.json'
    gt.write_text(json.dumps({'labels': ['run', 'jump'], 'database': {
        'a': {'subset': 'validation', 'annotations': {'label': 'jump'}},
        'b': {'subset': 'validation', 'annotations': {'label': 'run'}}}}))
    out = tmp_path / 'fused.json'
    assert fuse_results.main([str(rgb), str(flow), str(out), '--annotation_path', str(gt), '-k', '1']) == 0
    fused = json.loads(out.read_text())['results']
    assert fused['a'][0] == {'label': 'jump', 'score': 0.65} and fused['b'][0]['label'] == 'run'
    assert 'only_rgb' not in fused
    text = capsys.readouterr().out
    assert 'top-1 accuracy: 1.0000 (2/2)' in text and '1 videos missing from some stream' in text
    # RGB alone gets 'a' wrong: fusion is what fixes it
    assert fuse_results.main([str(rgb), str(rgb), str(tmp_path / 'rgb2.json'), '--annotation_path', str(gt),
                              '-k', '1']) == 0
    assert 'top-1 accuracy: 0.5000 (1/2)' in capsys.readouterr().out


def test_weights_and_errors(tmp_path, capsys):
    rgb = write(tmp_path / 'rgb.json', {'a': {'run': 0.6, 'jump': 0.4}})
    flow = write(tmp_path / 'flow.json', {'a': {'jump': 0.9, 'run': 0.1}})
    assert fuse_results.main([str(rgb), str(flow), str(tmp_path / 'f.json'), '--weights', '9', '1']) == 0
    assert json.loads((tmp_path / 'f.json').read_text())['results']['a'][0]['label'] == 'run'
    assert fuse_results.main([str(rgb), str(flow), str(tmp_path / 'f.json'), '--weights', '1']) == 2
    (tmp_path / 'bad.json').write_text('{')
    assert fuse_results.main([str(rgb), str(tmp_path / 'bad.json'), str(tmp_path / 'f.json')]) == 2
    assert 'bad.json' in capsys.readouterr().err


@pytest.mark.parametrize('flag,value', [('--weights', 'nan'), ('--weights', '-1'), ('--weights', 'inf'),
                                        ('-k', '0'), ('--subset', 'nowhere')])
def test_bad_numbers_are_one_line_usage_errors(tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit) as exit_:
        fuse_results.main(['a.json', 'b.json', str(tmp_path / 'f.json'), f'{flag}={value}'])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count('\n') == 1 and err.startswith(f'error: {flag}')
