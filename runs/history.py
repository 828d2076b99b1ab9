"""What a result path records of the invocations that used it: ``history.log`` and the options files.

``history.log`` gets one line per ``main.py`` invocation that took the result path, appended
when it starts: local time (ISO 8601 with the UTC offset), host, process id and the command
line (shell-quoted), tab-separated. The options files are JSON:

- ``opts.json``: the options of the latest run that trained (the one that wrote the newest
  checkpoints), with the model and preprocessing it really used (a resumed checkpoint's, not
  differing flags);
- ``opts_eval.json``: those of the latest run that trained nothing (``--no_train``: validation
  or inference only), so that evaluating a result path never overwrites how it was trained.

Only the run holding the result path's lock writes them. Standard library only.
"""
import os
import shlex
import socket
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from common.atomic import atomic_write_json
from runs.run_logs import open_append

HISTORY = 'history.log'
TRAINED, EVALUATED = 'opts.json', 'opts_eval.json'


def history_line(command: Sequence[str], now: Optional[datetime] = None, host: Optional[str] = None,
                 pid: Optional[int] = None) -> str:
    """``time<TAB>host<TAB>pid<TAB>command line``, one line (newlines in arguments quoted away)."""
    when = (now or datetime.now().astimezone()).isoformat(timespec='seconds')
    text = shlex.join(str(a) for a in command).replace('\n', '\\n').replace('\r', '\\r').replace('\t', '\\t')
    return f'{when}\t{host or socket.gethostname()}\t{os.getpid() if pid is None else pid}\t{text}'


def append_history(result_path: Path, command: Sequence[str], **line: Any) -> Path:
    """Append this invocation's line to ``result_path/history.log`` (never through a symbolic link)."""
    path = Path(result_path) / HISTORY
    with open_append(path, 'history') as f:
        f.write(history_line(command, **line) + '\n')
    return path


def write_options(result_path: Path, record: Mapping[str, Any], trains: bool) -> Path:
    """``opts.json`` for a run that trains, ``opts_eval.json`` for one that does not; written atomically."""
    return atomic_write_json(Path(result_path) / (TRAINED if trains else EVALUATED), dict(record))
