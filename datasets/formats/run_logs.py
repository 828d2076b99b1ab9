"""A run's logs: the original's TSV files (``train.log``, ``train_batch.log``, ``val.log``) and the epoch line.

The first columns of each file are the original's; ours follow. ``RunLogs`` opens the files
a run needs (appending on resume) and the optional TensorBoard writer, and ``epoch`` writes
one epoch's rows, scalars and printed summary.
"""
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

TRAIN_COLUMNS = ['epoch', 'loss', 'acc', 'lr', 'clips_per_s', 'data_wait', 'bad_frames', 'failed_videos']
BATCH_COLUMNS = ['epoch', 'batch', 'iter', 'loss', 'acc', 'lr']
VAL_COLUMNS = ['epoch', 'loss', 'acc', 'video_top1', 'video_top5', 'mean_class_acc', 'bad_frames',
               'failed_videos']
MULTILABEL_VAL_COLUMNS = ['epoch', 'loss', 'acc', 'mAP', 'recall_at_1', 'recall_at_5', 'bad_frames',
                          'failed_videos']


class TsvLog:
    """A tab-separated log with a header, appended to on resume, flushed every row."""

    def __init__(self, path: Path, columns: List[str], append: bool):
        fresh = not (append and path.exists() and path.stat().st_size > 0)
        self.file = open(path, 'w' if fresh else 'a', encoding='utf-8')
        if fresh:
            self.file.write('\t'.join(columns) + '\n')
        self.file.flush()

    def __call__(self, values: List[Any]) -> None:
        """Append one row."""
        self.file.write('\t'.join(f'{v:.6g}' if isinstance(v, float) else str(v) for v in values) + '\n')
        self.file.flush()

    def close(self) -> None:
        """Close the file."""
        self.file.close()


def fault_text(m: Mapping[str, Any]) -> str:
    """'' or '; N bad frames replaced, M videos skipped'."""
    parts = []
    if m.get('bad_frames'):
        parts.append(f"{int(m['bad_frames'])} bad frames replaced")
    if m.get('failed_videos'):
        parts.append(f"{int(m['failed_videos'])} unreadable videos skipped")
    return ('; ' + ', '.join(parts)) if parts else ''


class RunLogs:
    """The TSV logs and TensorBoard writer of the rank that writes (the others pass ``enabled`` False)."""

    def __init__(self, result_path: Path, *, train: bool, val: bool, multilabel: bool, append: bool,
                 tensorboard: bool, first_epoch: int, enabled: bool = True):
        self.files: Dict[str, TsvLog] = {}
        self.val_columns = MULTILABEL_VAL_COLUMNS if multilabel else VAL_COLUMNS
        self.writer: Optional[Any] = None
        if not enabled:
            return
        if train:
            self.files['train'] = TsvLog(result_path / 'train.log', TRAIN_COLUMNS, append)
            self.files['batch'] = TsvLog(result_path / 'train_batch.log', BATCH_COLUMNS, append)
        if val:
            self.files['val'] = TsvLog(result_path / 'val.log', self.val_columns, append)
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(log_dir=str(result_path), purge_step=first_epoch)

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
                             f"recall@1 {v['recall_at_1']:.4f} recall@5 {v['recall_at_5']:.4f}{fault_text(v)}")
            else:
                parts.append(f"val loss {v['loss']:.4f} clip acc {v['acc']:.4f}, video top-1 {v['video_top1']:.4f} "
                             f"top-5 {v['video_top5']:.4f} mean class {v['mean_class_acc']:.4f}{fault_text(v)}")
            if 'val' in self.files:
                self.files['val']([epoch] + [v[c] for c in self.val_columns[1:]])
            if self.writer is not None:
                for k in self.val_columns[1:-2]:
                    self.writer.add_scalar(f'val/{k}', v[k], epoch)
        print(' | '.join(parts), flush=True)
