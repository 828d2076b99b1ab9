"""The torch-free packages and the annotation/result tools import without torch (they run where torch is not installed)."""
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Every module of these packages, so that a new one is checked too.
TORCH_FREE_PACKAGES = ['common', 'evaluation', 'conversion', 'datasets/formats', 'datasets/builders']
# Packages that hold torch code too: their __init__ and their torch-free modules.
TORCH_FREE_MODULES = ['datasets', 'runs', 'visuals', 'distributed', 'runs.run_lock', 'runs.run_logs', 'runs.run_config',
                      'runs.history', 'runs.checkpoint_files', 'runs.position', 'visuals.curves', 'visuals.sheet', 'visuals.overlay']
MODULES = sorted('.'.join(p.relative_to(REPO).with_suffix('').parts).removesuffix('.__init__')
                 for package in TORCH_FREE_PACKAGES for p in (REPO / package).glob('*.py')) + TORCH_FREE_MODULES
TOOLS = ['util_scripts.eval_accuracy', 'util_scripts.fuse_results', 'util_scripts.ucf101_json',
         'util_scripts.hmdb51_json', 'util_scripts.kinetics_json', 'util_scripts.mit_json',
         'util_scripts.hvu_json', 'util_scripts.folder_json', 'util_scripts.add_fps_into_activitynet_json']


def test_the_lists_name_real_modules():
    assert 'common.errors' in MODULES and 'datasets.builders.ucf101' in MODULES and 'conversion' in MODULES


@pytest.mark.parametrize('modules', [MODULES, TOOLS], ids=['modules', 'tools'])
def test_imports_do_not_load_torch(modules):
    code = f"import sys; import {', '.join(modules)}; assert 'torch' not in sys.modules, 'torch was imported'"
    proc = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
