"""A run's logs: the original's TSV files (``train.log``, ``train_batch.log``, ``val.log``) and the epoch line.

The first columns of each file are the original's; ours follow. ``RunLogs`` opens the files
a run needs and the optional TensorBoard writer, and ``epoch`` writes one epoch's rows,
scalars and printed summary. A metric that means nothing for the run (top-5 or recall@5 of
a model with 5 classes or fewer) is the cell ``n/a`` (pandas reads it as NaN; a number
would lie, an empty cell looks like a bug) and ``top-5 n/a (3 classes)`` in the epoch line.

A run continues its logs exactly where its state stands: opening them drops every row at or
after the position the run starts from (rows a crash wrote after the last checkpoint, which
the run writes again) and a torn last line; the files are rewritten atomically. A fresh run
starts them afresh. A log whose name is a symbolic link is refused (a ``UserError`` naming
it): the run never writes through a link into a file elsewhere, nor silently removes a link
the user made.
"""
import errno
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, TextIO, Tuple

from common.atomic import atomic_write_bytes
from common.errors import UserError

TRAIN_COLUMNS = ['epoch', 'loss', 'acc', 'lr', 'clips_per_s', 'data_wait', 'bad_frames', 'failed_videos']
BATCH_COLUMNS = ['epoch', 'batch', 'iter', 'loss', 'acc', 'lr']
VAL_COLUMNS = ['epoch', 'loss', 'acc', 'video_top1', 'video_top5', 'mean_class_acc', 'bad_frames',
               'failed_videos']
MULTILABEL_VAL_COLUMNS = ['epoch', 'loss', 'acc', 'mAP', 'recall_at_1', 'recall_at_5', 'bad_frames',
                          'failed_videos']


Row = Sequence[str]


def refuse_symlink(path: Path) -> None:
    """UserError if ``path`` is a symbolic link (the run writes only its own regular files)."""
    if path.is_symlink():
        raise UserError(f'{path} is a symbolic link (to {os.readlink(path)}); a run writes its logs only to '
                        'its own files: remove the link, or choose another --result_path')


def open_append(path: Path, what: str = 'log') -> TextIO:
    """``path`` opened for appending UTF-8 text, never through a symbolic link (a ``UserError`` names it)."""
    refuse_symlink(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, 'O_NOFOLLOW', 0), 0o666)
    except OSError as e:
        if e.errno == errno.ELOOP:
            refuse_symlink(path)
        raise UserError(f'{path}: cannot open the {what} ({e.strerror})') from None
    return open(fd, 'a', encoding='utf-8')


def _int(text: str) -> Optional[int]:
    try:
        return int(text)
    except ValueError:
        return None


def epochs_before(epoch: int) -> Callable[[Row], bool]:
    """Keeps the rows of the epochs before ``epoch`` (``train.log``, ``val.log``)."""
    def keep(row: Row) -> bool:
        e = _int(row[0])
        return e is not None and e < epoch
    return keep


def batches_up_to(epoch: int, batch: int) -> Callable[[Row], bool]:
    """Keeps the rows of the batches up to ``batch`` of ``epoch`` (``train_batch.log``)."""
    def keep(row: Row) -> bool:
        e, b = (_int(row[0]), _int(row[1])) if len(row) > 1 else (None, None)
        return e is not None and b is not None and (e, b) <= (epoch, batch)
    return keep


class TsvLog:
    """A tab-separated log with a header; on opening it keeps the rows ``keep`` accepts; flushed every row."""

    def __init__(self, path: Path, columns: List[str], keep: Callable[[Row], bool] = lambda row: False):
        refuse_symlink(path)
        try:
            lines = path.read_bytes().decode('utf-8', 'replace').split('\n') if path.exists() else []
        except OSError as e:
            raise UserError(f'{path}: cannot read the log ({e.strerror})') from None
        lines = lines[:-1]  # the part after the last newline: '' or a row a kill tore
        header = lines[0] if lines and lines[0].startswith(columns[0]) else '\t'.join(columns)
        kept = [header] + [line for line in lines[1:] if keep(line.split('\t'))]
        if kept != lines:
            atomic_write_bytes(path, ''.join(line + '\n' for line in kept).encode('utf-8'))
        self.file = open_append(path)

    def __call__(self, values: List[Any]) -> None:
        """Append one row."""
        self.file.write('\t'.join(cell(v) for v in values) + '\n')
        self.file.flush()

    def close(self) -> None:
        """Close the file."""
        self.file.close()


NOT_APPLICABLE = 'n/a'  # a TSV cell whose metric means nothing for this run


def cell(value: Any) -> str:
    """One TSV cell: floats to 6 significant digits, None as ``n/a``."""
    return NOT_APPLICABLE if value is None else f'{value:.6g}' if isinstance(value, float) else str(value)


def top_k_text(name: str, value: Optional[float], n_classes: int) -> str:
    """``top-5 0.8123``, or ``top-5 n/a (3 classes)`` where the metric means nothing (None)."""
    return f'{name} {value:.4f}' if value is not None else f'{name} {NOT_APPLICABLE} ({n_classes} classes)'


def fault_text(m: Mapping[str, Any]) -> str:
    """'' or '; N bad frames replaced, M unreadable videos' (each replaced by another of its share, or dropped)."""
    parts = []
    if m.get('bad_frames'):
        parts.append(f"{int(m['bad_frames'])} bad frames replaced")
    if m.get('failed_videos'):
        parts.append(f"{int(m['failed_videos'])} unreadable videos")
    return ('; ' + ', '.join(parts)) if parts else ''


class RunLogs:
    """The TSV logs and TensorBoard writer of the rank that writes (the others pass ``enabled`` False)."""

    def __init__(self, result_path: Path, *, train: bool, val: bool, multilabel: bool, since: Tuple[int, int],
                 tensorboard: bool, enabled: bool = True):
        """``since``: (epoch, batches of it done) where the run starts; the rows from there on are dropped."""
        self.files: Dict[str, TsvLog] = {}
        self.val_columns = MULTILABEL_VAL_COLUMNS if multilabel else VAL_COLUMNS
        self.writer: Optional[Any] = None
        if not enabled:
            return
        try:
            if train:
                self.files['train'] = TsvLog(result_path / 'train.log', TRAIN_COLUMNS, epochs_before(since[0]))
                self.files['batch'] = TsvLog(result_path / 'train_batch.log', BATCH_COLUMNS, batches_up_to(*since))
            if val:
                self.files['val'] = TsvLog(result_path / 'val.log', self.val_columns, epochs_before(since[0]))
            if tensorboard:
                from torch.utils.tensorboard import SummaryWriter
                self.writer = SummaryWriter(log_dir=str(result_path), purge_step=since[0])
        except BaseException:
            self.close()  # a later log refused (a symbolic link, a full disk): the ones opened are closed
            raise

    def __enter__(self) -> 'RunLogs':
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def batch(self) -> Optional[TsvLog]:
        """The per-batch training log, if this rank writes one."""
        return self.files.get('batch')

    def close(self) -> None:
        """Close every file and the writer."""
        for log in self.files.values():
            log.close()
        self.files.clear()
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def epoch(self, epoch: int, metrics: Mapping[str, Mapping[str, Any]]) -> None:
        """The epoch summary line, the TSV rows and the TensorBoard scalars."""
        parts = [f'epoch {epoch}']
        if 'train' in metrics:
            t = metrics['train']
            parts.append(f"train loss {t['loss']:.4f} acc {t['acc']:.4f} lr {t['lr']:.3g} "
                         f"({t['clips_per_s']:.1f} clips/s, {t['data_wait']:.0%} waiting for data{fault_text(t)})")
            if 'train' in self.files:
                self.files['train']([epoch] + [t[c] for c in TRAIN_COLUMNS[1:]])
            if self.writer is not None:
                for k in ('loss', 'acc', 'lr'):
                    self.writer.add_scalar(f'train/{k}', t[k], epoch)
        if 'val' in metrics:
            v = metrics['val']
            if 'mAP' in v:
                parts.append(f"val loss {v['loss']:.4f} clip hit@1 {v['acc']:.4f}, video mAP {v['mAP']:.4f} "
                             f"{top_k_text('recall@1', v['recall_at_1'], v.get('classes', 0))} "
                             f"{top_k_text('recall@5', v['recall_at_5'], v.get('classes', 0))}{fault_text(v)}")
            else:
                parts.append(f"val loss {v['loss']:.4f} clip acc {v['acc']:.4f}, video top-1 {v['video_top1']:.4f} "
                             f"{top_k_text('top-5', v['video_top5'], v.get('classes', 0))} "
                             f"mean class {v['mean_class_acc']:.4f}{fault_text(v)}")
            if 'val' in self.files:
                self.files['val']([epoch] + [v[c] for c in self.val_columns[1:]])
            if self.writer is not None:
                for k in self.val_columns[1:-2]:
                    if v[k] is not None:
                        self.writer.add_scalar(f'val/{k}', v[k], epoch)
        print(' | '.join(parts), flush=True)
