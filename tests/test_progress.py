"""Output redirected to a file reads well: periodic progress lines, one line per data fault."""
import io
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from common.faults import DataFault, report_fault
from common.progress import LineProgress, Quiet, progress
from tests.test_main import TINY
from tests.video_fixtures import make_dataset

ROOT = Path(__file__).resolve().parents[1]


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_line_every_tenth_and_none_at_the_end():
    out = io.StringIO()
    bar = progress(range(20), total=20, desc='epoch 3 train', stream=out)
    assert isinstance(bar, LineProgress)
    for i in bar:
        bar.set_postfix({'loss': f'{1 / (i + 1):.3f}', 'clips/s': '45.0', 'data wait': '3%'})
    lines = out.getvalue().splitlines()
    assert len(lines) == 9 and lines[0] == 'epoch 3 train: 2/20 batches (10%), loss 0.500, 45.0 clips/s, data wait 3%'
    assert lines[-1].startswith('epoch 3 train: 18/20 batches (90%)')


def test_a_line_after_a_quiet_while_and_a_resumed_count():
    clock = iter(range(0, 10_000, 50)).__next__
    out = io.StringIO()
    bar = LineProgress(range(3), 1000, 'inference', initial=500, every_s=120, stream=out, clock=clock)
    list(bar)  # 50 s per batch: a line after 150 s
    assert out.getvalue() == 'inference: 503/1000 batches (50%)\n'
    out = io.StringIO()
    list(LineProgress(range(4), None, 'val', every_s=100, stream=out, clock=clock))
    assert out.getvalue() == 'val: 2 batches\nval: 4 batches\n'


def test_bars_only_on_a_terminal_and_nothing_when_disabled():
    assert type(progress([1], total=1, desc='x', stream=Terminal())).__name__ == 'tqdm'
    quiet = progress([1, 2], total=2, desc='x', enabled=False)
    assert isinstance(quiet, Quiet) and list(quiet) == [1, 2]


def test_a_data_fault_is_one_line():
    assert warnings.formatwarning(DataFault('a.mp4: gone'), DataFault, 'x.py', 3) == 'warning: a.mp4: gone\n'
    assert 'x.py:3' in warnings.formatwarning(UserWarning('other'), UserWarning, 'x.py', 3)
    with pytest.warns(DataFault, match='a.mp4: gone; the video'):
        report_fault('a.mp4: gone;\n the video leaves the batch')


def test_main_redirected_to_a_file(tmp_path):
    ann = make_dataset(tmp_path / 'jpg', 'jpg', n_frames=(12, 20, 9, 16, 14, 10), n_train=2)
    for frame in (tmp_path / 'jpg' / 'wave' / 'wave_2').iterdir():
        frame.unlink()  # a validation video unreadable now: it leaves its batch, with one warning line
    args = ['--video_path', str(tmp_path / 'jpg'), '--annotation_path', str(ann), '--result_path',
            str(tmp_path / 'run'), '--n_classes', '2', '--n_epochs', '1', '--n_threads', '1',
            *[a for a in TINY if a not in ('--no_progress', '--n_threads', '0')]]
    with open(tmp_path / 'err.txt', 'w') as err:
        done = subprocess.run([sys.executable, 'main.py', *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=err,
                              text=True, timeout=300)
    lines = (tmp_path / 'err.txt').read_text().splitlines()
    assert done.returncode == 0, lines
    assert 'epoch 1 train: 1/2 batches (50%), loss ' in '\n'.join(lines) and not any('\r' in s for s in lines)
    faults = [s for s in lines if 'wave_2' in s]
    assert faults and all(s.startswith('warning: ') and s.endswith('the video leaves the batch') for s in faults)
    assert not any('Warning' in s or 'warn(' in s for s in lines), lines
