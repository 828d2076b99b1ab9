"""Data-fault warnings name their rank when the process is one of several (WORLD_SIZE > 1, RANK set)."""
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from common.faults import DataFault, OneLineWarning

ROOT = Path(__file__).resolve().parents[1]


def formatted(message: str = 'a.mp4: gone', category: type = DataFault) -> str:
    return warnings.formatwarning(category(message), category, 'x.py', 3)


@pytest.mark.parametrize('world, rank', [(None, None), ('1', '0'), (None, '3'), ('4', None), ('4', ''),
                                         ('many', '1')])
def test_a_single_process_keeps_the_plain_line(monkeypatch, world, rank):
    for name, value in (('WORLD_SIZE', world), ('RANK', rank)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    assert formatted() == 'warning: a.mp4: gone\n'


def test_one_process_of_several_names_its_rank(monkeypatch):
    monkeypatch.setenv('WORLD_SIZE', '4')
    monkeypatch.setenv('RANK', '2')
    assert formatted() == 'warning: rank 2: a.mp4: gone\n'
    assert formatted('x.pth: unpickled', OneLineWarning) == 'warning: rank 2: x.pth: unpickled\n'
    monkeypatch.setenv('RANK', '3')  # read when formatted, not at import
    assert formatted() == 'warning: rank 3: a.mp4: gone\n'


def test_a_reported_fault_is_printed_as_one_line_with_its_rank():
    code = 'from common.faults import report_fault; report_fault("b.mp4: frame 7\\n replaced")'
    env = {k: v for k, v in os.environ.items() if k not in ('WORLD_SIZE', 'RANK')}
    for extra, expected in (({'WORLD_SIZE': '2', 'RANK': '1'}, 'warning: rank 1: b.mp4: frame 7 replaced\n'),
                            ({}, 'warning: b.mp4: frame 7 replaced\n')):
        done = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env={**env, **extra}, capture_output=True,
                              text=True, timeout=60)
        assert done.stderr == expected
