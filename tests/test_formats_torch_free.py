"""datasets.formats and the annotation/result tools import without torch."""
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# every module of the package, so that a new one is checked too
FORMATS = sorted(f'datasets.formats.{p.stem}' for p in (REPO / 'datasets' / 'formats').glob('*.py')
                 if p.stem != '__init__') + ['datasets.conversion', 'datasets.demo_videos']
TOOLS = ['util_scripts.eval_accuracy', 'util_scripts.fuse_results', 'util_scripts.ucf101_json',
         'util_scripts.hmdb51_json', 'util_scripts.kinetics_json', 'util_scripts.mit_json',
         'util_scripts.hvu_json', 'util_scripts.folder_json', 'util_scripts.add_fps_into_activitynet_json']


@pytest.mark.parametrize('modules', [FORMATS, TOOLS], ids=['formats', 'tools'])
def test_imports_do_not_load_torch(modules):
    code = f"import sys; import {', '.join(modules)}; assert 'torch' not in sys.modules, 'torch was imported'"
    proc = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
