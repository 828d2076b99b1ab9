"""The benchmark scripts still run end to end (tiny sizes; their numbers are not checked here)."""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / 'bench'))

import bench_loader  # noqa: E402
import bench_scale  # noqa: E402


def test_bench_loader_measures_every_pipeline(tmp_path, capsys):
    out = tmp_path / 'numbers.json'
    assert bench_loader.main(['--videos', '4', '--frames', '20', '--seconds', '0.01', '--workers', '1',
                              '--data_dir', str(tmp_path / 'data'), '--json', str(out)]) == 0
    numbers = json.loads(out.read_text())
    assert all(v > 0 for v in numbers['per_core'].values()) and len(numbers['per_core']) == 18
    assert 'frame table stored (read + check)' in numbers['video_breakdown_ms'] and numbers['workers']['video']['1'] > 0
    assert '| target (x reference) |' in capsys.readouterr().out


def test_bench_scale_builds_and_reads(tmp_path, capsys):
    assert bench_scale.main(['--entries', '60', '--batches', '4', '--workers', '1', '--every', '2', '--folders', '2',
                             '--frames', '20', '--sample_size', '32', '--data_dir', str(tmp_path)]) == 0
    assert '60' in capsys.readouterr().out
