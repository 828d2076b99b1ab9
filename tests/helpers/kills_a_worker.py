"""main.py, except that a DataLoader worker kills itself (SIGKILL, as the OOM killer does) at its Nth training item.

``KILL_AT`` is N; ``KILL_MARKER`` a file the killing worker creates first, so that only one worker ever dies.
"""
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch.utils.data  # noqa: E402

import main  # noqa: E402
from datasets.video_dataset import VideoDataset  # noqa: E402

original = VideoDataset.__getitem__
calls = 0


def getitem(self, item):
    global calls
    if torch.utils.data.get_worker_info() is not None and type(self) is VideoDataset:
        calls += 1
        if calls == int(os.environ['KILL_AT']):
            try:
                os.close(os.open(os.environ['KILL_MARKER'], os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                pass
            else:
                os.kill(os.getpid(), signal.SIGKILL)
    return original(self, item)


VideoDataset.__getitem__ = getitem
sys.exit(main.main(sys.argv[1:]))
